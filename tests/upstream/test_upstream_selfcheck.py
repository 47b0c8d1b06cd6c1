"""Proof that the test upstream is what the RPM engine's tests assume it is.

Everything here is real: rpmbuild/createrepo_c built the repos, a real HTTP server serves them,
dnf (libsolv) resolves and installs from them into empty installroots.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import lzma
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import zstandard

from .fixtures import YumRepos
from .http import RepoHTTPServer
from .yumrepos import (
    K8S_REL,
    POST_LOG,
    REPOS,
    DnfError,
    Upstream,
    build_upstream,
    build_upstream_cached,
    dnf_install,
    dnf_options,
    dnf_resolve,
    dnf_resolve_detailed,
    full_nevra,
    rpm_qa,
)

REPO_NS = {"r": "http://linux.duke.edu/metadata/repo"}
EXT = {"gz": ".gz", "xz": ".xz", "zstd": ".zst"}

KUBEADM_1304_CLOSURE = {
    "kubeadm-1.30.4-150500.1.1.x86_64": "extras",
    "kubelet-1.30.4-150500.1.1.x86_64": "extras",
    "kubectl-1.30.4-150500.1.1.x86_64": "extras",
    "kubernetes-cni-1.4.0-150500.1.1.x86_64": "extras",
    "cri-tools-1.30.1-150500.1.1.x86_64": "extras",  # (cri-tools >= 1.29.0 if kubelet)
    "containerd.io-1.7.19-3.1.el9.x86_64": "extras",  # (containerd-runtime or docker-runtime)
    "libbar-2.0-1.el9.x86_64": "extras",  # libbar >= 2.0; media only has 1.0
    "conntrack-tools-1.4.7-2.el9.x86_64": "media",  # virtual provide "conntrack"
    "libfoo-1.0-1.el9.x86_64": "media",
    "iptables-1.8.8-6.el9.x86_64": "media",
    "ethtool-6.2-1.el9.x86_64": "media",  # file dep only in filelists
    "bash-5.1.8-6.el9.x86_64": "media",  # /bin/sh for %post
    "glibc-2.34-100.el9.x86_64": "media",
    "filesystem-3.16-2.el9.x86_64": "media",
}


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _decompress(name: str, data: bytes) -> bytes:
    if name.endswith(".gz"):
        return gzip.decompress(data)
    if name.endswith(".xz"):
        return lzma.decompress(data)
    if name.endswith(".zst"):
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def _repomd(yum_repos: YumRepos, repo: str, comp: str) -> dict[str, tuple[str, str, str]]:
    """{type: (href, checksum, open-checksum)} from the served repomd.xml."""
    status, _, body = _get(yum_repos.url(repo, comp) + "repodata/repomd.xml")
    assert status == 200
    out = {}
    for data in ET.fromstring(body).findall("r:data", REPO_NS):
        cs = data.find("r:checksum", REPO_NS)
        ocs = data.find("r:open-checksum", REPO_NS)
        assert cs is not None and cs.get("type") == "sha256"
        href = data.find("r:location", REPO_NS).get("href")  # type: ignore[union-attr]
        out[data.get("type")] = (href, cs.text, ocs.text if ocs is not None else "")
    return out


# ----------------------------------------------------------------------------- repodata
@pytest.mark.parametrize("comp", ["gz", "xz", "zstd"])
@pytest.mark.parametrize("repo", ["media", "extras", "modular"])
def test_repomd_lists_metadata_with_valid_sha256(yum_repos: YumRepos, repo: str, comp: str) -> None:
    md = _repomd(yum_repos, repo, comp)
    want = {"primary", "filelists", "other"} | ({"modules"} if repo == "modular" else set())
    assert want <= set(md)
    if comp == "gz":  # EL7-EL9 style also carries sqlite databases
        assert {"primary_db", "filelists_db", "other_db"} <= set(md)
    else:
        assert not any(t.endswith("_db") for t in md)
    for mdtype in want:
        href, checksum, open_checksum = md[mdtype]
        assert href.endswith(EXT[comp]), href
        status, _, data = _get(yum_repos.url(repo, comp) + href)
        assert status == 200
        assert hashlib.sha256(data).hexdigest() == checksum
        assert hashlib.sha256(_decompress(href, data)).hexdigest() == open_checksum


def test_file_dependency_target_is_only_in_filelists(yum_repos: YumRepos) -> None:
    md = _repomd(yum_repos, "media", "gz")
    primary = gzip.decompress(_get(yum_repos.url("media") + md["primary"][0])[2]).decode()
    filelists = gzip.decompress(_get(yum_repos.url("media") + md["filelists"][0])[2]).decode()
    assert "/usr/share/ethtool/data.conf" not in primary
    assert "/usr/share/ethtool/data.conf" in filelists
    assert "/usr/sbin/ethtool" in primary  # *bin/* paths are in primary
    extras_primary = gzip.decompress(
        _get(yum_repos.url("extras") + _repomd(yum_repos, "extras", "gz")["primary"][0])[2]).decode()
    assert "/usr/share/ethtool/data.conf" in extras_primary  # kubelet's requirement
    assert "(containerd-runtime or docker-runtime)" in extras_primary


def test_modules_yaml_has_both_streams_and_defaults(yum_repos: YumRepos) -> None:
    href = _repomd(yum_repos, "modular", "gz")["modules"][0]
    text = gzip.decompress(_get(yum_repos.url("modular") + href)[2]).decode()
    assert text.count("document: modulemd\n") == 2
    assert "document: modulemd-defaults" in text
    assert 'stream: "1.0"' in text and 'stream: "2.0"' in text
    assert "podman-0:2.2.1-7.module_el8.3.0+699+d61d9c41.x86_64" in text
    assert "conmon-2:2.0.6-4.module_el8.1.0+298+41f9343a.x86_64" in text
    assert "podman-0:3.0.1" not in text  # the non-modular podman


def test_compression_variants_share_rpms(yum_repos: YumRepos) -> None:
    for comp in ("xz", "zstd"):
        assert (yum_repos.path("media", comp) / "Packages").resolve() == (yum_repos.path("media") / "Packages")


# ----------------------------------------------------------------------------- HTTP behaviour
def test_range_requests(yum_repos: YumRepos) -> None:
    url = yum_repos.rpm_url("extras", f"kubeadm-1.30.4-{K8S_REL}.x86_64")
    status, headers, full = _get(url)
    assert status == 200 and headers["Accept-Ranges"] == "bytes" and len(full) > 100
    size = len(full)

    status, headers, part = _get(url, {"Range": "bytes=10-19"})
    assert status == 206 and part == full[10:20]
    assert headers["Content-Range"] == f"bytes 10-19/{size}"

    status, headers, part = _get(url, {"Range": "bytes=100-"})
    assert status == 206 and part == full[100:] and headers["Content-Length"] == str(size - 100)

    status, _, part = _get(url, {"Range": "bytes=-7"})
    assert status == 206 and part == full[-7:]

    status, headers, _ = _get(url, {"Range": f"bytes={size}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{size}"

    # If-Range: resume only when the validator still matches
    status, _, part = _get(url, {"Range": "bytes=10-19", "If-Range": '"stale"'})
    assert status == 200 and part == full
    _, h2, _ = _get(url)
    status, _, part = _get(url, {"Range": "bytes=10-19", "If-Range": h2["ETag"]})
    assert status == 206 and part == full[10:20]


def test_request_counting(yum_repos: YumRepos) -> None:
    srv = yum_repos.server
    assert srv.count() == 0  # reset per test
    path = yum_repos.rpm_urlpath("media", "libfoo-1.0-1.el9.x86_64")
    for _ in range(3):
        _get(yum_repos.server.url_for(path))
    _get(yum_repos.server.url_for("/media/nonexistent"))
    assert srv.counts()[path] == 3
    assert srv.count("/media/") == 4
    assert srv.count(path, prefix=False) == 3
    assert srv.downloads("/media/") == [path] * 3
    assert srv.count("/extras/") == 0


def test_reset_waits_for_requests_being_answered(tmp_path: Path) -> None:
    """A client can finish reading before the server thread logs the request; reset() must not let that late entry
    into the next test's counts (before the fix: 36 of 2000 rounds leaked one)."""
    (tmp_path / "f").write_bytes(b"x" * 200_000)
    leaks = 0
    with RepoHTTPServer(tmp_path) as srv:
        for _ in range(400):
            _get(srv.url_for("/f"))
            srv.reset()
            leaks += srv.count()
    assert leaks == 0


