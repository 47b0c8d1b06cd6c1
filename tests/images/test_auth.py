"""Registry auth: htpasswd basic and token challenges with docker config credentials; no leak on redirects."""

from __future__ import annotations

import json

import pytest

from bundler.errors import FetchError
from bundler.fetch.cache import Cache
from bundler.images.pull import pull_images
from bundler.registry.auth import load_credentials

from .conftest import PASSWORD, USER
from .helpers import Proxy, docker_config, skopeo_raw_digest


def _pull(host: str, tmp_path, ref="app/one:one"):
    return pull_images([f"{host}/{ref}"], tmp_path / "store", platforms=["linux/amd64"],
                       cache=Cache(tmp_path / "cache"), insecure={host})


def test_basic_auth_with_docker_config(basic_registry, upstream, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config(tmp_path / "dc", {basic_registry.host: (USER, PASSWORD)})))
    [rec] = _pull(basic_registry.host, tmp_path)
    assert rec.digest == upstream.images["app/one:one"].digest == skopeo_raw_digest(upstream.ref("app/one:one"))


def test_basic_auth_without_credentials_fails_clearly(basic_registry, tmp_path, no_docker_config):
    with pytest.raises(FetchError) as e:
        _pull(basic_registry.host, tmp_path)
    msg = str(e.value)
    assert f"image {basic_registry.host}/app/one:one" in msg and "HTTP 401" in msg
    assert f"docker login {basic_registry.host}" in msg


def test_basic_auth_wrong_password_fails_clearly(basic_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config(tmp_path / "dc", {basic_registry.host: (USER, "nope")})))
    with pytest.raises(FetchError, match="refused access"):
        _pull(basic_registry.host, tmp_path)


def test_token_auth_with_docker_config(token_registry, upstream, tmp_path, monkeypatch):
    reg, tokens = token_registry
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config(tmp_path / "dc", {reg.host: (USER, PASSWORD)})))
    recs = pull_images([f"{reg.host}/app/one:one", f"{reg.host}/multi/oci:moci"], tmp_path / "store",
                       platforms=["linux/arm64", "linux/amd64"], cache=Cache(tmp_path / "cache"), insecure={reg.host})
    assert [r.digest for r in recs] == [upstream.images["app/one:one"].digest, upstream.images["multi/oci:moci"].digest]
    scopes = {q.get("scope") for q in tokens.requests}
    assert scopes == {"repository:app/one:pull", "repository:multi/oci:pull"}  # one scope per repository
    assert len(tokens.requests) == 2  # tokens are cached and reused by the parallel blob downloads


def test_token_auth_without_credentials_fails_clearly(token_registry, tmp_path, no_docker_config):
    reg, _ = token_registry
    with pytest.raises(FetchError, match=rf"image {reg.host}/app/one:one: registry {reg.host} refused access"):
        _pull(reg.host, tmp_path)


def test_cred_helper_and_store(tmp_path, monkeypatch):
    """credHelpers for a host, credsStore otherwise, through docker-credential-* programs on PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-fake"
    helper.write_text('#!/bin/sh\nread host\ncase "$host" in\n'
                      '  reg.example:5000) echo \'{"Username":"u","Secret":"p"}\';;\n'
                      '  *) echo "credentials not found in native keychain"; exit 1;;\nesac\n')
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    cfg = tmp_path / "dc"
    cfg.mkdir()
    (cfg / "config.json").write_text(json.dumps({"credsStore": "fake", "credHelpers": {"other.example": "fake"}}))
    creds = load_credentials("reg.example:5000", cfg)
    assert (creds.username, creds.password) == ("u", "p")
    assert load_credentials("other.example", cfg) is None  # helper says not found: anonymous
    (cfg / "config.json").write_text(json.dumps({"credsStore": "missing"}))
    with pytest.raises(FetchError, match="docker-credential-missing"):
        load_credentials("reg.example:5000", cfg)


def test_blob_redirect_to_other_host_gets_no_authorization(basic_registry, upstream, tmp_path, monkeypatch):
    """Like S3/CDN redirects: the registry host gets credentials, the redirect target never does."""
    cdn = Proxy(upstream.host)  # serves blobs (from the same storage) and records the headers it got
    front = Proxy(basic_registry.host, decide=lambda m, p, n: f"redirect:http://localhost:{cdn.port}"
                  if m == "GET" and "/blobs/" in p else "forward")
    try:
        monkeypatch.setenv("DOCKER_CONFIG", str(docker_config(tmp_path / "dc", {front.host: (USER, PASSWORD)})))
        [rec] = _pull(front.host, tmp_path)
        assert rec.digest == upstream.images["app/one:one"].digest
        cdn_gets = [h for m, p, h in cdn.seen if "/blobs/" in p]
        assert len(cdn_gets) == 4  # config + 3 layers, all via the redirect
        assert all("Authorization" not in h for h in cdn_gets)
        assert any("Authorization" in h for m, p, h in front.seen if "/blobs/" in p)  # the registry did get them
    finally:
        front.stop()
        cdn.stop()
