"""Registries and images for the image tests: one upstream registry per session, images pushed once."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest

from .helpers import Img, Registry, TokenServer, layer, multi, put_image, single, write_oci_layout

USER, PASSWORD = "alice", "s3cret"


@dataclass
class Upstream:
    registry: Registry
    images: dict[str, Img]  # "repo:tag" -> image

    @property
    def host(self) -> str:
        return self.registry.host

    def ref(self, name: str) -> str:
        return f"{self.host}/{name}"


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    work = tmp_path_factory.mktemp("upstream")
    reg = Registry(work)
    shared1, shared2 = layer(40_000, "shared-1"), layer(30_000, "shared-2")
    images = {
        "app/one:one": single([shared1, shared2, layer(20_000, "one")], label="one"),
        "app/two:two": single([shared1, shared2, layer(25_000, "two")], label="two"),
        "multi/docker:mdocker": multi(
            [(single([layer(10_000, "d-amd64")], "amd64", docker=True), {"architecture": "amd64", "os": "linux"}),
             (single([layer(10_000, "d-arm64")], "arm64", "v8", docker=True),
              {"architecture": "arm64", "os": "linux", "variant": "v8"})],
            docker=True),
        "single/docker:sdocker": single([layer(12_000, "sd")], docker=True),
        "pause:3.9": single([layer(5_000, "pause")], label="pause"),
    }
    try:
        for name, img in images.items():
            repo, tag = name.rsplit(":", 1)
            put_image(reg.host, repo, tag, img)
        # The OCI index goes in through skopeo from a hand-written layout (arm64 child without a variant,
        # plus a buildkit-style unknown/unknown attestation manifest).
        oci = multi(
            [(single([layer(11_000, "o-amd64")], "amd64"), {"architecture": "amd64", "os": "linux"}),
             (single([layer(11_000, "o-arm64")], "arm64"), {"architecture": "arm64", "os": "linux"})],
            attestation=True)
        write_oci_layout(work / "oci-src", "moci", oci)
        subprocess.run(["skopeo", "copy", "--all", "--dest-tls-verify=false", f"oci:{work / 'oci-src'}:moci",
                        f"docker://{reg.host}/multi/oci:moci"], check=True, capture_output=True, timeout=120)
        images["multi/oci:moci"] = oci
        yield Upstream(reg, images)
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def basic_registry(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The same storage behind htpasswd basic auth."""
    work = tmp_path_factory.mktemp("basic")
    htpasswd = work / "htpasswd"
    htpasswd.write_text(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(5)).decode()}\n")
    reg = Registry(work, storage=upstream.registry.storage,
                   auth={"htpasswd": {"realm": "test-realm", "path": str(htpasswd)}})
    yield reg
    reg.stop()


@pytest.fixture(scope="session", params=["token", "access_token"])
def token_registry(request, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory):
    """The same storage behind a token-auth challenge; the token service answers `token` or `access_token`."""
    work = tmp_path_factory.mktemp("token")
    tokens = TokenServer(work, {USER: PASSWORD}, key_name=request.param)
    try:
        reg = Registry(work, storage=upstream.registry.storage, auth=tokens.registry_auth())
    except Exception:
        tokens.stop()
        raise
    yield reg, tokens
    reg.stop()
    tokens.stop()


@pytest.fixture
def fresh_registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(tmp_path / "fresh")
    yield reg
    reg.stop()


@pytest.fixture
def no_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "empty-docker-config"
    d.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    return d