def test_faults(yum_repos: YumRepos) -> None:
    srv = yum_repos.server
    path = yum_repos.rpm_urlpath("media", "libfoo-1.0-1.el9.x86_64")
    url = srv.url_for(path)
    good = _get(url)[2]

    srv.fail(path, times=2)
    assert [_get(url)[0] for _ in range(3)] == [503, 503, 200]

    srv.fail(path, times=1, status=500)
    assert _get(url)[0] == 500

    srv.drop(path)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
        _get(url)
    assert _get(url)[2] == good

    srv.truncate(path, keep_bytes=50)
    with pytest.raises(http.client.IncompleteRead) as exc:
        _get(url)
    assert exc.value.partial == good[:50]

    srv.corrupt(path, times=1)
    bad = _get(url)[2]
    assert len(bad) == len(good) and bad != good
    assert hashlib.sha256(bad).hexdigest() != hashlib.sha256(good).hexdigest()
    assert _get(url)[2] == good

    srv.slow(path, 0.3)
    t0 = time.monotonic()
    assert _get(url)[2] == good
    assert time.monotonic() - t0 >= 0.3

    srv.corrupt(path)  # forever until cleared
    assert _get(url)[2] != good and _get(url)[2] != good
    srv.clear_faults()
    assert _get(url)[2] == good
    statuses = [r.status for r in srv.log if r.path == path]
    assert 0 in statuses and 503 in statuses


