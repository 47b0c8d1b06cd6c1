"""The RPM engine against real yum repos (rpmbuild + createrepo_c) served over HTTP on loopback.

dnf (Debian's build of the same libsolv-based dnf the hosts run) is the referee: the bundle must
install with only itself and the media, must be minimal under `prefer: media`, and must equal dnf's
own choice under `prefer: newest`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bundler.build import build, resolve_packages
from bundler.errors import FetchError, ResolveError
from bundler.fetch.cache import Cache
from bundler.manifest import load_manifest
from bundler.rpm.repo_writer import write_repo
from tests.upstream.yumrepos import dnf_install, dnf_resolve

K8S = ["kubeadm-1.30.4", "kubelet-1.30.4", "kubectl-1.30.4", "containerd.io"]


def manifest(tmp_path: Path, repos: dict[str, str], packages: list[str], *, prefer: str = "media",
             media: tuple[str, ...] = ("media",), os_: str = "el9", modules: list[str] | None = None) -> Path:
    lines = [
        "apiVersion: bundler/v1", "kind: Bundle", "metadata: {name: test, version: '1.0'}", "spec:",
        f"  target: {{os: {os_}, arch: x86_64}}", f"  prefer: {prefer}", "  repos:",
    ]
    for name, url in repos.items():
        lines.append(f"    - {{name: {name}, baseurl: '{url}', onMedia: {str(name in media).lower()}}}")
    lines.append(f"  packages: {json.dumps(packages)}")
    if modules:
        lines.append(f"  modules: {json.dumps(modules)}")
    path = tmp_path / "bundle.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def norm(nevra: str) -> str:
    """bundler spells epoch 0 out (name-0:v-r.a); dnf omits it."""
    return nevra.replace("-0:", "-")


def repo_url(bundle: Path) -> str:
    return f"file://{bundle / 'repo'}/"


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "cache")


def test_bundle_installs_with_only_itself_and_the_media(tmp_path, yum_repos, cache):
    m = load_manifest(manifest(tmp_path, yum_repos.urls("media", "extras"), K8S + ["libpair", "oldtool"]))
    result = build(m, tmp_path / "out", cache, quiet=True, fmt="dir")
    shipped = {p["name"] for p in result.inputs.packages}
    # Taken from the media where it satisfies the dependency; shipped where the media lacks it or is too old.
    assert {"kubeadm", "kubelet", "kubectl", "containerd.io", "libbar", "kubernetes-cni", "cri-tools"} <= shipped
    assert not shipped & {"conntrack-tools", "iptables", "glibc", "bash", "libpair", "oldtool", "ethtool"}
    libbar = next(p for p in result.inputs.packages if p["name"] == "libbar")
    assert libbar["version"] == "2.0"  # the media's libbar-1.0 is too old for kubelet
    assert all(p["arch"] in ("x86_64", "noarch") for p in result.inputs.packages + result.inputs.from_media)
    assert result.inputs.used_filelists  # kubelet's file dependency is only in filelists

    ok, out = dnf_install({"bundle": repo_url(result.path), "media": yum_repos.url("media")},
                          K8S + ["libpair", "oldtool"])
    assert ok, out
    bom = json.loads((result.path / "bundle.json").read_text())
    assert {p["name"] for p in bom["packages"]} == shipped
    assert all(len(p["sha256"]) == 64 for p in bom["packages"])


def test_media_policy_is_minimal_dropping_any_shipped_package_breaks_the_install(tmp_path, yum_repos, cache):
    m = load_manifest(manifest(tmp_path, yum_repos.urls("media", "extras"), K8S))
    result = build(m, tmp_path / "out", cache, quiet=True, fmt="dir")
    rpms = sorted((result.path / "repo" / "Packages").glob("*.rpm"))
    assert len(rpms) == len(result.inputs.packages) >= 5
    for drop in rpms:
        repo = tmp_path / f"without-{drop.name}"
        (repo / "Packages").mkdir(parents=True)
        kept = []
        for rpm in rpms:
            if rpm != drop:
                shutil.copy(rpm, repo / "Packages" / rpm.name)
                kept.append(repo / "Packages" / rpm.name)
        write_repo(repo, kept)
        ok, out = dnf_install({"bundle": f"file://{repo}/", "media": yum_repos.url("media")}, K8S)
        assert not ok, f"install still works without {drop.name}: it should not have been shipped"
        shutil.rmtree(repo)


@pytest.mark.parametrize("packages", [K8S + ["libpair", "oldtool"], ["kubelet >= 1.30", "kubectl"], ["kubeadm"]])
def test_newest_policy_equals_dnf(tmp_path, yum_repos, cache, packages):
    repos = yum_repos.urls("media", "extras")
    m = load_manifest(manifest(tmp_path, repos, packages, prefer="newest"))
    closure = resolve_packages(m, cache)
    dnf_choice = dnf_resolve(repos, packages, weak_deps=True, best=True)
    assert {norm(p.nevra) for p in closure.shipped} == {n for n, repo in dnf_choice.items() if repo != "media"}
    assert {norm(p.nevra) for p in closure.packages} == set(dnf_choice)
    if "oldtool" in packages:
        assert "newtool" in {p.name for p in closure.shipped}  # obsoletes honoured like dnf


def test_requested_versions_are_honoured(tmp_path, yum_repos, cache):
    m = load_manifest(manifest(tmp_path, yum_repos.urls("media", "extras"), ["kubeadm-1.29.8", "kubelet-1.29.8",
                                                                               "containerd.io"]))
    versions = {p.name: p.version for p in resolve_packages(m, cache).shipped}
    assert versions["kubeadm"] == versions["kubelet"] == "1.29.8"
    assert versions["kubernetes-cni"] == "1.3.0"  # kubelet 1.29 pins kubernetes-cni = 1.3.0
    m = load_manifest(manifest(tmp_path, yum_repos.urls("media", "extras"), ["kubelet < 1.30.4", "containerd.io"]))
    assert {p.name: p.version for p in resolve_packages(m, cache).shipped}["kubelet"] == "1.30.3"


def test_kubernetes_packages_of_another_release_are_refused(tmp_path, yum_repos):
    """kubeadm-1.29.8 alone drags the newest kubelet/kubectl (1.30.4): with spec.kubernetes.version 1.29.8 that
    bundle would run a kubelet newer than its API server. The CLI says so in one paragraph, exit code 2."""
    path = manifest(tmp_path, yum_repos.urls("media", "extras"), ["kubeadm-1.29.8", "containerd.io"])
    path.write_text(path.read_text().replace("spec:\n", "spec:\n  kubernetes: {version: 1.29.8}\n"))
    proc = subprocess.run([sys.executable, "-m", "bundler.cli", "plan", str(path), "--cache", str(tmp_path / "c")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: ") and "\n\n" not in proc.stderr.strip()
    text = " ".join(proc.stderr.split())
    assert "spec.kubernetes.version is 1.29.8, but spec.packages resolve to kubectl-1.30.4, kubelet-1.30.4" in text
    assert "kubelet-1.29.8, kubectl-1.29.8" in text


@pytest.mark.parametrize("compression", ["xz", "zstd"])
def test_xz_and_zstd_metadata_give_the_same_closure(tmp_path, yum_repos, cache, compression):
    gz = resolve_packages(load_manifest(manifest(tmp_path, yum_repos.urls("media", "extras"), K8S)), cache)
    other = resolve_packages(
        load_manifest(manifest(tmp_path, yum_repos.urls("media", "extras", compression=compression), K8S)),
        Cache(tmp_path / f"cache-{compression}"))
    assert [p.nevra for p in other.packages] == [p.nevra for p in gz.packages]


def test_unsatisfiable_request_names_the_chain(tmp_path, yum_repos, cache):
    m = load_manifest(manifest(tmp_path, {"extras": yum_repos.url("extras")}, ["kubeadm-1.30.4"], media=()))
    with pytest.raises(ResolveError) as e:
        resolve_packages(m, cache)
    msg = str(e.value)
    assert "kubelet-1.30.4 requires conntrack, which no repo provides (searched: extras)" in msg
    assert "kubeadm-1.30.4 requires kubelet >= 1.30.0, and kubelet-1.30.4 requires conntrack" in msg


def test_unknown_and_wrong_arch_requests_are_explained(tmp_path, yum_repos, cache):
    m = load_manifest(manifest(tmp_path, yum_repos.urls("media", "extras"), ["kubeadm-9.9.9"]))
    missing = r"no repo has a package matching 'kubeadm-9.9.9' \(searched: media, extras\)"
    with pytest.raises(ResolveError, match=missing):
        resolve_packages(m, cache)
    m = load_manifest(manifest(tmp_path, yum_repos.urls("media", "extras"), ["libpair.i686"]))
    with pytest.raises(ResolveError, match="built for i686, not x86_64"):
        resolve_packages(m, cache)


def test_modular_repo_default_stream_enabled_stream_and_metadata_carried(tmp_path, yum_repos, cache):
    repos = yum_repos.urls("media", "modular")
    m = load_manifest(manifest(tmp_path, repos, ["toolbox"], os_="el8"))
    result = build(m, tmp_path / "out", cache, quiet=True, fmt="dir")
    got = {p["name"]: p["version"] for p in result.inputs.packages}
    assert got["podman"] == "2.2.1"  # default stream 2.0; the non-modular podman-3.0.1 is filtered out
    modules = list((result.path / "repo" / "repodata").glob("*modules.yaml.gz"))
    assert len(modules) == 1
    ok, out = dnf_install({"bundle": repo_url(result.path), "media": yum_repos.url("media")}, ["toolbox"],
                          releasever="8")
    assert ok, out
    assert "podman-2.2.1" in out or "podman" in out

    m = load_manifest(manifest(tmp_path, repos, ["toolbox"], os_="el8", modules=["container-tools:1.0"]))
    assert {p.name: p.version for p in resolve_packages(m, cache).shipped}["podman"] == "1.6.4"
    m = load_manifest(manifest(tmp_path, repos, ["toolbox"], os_="el8", modules=["container-tools:9"]))
    with pytest.raises(Exception, match=r"container-tools:9.*available: container-tools:1.0, container-tools:2.0"):
        resolve_packages(m, cache)


def test_warm_cache_downloads_no_package_and_flaky_upstream_still_builds(tmp_path, yum_repos, cache):
    m = load_manifest(manifest(tmp_path, yum_repos.urls("media", "extras"), K8S))
    kubelet = next(p for p in yum_repos.upstream.repos["extras"].packages if p.nevra.startswith("kubelet-1.30.4"))
    path = yum_repos.rpm_urlpath("extras", kubelet)
    yum_repos.server.fail(path, times=2, status=503)
    yum_repos.server.drop(path, times=1)
    first = build(m, tmp_path / "out", cache, quiet=True, fmt="dir")
    assert first.stats.retries >= 3 and first.stats.downloaded == len(first.inputs.packages)
    yum_repos.server.reset_counts()
    second = build(m, tmp_path / "out", cache, quiet=True, fmt="dir")
    rpm_requests = [r for r in yum_repos.server.log if r.path.endswith(".rpm")]
    assert rpm_requests == []
    assert second.stats.cache_hits == len(second.inputs.packages) and second.stats.downloaded == 0


def test_corrupt_rpm_fails_naming_it_and_leaves_nothing(tmp_path, yum_repos, cache):
    m = load_manifest(manifest(tmp_path, yum_repos.urls("media", "extras"), K8S))
    kubectl = next(p for p in yum_repos.upstream.repos["extras"].packages if p.nevra.startswith("kubectl-1.30.4"))
    yum_repos.server.corrupt(yum_repos.rpm_urlpath("extras", kubectl))
    out = tmp_path / "out"
    with pytest.raises(FetchError) as e:
        build(m, out, cache, quiet=True)
    assert "kubectl-0:1.30.4-150500.1.1.x86_64" in str(e.value)
    assert "does not match its published checksum" in str(e.value)
    assert not out.exists() or list(out.iterdir()) == []
    digest = hashlib.sha256(yum_repos.upstream.rpm_path("extras", kubectl).read_bytes()).hexdigest()
    assert cache.get("sha256", digest) is None  # corrupt bytes never enter the cache
    assert not list((cache.root / "partial").iterdir())


def test_killed_build_resumes_with_range_requests(tmp_path, yum_repos_copy):
    """SIGKILL the real CLI mid-download, then run it again: it resumes the partial file.

    A private server: the killed build's hanging request must not show up in other tests' counts.
    """
    yum_repos = yum_repos_copy
    path = manifest(tmp_path, yum_repos.urls("media", "extras"), K8S)
    kubelet = next(p for p in yum_repos.upstream.repos["extras"].packages if p.nevra.startswith("kubelet-1.30.4"))
    urlpath = yum_repos.rpm_urlpath("extras", kubelet)
    yum_repos.server.truncate(urlpath, times=1)  # first attempt: half the body, then the connection closes
    yum_repos.server.slow(urlpath, seconds=60, times=1)  # the retry hangs: we kill the build here
    cache_dir, out = tmp_path / "cache", tmp_path / "out"
    cmd = [sys.executable, "-m", "bundler.cli", "build", str(path), "--cache", str(cache_dir), "-o", str(out), "-q"]
    proc = subprocess.Popen(cmd, start_new_session=True)
    partial = cache_dir / "partial"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(r.path == urlpath and r.fault == "truncate" for r in yum_repos.server.log):
            time.sleep(2)  # the retry (after its backoff) is now waiting on the slow answer
            break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the build never reached the slow retry")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    parts = list(partial.iterdir())
    assert len(parts) == 1 and 0 < parts[0].stat().st_size < kubelet_size(yum_repos, kubelet)
    assert not out.exists() or not [p for p in out.iterdir() if not p.name.startswith(".")]  # only its staging

    yum_repos.server.clear_faults()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ranged = [x for x in yum_repos.server.log if x.path == urlpath and x.range]
    assert ranged and ranged[-1].status == 206
    # the killed build's staging is gone
    assert sorted(p.name for p in out.iterdir()) == ["test-1.0-el9-x86_64.tar.gz", "test-1.0-el9-x86_64.tar.gz.sha256"]
    assert not list(partial.iterdir())


def kubelet_size(yum_repos, p) -> int:
    return yum_repos.upstream.rpm_path("extras", p).stat().st_size


def test_plan_json_lists_packages_with_checksums(tmp_path, yum_repos):
    path = manifest(tmp_path, yum_repos.urls("media", "extras"), K8S)
    r = subprocess.run([sys.executable, "-m", "bundler.cli", "plan", str(path), "--json", "--cache",
                        str(tmp_path / "cache")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    pkgs = {p["name"]: p for p in plan["packages"]}
    assert set(pkgs) >= {"kubeadm", "kubelet", "kubectl", "containerd.io"}
    assert plan["images"] == [] and plan["files"] == []
    k = pkgs["kubeadm"]
    assert (k["epoch"], k["version"], k["release"], k["arch"], k["repo"]) == (0, "1.30.4", "150500.1.1", "x86_64",
                                                                              "extras")
    assert k["size"] > 0 and len(k["sha256"]) == 64
    assert plan["totals"]["packages"] == len(pkgs)
    # plan downloads no payload
    assert not [x for x in yum_repos.server.log if x.path.endswith(".rpm")]
