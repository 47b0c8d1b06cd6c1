"""The manifest contract: valid files load, every bad input gets a precise one-line error."""

from __future__ import annotations

import glob
import subprocess
import sys
from pathlib import Path

import pytest

from bundler.errors import ManifestError
from bundler.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
apiVersion: bundler/v1
kind: Bundle
metadata: {name: k8s-1.30-el9, version: 1.0.0}
spec:
  target: {os: el9, arch: x86_64}
  kubernetes: {version: 1.30.4}
  repos:
    - name: baseos
      baseurl: https://dl.rockylinux.org/pub/rocky/$releasever/BaseOS/$basearch/os
      onMedia: true
    - name: kubernetes
      baseurl: https://pkgs.k8s.io/core:/stable:/v1.30/rpm/
  packages: [kubeadm-1.30.4]
"""


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def error_of(path: Path) -> str:
    with pytest.raises(ManifestError) as e:
        load_manifest(path)
    return str(e.value)


def test_good_manifest_loads_with_defaults_and_url_variables(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, GOOD))
    assert m.bundle_basename == "k8s-1.30-el9-1.0.0-el9-x86_64"
    assert m.kubernetes_version == "1.30.4"
    assert (m.runtime, m.cni, m.prefer, m.install) == ("containerd", "calico", "media", "packages")
    assert m.repos[0].baseurl == "https://dl.rockylinux.org/pub/rocky/9/BaseOS/x86_64/os/"
    assert [r.name for r in m.media_repos] == ["baseos"]
    assert m.packages == ("kubeadm-1.30.4",)


def test_only_metadata_and_target_are_required(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, "apiVersion: bundler/v1\nkind: Bundle\nmetadata: {name: a, version: '1'}\n"
                                      "spec:\n  target: {os: el7, arch: aarch64}\n"))
    assert m.cni == "none" and m.packages == () and m.images == ()


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("os: el9", "os: el6", "line 5: spec.target.os: 'el6' is not one of el7, el8, el9, el10."),
        ("arch: x86_64", "arch: ppc64le", "spec.target.arch: 'ppc64le' is not one of x86_64, aarch64."),
        ("  packages:", "  pakages:", "line 13: spec.pakages: unknown key; did you mean 'packages'?"),
        ("      onMedia: true", "      onMedia: maybe",
         "line 10: spec.repos[0].onMedia: 'maybe' must be true or false."),
        ("version: 1.30.4}", "version: latest}", "spec.kubernetes.version: 'latest' is not valid"),
        ("apiVersion: bundler/v1", "apiVersion: bundler/v2", "apiVersion: 'bundler/v2' is not supported"),
        ("https://pkgs.k8s.io/core:/stable:/v1.30/rpm/", "pkgs.k8s.io/rpm", "spec.repos[1].baseurl: 'pkgs.k8s.io/rpm'"),
        ("version: 1.0.0}", "version: 1.10}", 'write it quoted, "1.10"'),
        ("- name: kubernetes", "- name: baseos", "the repo name 'baseos' is used twice"),
    ],
)
def test_bad_fields_are_named_with_file_line_and_allowed_values(tmp_path: Path, old: str, new: str,
                                                                 expected: str) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    msg = error_of(path)
    assert str(path) in msg
    assert expected in msg


def test_missing_target_and_yaml_syntax_errors(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, "apiVersion: bundler/v1\nkind: Bundle\nmetadata: {name: a, version: '1'}\n"
                                   "spec: {}\n"))
    assert "spec: the key 'target' is required" in msg
    msg = error_of(write(tmp_path, "spec: [unclosed\n"))
    assert "not valid YAML" in msg and "line" in msg
    assert "no such manifest file" in error_of(tmp_path / "missing.yaml")
    (tmp_path / "loop.yaml").symlink_to("loop.yaml")
    assert "the manifest path cannot be resolved (Symlink loop" in error_of(tmp_path / "loop.yaml")


def test_include_merges_repos_and_points_errors_into_the_fragment(tmp_path: Path) -> None:
    (tmp_path / "repos").mkdir()
    write(tmp_path, "spec:\n  repos:\n    - name: baseos\n      baseurl: file:///srv/media/\n      onMedia: true\n"
                    "  mirrors: {registry.k8s.io: mirror.local/k8s}\n", "repos/media.yaml")
    main = write(tmp_path, "apiVersion: bundler/v1\nkind: Bundle\nmetadata: {name: a, version: '1'}\n"
                           "include: [repos/media.yaml]\nspec:\n  target: {os: el8, arch: x86_64}\n  repos:\n"
                           "    - {name: extras, baseurl: 'http://127.0.0.1:1/x/'}\n  packages: [foo]\n")
    m = load_manifest(main)
    assert [r.name for r in m.repos] == ["baseos", "extras"]
    assert m.mirrors == {"registry.k8s.io": "mirror.local/k8s"}
    write(tmp_path, "spec:\n  repos:\n    - name: baseos\n      baseurl: file:///srv/media/\n      onMedia: sure\n",
          "repos/media.yaml")
    msg = error_of(main)
    assert "repos/media.yaml line 5: spec.repos[0].onMedia" in msg


def test_include_loop_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "include: [b.yaml]\nspec: {}\n", "a.yaml")
    write(tmp_path, "include: [a.yaml]\nspec: {}\n", "b.yaml")
    main = write(tmp_path, "apiVersion: bundler/v1\nkind: Bundle\nmetadata: {name: a, version: '1'}\n"
                           "include: [a.yaml]\nspec:\n  target: {os: el8, arch: x86_64}\n")
    assert "include loop" in error_of(main)


def test_reference_manifests_all_validate() -> None:
    files = sorted(glob.glob(str(ROOT / "manifests" / "*.yaml")))
    assert len(files) >= 5
    names = {load_manifest(f).bundle_basename for f in files}
    assert len(names) == len(files)


def test_cli_prints_one_paragraph_and_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("os: el9", "os: el6"))
    r = subprocess.run([sys.executable, "-m", "bundler.cli", "plan", str(path)], capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and "'el6' is not one of el7, el8, el9, el10" in r.stderr.replace("\n", " ")


HEAD = "apiVersion: bundler/v1\nkind: Bundle\nmetadata: {name: a, version: '1'}\n"
BILLION_LAUGHS = "x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9))


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        ("bomb", BILLION_LAUGHS, "through YAML aliases (*name); refusing it (an alias bomb?)"),
        ("self-alias", "x: &a [*a]\n", "an alias (*name) refers to a value that contains it"),
        ("deep", "x: " + "[" * 1000 + "]" * 1000 + "\n", "nested more than 64 levels deep"),
        ("tag", "x: !!python/object/apply:os.system ['true']\n", "the YAML tag"),
        ("custom-tag", "x: !vault {a: b}\n", "the YAML tag '!vault' is not supported"),
        ("bigint", "x: " + "9" * 5000 + "\n", "a number of 5000 characters"),
        ("nul-include", 'include: "a.yaml\\0/b"\n', "control character U+0000"),
        ("top-list", "- a\n- b\n", "must be a YAML mapping"),
        ("k8s-float", "spec:\n  target: {os: el9, arch: x86_64}\n  kubernetes: {version: 1.30}\n",
         'spec.kubernetes.version: 1.30 was read as the number 1.3 (the number lost its trailing zero). Versions and '
         'names are text: write it quoted, "1.30"; it must also be a full version such as 1.30.4.'),
        ("name-float", "spec:\n  target: {os: el9, arch: x86_64}\n  repos: [{name: 1.10, baseurl: 'file:///x'}]\n",
         'spec.repos[0].name: 1.10 was read as the number 1.1'),
        ("bool-name", "spec:\n  target: {os: el9, arch: x86_64}\n  repos: [{name: yes, baseurl: 'file:///x'}]\n",
         "spec.repos[0].name: True is a YAML boolean (so are yes/no/on/off)"),
    ],
)
def test_hostile_yaml_gets_one_line_naming_the_file(tmp_path: Path, name: str, body: str, expected: str) -> None:
    path = write(tmp_path, (HEAD if name != "top-list" else "") + body)
    msg = error_of(path)
    assert str(path) in msg and expected in msg and "\n" not in msg


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "dir", "binary", "latin1", "huge", "deep-chain", "missing"])
def test_includes_must_be_small_regular_utf8_files(tmp_path: Path, kind: str) -> None:
    import os

    inc = {"fifo": "fifo.yaml", "/dev/zero": "/dev/zero", "dir": "sub", "binary": "bin.yaml", "latin1": "l1.yaml",
           "huge": "huge.yaml", "deep-chain": "d0.yaml", "missing": "nope.yaml"}[kind]
    expected = {"fifo": "is a FIFO", "/dev/zero": "is a device or socket", "dir": "is a directory",
                "binary": "contains a NUL byte", "latin1": "is not UTF-8 text (byte 0xe9", "huge": "at most 1048576",
                "deep-chain": "includes nest more than 8 files deep", "missing": "include[0] 'nope.yaml': no such file"}
    os.mkfifo(tmp_path / "fifo.yaml")
    (tmp_path / "sub").mkdir()
    (tmp_path / "bin.yaml").write_bytes(b"spec: {}\n\x00\x01\x02")
    (tmp_path / "l1.yaml").write_bytes("spec: {packages: [caf\u00e9]}\n".encode("latin-1"))
    (tmp_path / "huge.yaml").write_text("spec: {}\n" + "#" * (1 << 20))
    for i in range(12):
        (tmp_path / f"d{i}.yaml").write_text(f"include: d{i + 1}.yaml\nspec: {{}}\n")
    main = write(tmp_path, HEAD + f"include: [{inc}]\nspec:\n  target: {{os: el9, arch: x86_64}}\n")
    msg = error_of(main)  # returns at once: a FIFO is never opened for reading
    assert expected[kind] in msg and "\n" not in msg
    assert str(tmp_path) in msg


def test_reference_manifest_with_quoted_versions_still_loads(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, HEAD.replace("'1'", '"1.10"') + "spec:\n  target: {os: el9, arch: x86_64}\n"
                                                                      "  kubernetes: {version: \"1.30.4\"}\n"))
    assert (m.version, m.kubernetes_version) == ("1.10", "1.30.4")


HOPS_HEAD = HEAD + "spec:\n  target: {os: el9, arch: x86_64}\n  kubernetes:\n    version: 1.32.1\n"


@pytest.mark.parametrize(("hops", "loaded"), [
    ("[1.31.5]", ("1.31.5",)),
    ("[v1.30.2, 1.31.5]", ("1.30.2", "1.31.5")),
    ("[]", ()),
    ("null", ()),
])
def test_upgrade_through_known_good(tmp_path: Path, hops: str, loaded: tuple) -> None:
    m = load_manifest(write(tmp_path, HOPS_HEAD + f"    upgradeThrough: {hops}\n"))
    assert m.upgrade_through == loaded


@pytest.mark.parametrize(("hops", "expected"), [
    ("[1.31.5, 1.30.2]", "upgradeThrough[1]: 1.30.2 comes after 1.31.5 but is older: list the hops in ascending"),
    ("[1.31.2, 1.31.5]", "upgradeThrough[1]: 1.31.2 and 1.31.5 are two hops in one minor (1.31)"),
    ("[1.29.3, 1.31.5]", "upgradeThrough[1]: there is a gap between 1.29.3 and 1.31.5: kubeadm upgrades one minor at "
                         "a time, so the chain needs a hop in 1.30 too"),
    ("[1.30.2]", "upgradeThrough[0]: the last hop 1.30.2 must be one minor below version 1.32.1 (1.31.x), but the "
                 "chain skips 1.31: add a hop in 1.31."),
    ("[1.31.5, 1.32.0]", "upgradeThrough[1]: the last hop 1.32.0 must be one minor below version 1.32.1 (1.31.x), but "
                         "it is in the target's own minor (1.32)"),
    ("[1.33.0]", "upgradeThrough[0]: 1.33.0 is not older than version 1.32.1"),
    ("[1.32.1]", "upgradeThrough[0]: 1.32.1 is not older than version 1.32.1"),
    ("[1.31]", "upgradeThrough[0]: '1.31' is not valid: expected a full version such as 1.31.5."),
    ("[1.30]", "upgradeThrough[0]: 1.30 was read as the number 1.3 (the number lost its trailing zero)"),
    ("'1.31.5'", "upgradeThrough: must be a list of full versions, e.g. [1.31.5]"),
    ("[latest]", "upgradeThrough[0]: 'latest' is not valid: expected a full version such as 1.31.5."),
])
def test_upgrade_through_known_bad(tmp_path: Path, hops: str, expected: str) -> None:
    path = write(tmp_path, HOPS_HEAD + f"    upgradeThrough: {hops}\n")
    msg = error_of(path)
    assert f"{path} line 8: spec.kubernetes.upgradeThrough" in msg and expected in msg and "\n" not in msg


def test_upgrade_through_needs_install_packages(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, HOPS_HEAD + "    upgradeThrough: [1.31.5]\n  install: binaries\n"))
    assert "spec.kubernetes.upgradeThrough: hops are shipped as packages" in msg and "install: packages" in msg