def test_standalone_server_on_ephemeral_port(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"0123456789")
    with RepoHTTPServer(tmp_path) as srv:
        assert srv.url.startswith("http://127.0.0.1:") and srv.port > 0
        assert _get(srv.url_for("a.txt"), {"Range": "bytes=2-4"})[2] == b"234"
        assert _get(srv.url_for("../etc/passwd"))[0] == 404
    with pytest.raises(RuntimeError):
        _ = srv.port


# ----------------------------------------------------------------------------- dnf reference
def test_dnf_resolves_kubeadm_1_30_4(yum_repos: YumRepos) -> None:
    got = dnf_resolve(yum_repos.urls("media", "extras"), ["kubeadm-1.30.4"])
    assert got == KUBEADM_1304_CLOSURE
    # resolving reads metadata only
    assert yum_repos.server.downloads("/extras/Packages/") == []


def test_dnf_resolve_agrees_with_dnf_cli_download(yum_repos: YumRepos, tmp_path: Path) -> None:
    """The API-based resolver and `dnf install --downloadonly` choose the same RPMs."""
    import subprocess

    repos = yum_repos.urls("media", "extras")
    detailed = dnf_resolve_detailed(repos, ["kubeadm-1.30.4"])
    root, dest = tmp_path / "root", tmp_path / "dl"
    root.mkdir()
    proc = subprocess.run(["dnf", *dnf_options(repos, root), "install", "--downloadonly",
                           f"--downloaddir={dest}", "kubeadm-1.30.4"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {p.name for p in dest.iterdir()} == {Path(p.location).name for p in detailed}
    assert {Path(p.location).name for p in detailed} == {
        f"{n.rsplit('.', 1)[0]}.{n.rsplit('.', 1)[1]}.rpm" for n in KUBEADM_1304_CLOSURE}


def test_dnf_installs_kubeadm_into_empty_root(yum_repos: YumRepos, tmp_path: Path) -> None:
    root = tmp_path / "root"
    ok, out = dnf_install(yum_repos.urls("media", "extras"), ["kubeadm-1.30.4"], installroot=root)
    assert ok, out
    assert rpm_qa(root) == set(KUBEADM_1304_CLOSURE)
    assert "scriptlet failed" not in out
    log = (root / POST_LOG.lstrip("/")).read_text()
    assert "kubelet %post ran" in log and "containerd.io %post ran" in log
    assert (root / "usr/share/ethtool/data.conf").exists()
    downloaded = {Path(p).name for p in yum_repos.server.downloads() if p.endswith(".rpm")}
    assert len(downloaded) == len(KUBEADM_1304_CLOSURE)


def test_version_choice_matters(yum_repos: YumRepos) -> None:
    repos = yum_repos.urls("media", "extras")
    old = dnf_resolve(repos, ["kubeadm-1.29.8", "kubelet-1.29.8", "kubectl-1.29.8"])
    assert "kubernetes-cni-1.3.0-150500.1.1.x86_64" in old  # kubelet-1.29.8: kubernetes-cni = 1.3.0
    assert "kubelet-1.29.8-150500.1.1.x86_64" in old
    mid = dnf_resolve(repos, ["kubeadm-1.30.3"])
    assert "kubeadm-1.30.3-150500.1.1.x86_64" in mid
    assert "kubelet-1.30.4-150500.1.1.x86_64" in mid  # kubelet >= 1.30.0: best is newest
    # unpinned kubeadm-1.29.8 still drags the newest kubelet (a realistic trap)
    assert "kubelet-1.30.4-150500.1.1.x86_64" in dnf_resolve(repos, ["kubeadm-1.29.8"])


def test_obsoletes_and_conflicts(yum_repos: YumRepos, tmp_path: Path) -> None:
    repos = yum_repos.urls("media", "extras")
    assert dnf_resolve(repos, ["oldtool"]) == {"newtool-2.0-1.el9.noarch": "extras"}
    assert dnf_resolve(yum_repos.urls("media"), ["oldtool"]) == {"oldtool-1.0-1.el9.noarch": "media"}
    both = dnf_resolve(repos, ["runc", "containerd.io"])
    assert "containerd.io-1.7.19-3.1.el9.x86_64" in both
    assert not any(n.startswith("runc-") for n in both)
    # runc installed first, then containerd.io replaces it
    root = tmp_path / "root"
    ok, out = dnf_install(yum_repos.urls("media"), ["runc"], installroot=root)
    assert ok, out
    ok, out = dnf_install(repos, ["containerd.io"], installroot=root)
    assert ok, out
    assert not any(n.startswith("runc-") for n in rpm_qa(root))


def test_extras_alone_is_not_installable(yum_repos: YumRepos) -> None:
    with pytest.raises(DnfError) as exc:
        dnf_resolve(yum_repos.urls("extras"), ["kubelet"])
    assert "/usr/share/ethtool/data.conf" in str(exc.value)
    assert "conntrack" in str(exc.value)


def test_epoch_spelling(yum_repos: YumRepos) -> None:
    got = dnf_resolve({"appstream": yum_repos.url("modular")}, ["podman"], "8", epoch_always=True)
    assert set(got) == {full_nevra(n) for n in MOD2}
    assert "podman-0:2.2.1-7.module_el8.3.0+699+d61d9c41.x86_64" in got
    assert full_nevra("conmon-2:2.0.6-4.el8.x86_64") == "conmon-2:2.0.6-4.el8.x86_64"


def test_multilib_pair(yum_repos: YumRepos) -> None:
    repos = yum_repos.urls("media")
    assert dnf_resolve(repos, ["pairuser"]) == {"pairuser-1.0-1.el9.x86_64": "media",
                                                 "libpair-1.0-1.el9.x86_64": "media"}
    assert dnf_resolve(repos, ["libpair"]) == {"libpair-1.0-1.el9.x86_64": "media"}
    assert dnf_resolve(repos, ["libpair.i686"]) == {"libpair-1.0-1.el9.i686": "media"}


def test_weak_deps(yum_repos: YumRepos) -> None:
    repos = yum_repos.urls("media", "extras")
    assert set(dnf_resolve(repos, ["kubectl"])) == {"kubectl-1.30.4-150500.1.1.x86_64"}
    assert "bash-completion-2.11-5.el9.noarch" in dnf_resolve(repos, ["kubectl"], weak_deps=True)


@pytest.mark.parametrize("comp", ["xz", "zstd"])
def test_dnf_reads_every_compression(yum_repos: YumRepos, comp: str) -> None:
    repos = yum_repos.urls("media", "extras", compression=comp)
    assert dnf_resolve(repos, ["kubeadm-1.30.4"]) == KUBEADM_1304_CLOSURE
    assert yum_repos.server.count(f"/extras-{comp}/repodata/") >= 2


# ----------------------------------------------------------------------------- modularity
MOD2 = {"podman-2.2.1-7.module_el8.3.0+699+d61d9c41.x86_64", "conmon-2:2.0.22-7.module_el8.3.0+699+d61d9c41.x86_64"}
MOD1 = {"podman-1.6.4-4.module_el8.1.0+298+41f9343a.x86_64", "conmon-2:2.0.6-4.module_el8.1.0+298+41f9343a.x86_64"}


@pytest.mark.parametrize("comp", ["gz", "xz", "zstd"])
def test_modular_default_stream_and_filtering(yum_repos: YumRepos, comp: str) -> None:
    repos = {"appstream": yum_repos.url("modular", comp)}
    got = dnf_resolve(repos, ["toolbox"], "8")
    assert set(got) == MOD2 | {"toolbox-0.0.99-1.el8.noarch"}  # default stream 2.0; podman-3.0.1 hidden
    with pytest.raises(DnfError):
        dnf_resolve(repos, ["podman-3.0.1"], "8")


def test_modules_need_platform_id(yum_repos: YumRepos, tmp_path: Path) -> None:
    """Without module_platform_id dnf cannot enable streams requiring platform:[el8] and hides them all."""
    import subprocess

    opts = [o for o in dnf_options({"appstream": yum_repos.url("modular")}, tmp_path, "8")
            if "module_platform_id" not in o]
    proc = subprocess.run(["dnf", *opts, "install", "--assumeno", "toolbox"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "module(platform:el8)" in proc.stdout + proc.stderr
    assert "filtered out by modular filtering" in proc.stdout + proc.stderr


def test_modular_enabled_stream(yum_repos: YumRepos, tmp_path: Path) -> None:
    repos = {"appstream": yum_repos.url("modular")}
    assert set(dnf_resolve(repos, ["podman"], "8", modules=["container-tools:1.0"])) == MOD1
    root = tmp_path / "root"
    ok, out = dnf_install(repos, ["podman"], "8", modules=["container-tools:1.0"], installroot=root)
    assert ok, out
    assert rpm_qa(root) == MOD1
    assert "stream=1.0" in (root / "etc/dnf/modules.d/container-tools.module").read_text()


# ----------------------------------------------------------------------------- build + cache
def test_cache_is_reused(yum_upstream: Upstream) -> None:
    again = build_upstream_cached(yum_upstream.root.parent)
    assert again.cached and again.root == yum_upstream.root


def test_fresh_build_is_fast(tmp_path: Path) -> None:
    up = build_upstream(tmp_path / "fresh")
    assert up.build_seconds < 45, up.build_seconds  # about 5 s here; the margin is for a loaded CI machine
    rpms = [p.name for r in ("media", "extras", "modular") for p in (up.root / r).rglob("*.rpm")]
    assert len(rpms) == len(set(rpms)) == sum(len(r.packages) for r in REPOS.values())
