"""`bundler push BUNDLE --to REGISTRY`: a real docker-registry with TLS (throwaway CA) and htpasswd on loopback,
images pulled back by digest with skopeo and compared byte for byte; bad CA, bad password, unreachable."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bundler.cli import main
from tests.images.helpers import digest_of, free_port
from tests.images.tls_registry import PASSWORD, USER, TLSRegistry, bundle_images, make_ca, write_bundle

pytestmark = pytest.mark.skipif(not (shutil.which("docker-registry") and shutil.which("skopeo")),
                                reason="docker-registry and skopeo are needed")


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[TLSRegistry]:
    r = TLSRegistry(tmp_path / "reg")
    yield r
    r.stop()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    images = bundle_images()
    return write_bundle(tmp_path_factory.mktemp("bundle") / "b", images), images


def _push(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["push", *args])
    return r.exit_code, r.output + (r.stderr if r.stderr_bytes is not None else "")


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_push_by_digest_roundtrip_with_skopeo_and_rerun_sends_nothing(reg: TLSRegistry, bundle, tmp_path) -> None:
    root, images = bundle
    creds = reg.credentials_file()
    code, out = _push(str(root), "--to", f"{reg.host}/proj", "--ca", str(reg.ca), "--credentials", str(creds),
                      "--json")
    assert code == 0, out
    first = json.loads(out[out.index("{"):])
    assert first["images"] == 3 and first["blobs_uploaded"] > 0 and PASSWORD not in out
    assert first["blobs_mounted"] >= 1  # the layer pause and coredns share is mounted, not sent twice
    for ref, img in images.items():
        name = ref.split("/", 1)[1] if not ref.startswith("docker.io/") else ref[len("docker.io/"):]
        host = ref.split("/", 1)[0]
        tag = ref.rsplit(":", 1)[1]
        raw = reg.skopeo_raw(f"proj/{host}/{name.rsplit(':', 1)[0]}:{tag}")
        assert digest_of(raw) == img.digest  # tags kept, bytes intact
        raw = reg.skopeo_raw(f"proj/{host}/{name.rsplit(':', 1)[0]}@{img.digest}")
        assert raw == img.top[0]  # pulled back by digest
    # a multi-arch child, copied out by digest with skopeo and compared with the bundle's bytes
    index = json.loads(images["docker.io/calico/node:v3.28.0"].top[0])
    arm = [d for d in index["manifests"] if d["platform"]["architecture"] == "arm64"][0]["digest"]
    out_dir = tmp_path / "copied"
    r = subprocess.run(["skopeo", "copy", "--src-cert-dir", str(reg.cert_dir()), "--src-creds", f"{USER}:{PASSWORD}",
                        f"docker://{reg.host}/proj/docker.io/calico/node@{arm}", f"oci:{out_dir}:x"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    idx = json.loads((out_dir / "index.json").read_text())
    assert idx["manifests"][0]["digest"] == arm
    for blob in (out_dir / "blobs" / "sha256").iterdir():
        assert (root / "images" / "blobs" / "sha256" / blob.name).read_bytes() == blob.read_bytes()
    # a re-run finds everything and sends nothing
    code, out = _push(str(root), "--to", f"{reg.host}/proj", "--ca", str(reg.ca), "--credentials", str(creds),
                      "--json")
    again = json.loads(out[out.index("{"):])
    assert code == 0 and again["blobs_uploaded"] == 0 and again["manifests_put"] == 0, out


def test_partial_push_resumes_and_dry_run_sends_nothing(reg: TLSRegistry, bundle, tmp_path) -> None:
    root, images = bundle
    tarball = tmp_path / "b.tar"
    with tarfile.open(tarball, "w") as t:
        t.add(root, arcname="push-test-1-el9-x86_64")
    common = ["--to", reg.host, "--ca", str(reg.ca), "--credentials", str(reg.credentials_file())]
    code, out = _push(str(tarball), *common, "--image", "registry.k8s.io/pause:3.9", "-q")
    assert code == 0 and "pushed 1 image(s)" in out, out
    code, out = _push(str(root), *common, "--dry-run", "--json")
    plan = json.loads(out[out.index("{"):])
    # 2 tops and 2 index children; 7 blobs missing per repository (the shared one is in pause's only)
    assert code == 0 and plan["manifests_put"] == 4 and plan["missing_blobs"] == 7, out
    code, out = _push(str(root), *common, "--json")
    done = json.loads(out[out.index("{"):])
    assert code == 0 and done["manifests_present"] == 1 and done["blobs_present"] == 3, out
    assert done["blobs_uploaded"] + done["blobs_mounted"] == 7, out
    assert digest_of(reg.skopeo_raw("registry.k8s.io/coredns/coredns:v1.11.1")) == \
        images["registry.k8s.io/coredns/coredns:v1.11.1"].digest


def test_errors_name_the_fix(reg: TLSRegistry, bundle, tmp_path, monkeypatch) -> None:
    root, _ = bundle
    monkeypatch.setenv("AIRGAP_BUNDLER_ATTEMPTS", "1")
    other_ca = make_ca(tmp_path, "other")[0]
    code, out = _push(str(root), "--to", reg.host, "--ca", str(other_ca), "--credentials", str(reg.credentials_file()))
    assert code == 1 and "is not trusted" in _flat(out) and f"--ca {other_ca}" in _flat(out), out
    assert "Traceback" not in out
    code, out = _push(str(root), "--to", reg.host, "--credentials", str(reg.credentials_file()))
    assert code == 1 and "is not trusted" in _flat(out) and "--ca FILE" in _flat(out), out
    code, out = _push(str(root), "--to", reg.host, "--ca", str(reg.ca),
                      "--credentials", str(reg.credentials_file("wrong-" + PASSWORD)))
    flat = _flat(out)
    assert code == 1 and "HTTP 401" in flat and "Check the user and password" in flat, out
    assert PASSWORD not in out
    empty = tmp_path / "dc"
    empty.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(empty))
    code, out = _push(str(root), "--to", reg.host, "--ca", str(reg.ca))
    assert code == 1 and "--credentials FILE" in _flat(out), out
    code, out = _push(str(root), "--to", f"127.0.0.1:{free_port()}", "--ca", str(reg.ca))
    assert code == 1 and "cannot reach the registry" in _flat(out), out
    code, out = _push(str(root), "--to", "https://x/Bad_Project")
    assert code == 2 and "is not REGISTRY[/PREFIX]" in _flat(out), out
    code, out = _push(str(root), "--to", reg.host, "--image", "nope:1")
    assert code == 2 and "not in the bundle" in _flat(out), out


def test_trust_and_credentials_from_a_manifests_registries_section(reg: TLSRegistry, bundle, tmp_path,
                                                                    monkeypatch) -> None:
    root, images = bundle
    (tmp_path / "ca.pem").write_bytes(reg.ca.read_bytes())
    m = tmp_path / "m.yaml"
    m.write_text("apiVersion: bundler/v1\nkind: Bundle\nmetadata: {name: a, version: '1'}\nspec:\n"
                 "  target: {os: el9, arch: x86_64}\n  registries:\n"
                 f"    \"{reg.host}\":\n      caFile: ca.pem\n"
                 "      credentials: {fromEnv: {username: PUSH_USER, password: PUSH_PASS}}\n")
    monkeypatch.setenv("PUSH_USER", USER)
    monkeypatch.setenv("PUSH_PASS", PASSWORD)
    code, out = _push(str(root), "--to", f"{reg.host}/site", "--registries", str(m), "-q")
    assert code == 0 and "pushed 3 image(s)" in out and PASSWORD not in out, out
    assert digest_of(reg.skopeo_raw("site/registry.k8s.io/pause:3.9")) == images["registry.k8s.io/pause:3.9"].digest


def test_docker_bundles_also_get_docker_io_images_at_the_bare_repository(reg: TLSRegistry, tmp_path) -> None:
    images = bundle_images()
    root = write_bundle(tmp_path / "docker-bundle", images)
    bom = json.loads((root / "bundle.json").read_text())
    (root / "bundle.json").write_text(json.dumps({**bom, "runtime": "docker"}))
    code, out = _push(str(root), "--to", reg.host, "--ca", str(reg.ca), "--credentials", str(reg.credentials_file()),
                      "-q")
    assert code == 0, out
    calico = images["docker.io/calico/node:v3.28.0"]
    assert digest_of(reg.skopeo_raw("calico/node:v3.28.0")) == calico.digest  # what docker's mirror asks for
    assert digest_of(reg.skopeo_raw("docker.io/calico/node:v3.28.0")) == calico.digest
