"""SBOM documents (issue 14): a real CLI build from the loopback upstreams carries SPDX 2.3 and CycloneDX 1.6
documents that the official validators (spdx-tools, cyclonedx-python-lib) accept, that list every RPM, image and
file of bundle.json with its digest, that a --locked rebuild reproduces byte for byte, and that `bundler sbom`
regenerates from the tarball and from the unpacked directory."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest

from bundler.bundle.verify import verify
from bundler.sbom import PATHS, render
from bundler.sbom.source import bundle_inventory
from tests.bundle.bundles import TOP as SYNTHETIC_TOP
from tests.bundle.bundles import content, sha, write_bundle
from tests.upstream.stack import k8s_images

REPO = Path(__file__).resolve().parents[2]
K8S = ["kubeadm-1.30.4", "kubelet-1.30.4", "kubectl-1.30.4", "containerd.io"]
EPOCH = "1700000000"  # 2023-11-14T22:13:20Z
INDEX = "application/vnd.oci.image.index.v1+json"


def validate_spdx(path: Path) -> list[str]:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    return [m.validation_message for m in validate_full_spdx_document(parse_file(str(path)))]


def validate_cyclonedx(text: str) -> object:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    return JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)


def bundler(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bundler.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def spdx_digests(doc: dict[str, Any]) -> dict[str, str]:
    """purl -> sha256 of every SPDX package that has a purl."""
    return {r["referenceLocator"]: next(c["checksumValue"] for c in p["checksums"] if c["algorithm"] == "SHA256")
            for p in doc["packages"] for r in p.get("externalRefs", []) if r["referenceType"] == "purl"}


def cdx_components(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    stack = list(doc["components"])
    while stack:
        c = stack.pop(0)
        out.append(c)
        stack.extend(c.get("components", []))
    return out


def cdx_sha256(c: dict[str, Any]) -> str:
    return next(h["content"] for h in c["hashes"] if h["alg"] == "SHA-256")


def test_a_real_build_carries_valid_reproducible_sboms_of_everything_it_ships(tmp_path: Path, stack) -> None:
    manifest = tmp_path / "stack.yaml"
    manifest.write_text(stack.manifest(packages=K8S, cni="flannel"))
    env = {"SOURCE_DATE_EPOCH": EPOCH}
    cache = ["--cache", str(tmp_path / "cache")]
    r = bundler("lock", str(manifest), *cache, env=env)
    assert r.returncode == 0, r.stderr
    r = bundler("build", str(manifest), *cache, "-o", str(tmp_path / "a"), "-q", "--locked", env=env)
    assert r.returncode == 0, r.stderr
    tarball = next((tmp_path / "a").glob("*.tar.gz"))
    r = bundler("build", str(manifest), "--cache", str(tmp_path / "cache2"), "-o", str(tmp_path / "b"), "-q",
                "--locked", "--format", "dir", env=env)
    assert r.returncode == 0, r.stderr
    top = next((tmp_path / "b").iterdir())

    # the tarball carries both documents, listed in SHA256SUMS; the --locked rebuild (fresh cache, dir) has the
    # same bytes
    with tarfile.open(tarball) as tar:
        names = {m.name.split("/", 1)[1]: m for m in tar.getmembers() if "/" in m.name}
        embedded = {fmt: tar.extractfile(names[rel]).read() for fmt, rel in PATHS.items()}  # type: ignore[union-attr]
        sums = tar.extractfile(names["SHA256SUMS"]).read().decode()  # type: ignore[union-attr]
    for fmt, rel in PATHS.items():
        assert f"  {rel}\n" in sums
        assert (top / rel).read_bytes() == embedded[fmt], f"{fmt}: the --locked rebuild differs"
    assert verify(tarball).ok and verify(top).ok

    # the official validators accept both
    (tmp_path / "spdx.json").write_bytes(embedded["spdx"])
    assert validate_spdx(tmp_path / "spdx.json") == []
    assert validate_cyclonedx(embedded["cyclonedx"].decode()) is None

    # every RPM, image and file of bundle.json is in both, with bundle.json's digest
    bom = json.loads((top / "bundle.json").read_text())
    spdx = json.loads(embedded["spdx"])
    cdx = json.loads(embedded["cyclonedx"])
    assert spdx["creationInfo"]["created"] == cdx["metadata"]["timestamp"] == "2023-11-14T22:13:20Z"
    assert spdx["documentNamespace"].endswith(cdx["serialNumber"].removeprefix("urn:uuid:"))
    by_purl = spdx_digests(spdx)
    comps = cdx_components(cdx)
    cdx_by_purl = {c["purl"]: cdx_sha256(c) for c in comps if "purl" in c}
    assert by_purl == cdx_by_purl
    assert len(bom["packages"]) >= 4 and len(bom["images"]) == len(k8s_images("1.30.4", "flannel"))
    assert {f["kind"] for f in bom["files"]} == {"binary", "manifest"}
    for p in bom["packages"]:
        purl = next(u for u in by_purl if u.startswith(f"pkg:rpm/{p['repo']}/{p['name']}@"))
        assert by_purl[purl] == p["sha256"] and f"arch={p['arch']}" in purl and "distro=el9" in purl
        [c] = [c for c in comps if c.get("purl") == purl]
        if p.get("license"):
            assert c["licenses"], p
    for i in bom["images"]:
        repo, _, tag = i["ref"].rpartition(":")
        [purl] = [u for u in by_purl if u.startswith("pkg:oci/") and f"repository_url={repo}&" in u + "&"
                  and f"tag={tag}" in u]
        assert by_purl[purl] == i["digest"].removeprefix("sha256:")
        assert purl.split("@")[1].startswith("sha256:") and "arch=amd64" in purl
        [c] = [c for c in comps if c.get("purl") == purl]
        assert c["type"] == "container"
        assert {"name": "airgap-bundler:platform", "value": "linux/amd64"} in c["properties"]
    for f in bom["files"]:
        [c] = [c for c in comps if c["bom-ref"] == f"file:{f['path']}"]
        assert cdx_sha256(c) == f["sha256"] and c["externalReferences"][0]["url"] == f["source"]
        [p] = [p for p in spdx["packages"] if p.get("packageFileName") == f["path"]]
        assert p["checksums"] == [{"algorithm": "SHA256", "checksumValue": f["sha256"]}]
        assert p["downloadLocation"] == f["source"] and f["source"].startswith("https://")
    # SPDX takes only URLs with a DNS name as downloadLocation: the loopback repos' go into the comment
    for p in spdx["packages"]:
        if p.get("primaryPackagePurpose") == "INSTALL" and p["SPDXID"] != "SPDXRef-Bundle":
            assert p["downloadLocation"] == "NOASSERTION" and "downloaded from http://127.0.0.1:" in p["comment"]
    installer = [c for c in comps if c["bom-ref"].startswith("installer:")]
    assert {c["name"] for c in installer} >= {"install.py", "installer/cli.py"}
    for c in installer:
        assert cdx_sha256(c) == sha((top / c["name"]).read_bytes())

    # `bundler sbom` regenerates the same bytes from the tarball (stdout: dated by its entries' mtime) and from
    # the directory (-o; a --format dir bundle's files have today's mtime: dated by SOURCE_DATE_EPOCH)
    for fmt in PATHS:
        r = bundler("sbom", str(tarball), "--format", fmt)
        assert r.returncode == 0 and r.stdout.encode() == embedded[fmt], r.stderr
        out = tmp_path / f"out-{fmt}.json"
        r = bundler("sbom", str(tmp_path / "b"), "--format", fmt, "-o", str(out), env=env)
        assert r.returncode == 0 and out.read_bytes() == embedded[fmt], r.stderr
        assert f"wrote {out}" in r.stderr

    # a tampered SBOM is refused like any other file
    doc = top / PATHS["cyclonedx"]
    doc.write_bytes(doc.read_bytes().replace(b'"SHA-256"', b'"SHA-512"', 1))
    report = verify(top)
    assert not report.ok and PATHS["cyclonedx"] in report.format()


def _multiarch_bundle(tmp_path: Path, license_text: str, bundle_json_last: bool = False) -> Path:
    """The synthetic bundle of tests/bundle with a multi-arch image (an index: amd64, arm64/v8, an attestation)
    and a kubeadm whose License tag is `license_text`."""
    files = content()
    children = []
    for plat in ({"os": "linux", "architecture": "amd64"}, {"os": "linux", "architecture": "arm64", "variant": "v8"},
                 {"os": "unknown", "architecture": "unknown"}):
        blob = json.dumps({"schemaVersion": 2, "for": plat}).encode()
        files[f"images/blobs/sha256/{sha(blob)}"] = blob
        children.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{sha(blob)}",
                         "size": len(blob), "platform": plat})
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": children}).encode()
    files[f"images/blobs/sha256/{sha(index)}"] = index
    bom = json.loads(files["bundle.json"])
    bom["images"].append({"ref": "docker.io/calico/node:v3.28.1", "digest": f"sha256:{sha(index)}",
                          "mediaType": INDEX, "size": 3000, "platforms": ["linux/amd64", "linux/arm64/v8"]})
    bom["packages"][0]["license"] = license_text
    bom["packages"][1]["license"] = "MIT AND (BSD-3-Clause OR Apache-2.0)"
    bom["packages"][2].update(epoch=1, version="1.4.7+git~1")
    files["bundle.json"] = json.dumps(bom, indent=2).encode()
    return write_bundle(tmp_path, files, bundle_json_last=bundle_json_last)


def test_multi_arch_images_licenses_and_purls(tmp_path: Path) -> None:
    inv = bundle_inventory(_multiarch_bundle(tmp_path, "ASL 2.0 and GPLv2+"))
    spdx_file = tmp_path / "doc.spdx.json"
    spdx_file.write_bytes(render(inv, "spdx"))
    cdx_text = render(inv, "cyclonedx").decode()
    assert validate_spdx(spdx_file) == []
    assert validate_cyclonedx(cdx_text) is None
    (tmp_path / "repacked").mkdir()  # bundle.json after the blobs: the same document from one read
    repacked = _multiarch_bundle(tmp_path / "repacked", "ASL 2.0 and GPLv2+", bundle_json_last=True)
    assert render(bundle_inventory(repacked), "cyclonedx").decode() == cdx_text

    # an index the bundle does not ship (a delta bundle relies on the site's copy) is listed without children
    files = content()
    bom = json.loads(files["bundle.json"])
    bom["images"].append({"ref": "docker.io/calico/node:v3.28.1", "digest": "sha256:" + "1" * 64,
                          "mediaType": INDEX, "size": 3000, "platforms": ["linux/amd64", "linux/arm64/v8"]})
    (tmp_path / "delta").mkdir()
    delta = write_bundle(tmp_path / "delta", files | {"bundle.json": json.dumps(bom).encode()})
    [node] = [c for c in json.loads(render(bundle_inventory(delta), "cyclonedx"))["components"]
              if c["name"] == "docker.io/calico/node"]
    assert "components" not in node and cdx_sha256(node) == "1" * 64
    assert {"name": "airgap-bundler:platformManifests", "value": "not in this bundle"} in node["properties"]

    # one component per platform manifest under the index; the attestation is not a platform
    cdx = json.loads(cdx_text)
    [node] = [c for c in cdx["components"] if c["name"] == "docker.io/calico/node"]
    assert [p["value"] for c in node["components"] for p in c["properties"] if p["name"].endswith(":platform")] \
        == ["linux/amd64", "linux/arm64/v8"]
    assert "arch=arm64" in node["components"][1]["purl"] and "variant=v8" in node["components"][1]["purl"]
    spdx = json.loads(spdx_file.read_text())
    ids = {p["SPDXID"]: p for p in spdx["packages"]}
    parent = next(i for i, p in ids.items() if p["name"] == "docker.io/calico/node" and
                  p["versionInfo"] == "v3.28.1")
    kids = [r["relatedSpdxElement"] for r in spdx["relationships"] if r["spdxElementId"] == parent]
    assert len(kids) == 2 and all(ids[k]["versionInfo"].startswith("sha256:") for k in kids)

    # licenses: a legacy RPM tag is kept verbatim (SPDX LicenseRef with the text, CycloneDX name), an SPDX
    # expression is used as is
    [extracted] = spdx["hasExtractedLicensingInfos"]
    assert extracted["extractedText"] == "ASL 2.0 and GPLv2+"
    kubeadm = next(p for p in spdx["packages"] if p["name"] == "kubeadm")
    assert kubeadm["licenseDeclared"] == extracted["licenseId"]
    containerd = next(c for c in cdx["components"] if c["name"] == "containerd.io")
    assert containerd["licenses"] == [{"expression": "MIT AND (BSD-3-Clause OR Apache-2.0)"}]

    # purl: epoch as a qualifier, '+' and '~' percent-encoded; the reference parser reads back what was written
    from packageurl import PackageURL

    conntrack = next(c for c in cdx["components"] if c["name"] == "conntrack-tools")
    assert conntrack["purl"] == ("pkg:rpm/kubernetes/conntrack-tools@1.4.7%2Bgit~1-2.el9"
                                 "?arch=x86_64&distro=el9&epoch=1")
    for c in cdx_components(cdx):
        if "purl" in c:
            assert PackageURL.from_string(c["purl"]).to_string() == c["purl"], c["purl"]


def test_same_content_same_identity_other_content_other_identity(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = bundle_inventory(write_bundle(tmp_path / "a", content()))
    again = bundle_inventory(write_bundle(tmp_path / "b", content()))
    assert render(one, "spdx") == render(again, "spdx") and render(one, "cyclonedx") == render(again, "cyclonedx")
    shipped = content(sbom=True)  # what tests/bundle's synthetic bundle carries
    assert {rel: render(one, fmt) for fmt, rel in PATHS.items()} == {rel: shipped[rel] for rel in PATHS.values()}
    other = bundle_inventory(write_bundle(tmp_path, content(version="1.0.1")))
    assert other.uuid != one.uuid


@pytest.mark.parametrize("make, message, code", [
    (lambda d: d / "missing.tar.gz", "does not exist", 2),
    (lambda d: (d / "x.txt").write_text("not a bundle") and d / "x.txt", "neither a directory nor a tar", 1),
    (lambda d: d, "has no bundle.json", 1),
    (lambda d: write_bundle(d, content() | {f"images/blobs/sha256/{'0' * 64}": b"\x1f\x8b not json",
                                            "bundle.json": json.dumps({**json.loads(content()["bundle.json"]),
                                                                       "images": [{"ref": "r.example/a:1",
                                                                                   "digest": "sha256:" + "0" * 64,
                                                                                   "mediaType": INDEX}]})
                                            .encode()}), "is not an image index", 1),
    (lambda d: write_bundle(d, content() | {"bundle.json": json.dumps({**json.loads(content()["bundle.json"]),
                                                                       "files": [{"name": "helm", "sha256": None}]})
                                            .encode()}), "file helm has sha256 None", 1),
], ids=["missing", "not-a-bundle", "empty-dir", "index-not-json", "file-without-sha256"])
def test_sbom_of_a_non_bundle_says_what_is_wrong(tmp_path: Path, make, message: str, code: int) -> None:
    path = make(tmp_path)
    r = bundler("sbom", str(path))
    assert r.returncode == code and r.stderr.startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    assert message in r.stderr.replace("\n", " ")
    r = bundler("sbom", str(write_bundle(tmp_path, content())), "-o", str(tmp_path / "no" / "dir" / "x.json"))
    assert r.returncode == 1 and "cannot write" in r.stderr and not (tmp_path / "no").exists(), r.stderr


def test_output_into_a_fifo_writes_into_it_and_leaves_it_a_fifo(tmp_path: Path) -> None:
    """-o /dev/stdout or a pipe must not be replaced by a regular file (the atomic rename is for files only)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    tarball = write_bundle(tmp_path, content())
    r = bundler("sbom", str(tarball), "--format", "cyclonedx", "-o", str(fifo))
    reader.join(timeout=30)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and got == [render(bundle_inventory(tarball), "cyclonedx")]


def test_synthetic_top_is_found_from_the_unpack_directory(tmp_path: Path) -> None:
    subprocess.run(["tar", "-xzf", str(write_bundle(tmp_path, content())), "-C", str(tmp_path)], check=True)
    from_dir = render(bundle_inventory(tmp_path / SYNTHETIC_TOP), "cyclonedx")
    assert json.loads(from_dir)["metadata"]["component"]["name"] == "k8s-1.30-el9"


@pytest.mark.parametrize("text, expected", [
    ("MIT", "MIT"),
    ("MIT AND (BSD-3-Clause OR Apache-2.0)", "MIT AND (BSD-3-Clause OR Apache-2.0)"),
    ("GPL-2.0-or-later WITH Classpath-exception-2.0", "GPL-2.0-or-later WITH Classpath-exception-2.0"),
    ("ASL 2.0", None), ("GPLv2+", None), ("MIT and BSD", None), ("mit", None), ("(MIT", None), ("MIT AND", None),
    ("MIT WITH Apache-2.0", None), ("", None), (None, None),
])
def test_only_spdx_expressions_over_known_ids_pass_as_expressions(text: str | None, expected: str | None) -> None:
    from bundler.sbom.licenses import spdx_expression

    assert spdx_expression(text) == expected
