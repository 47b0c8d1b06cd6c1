"""Benchmark: an offline package repo for one request, `bundler build` vs `dnf download --resolve` + createrepo_c.

What people do today for an air-gapped yum repo is `dnf download --resolve --alldeps --destdir D PKG`
(or yumdownloader) into an empty installroot, then `createrepo_c D`. We time that against
`bundler build --format dir` for the same request on the same repos, served on loopback, in one run:
cold (empty caches) and a second, warm run. dnf cannot tell what the install media already has, so it
also downloads the media's packages; the table shows the bytes each tool ships.

    .venv/bin/python bench/rpm_vs_dnf.py [--packages 80] [--mb 1.0] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.upstream.http import RepoHTTPServer  # noqa: E402
from tests.upstream.yumrepos import HostFile, build_rpms, createrepo, pkg  # noqa: E402

WORK = Path(os.environ.get("AIRGAP_BENCH_DIR", "/tmp/airgap-bench-rpm"))


def make_repos(n_app: int, mb: float) -> Path:
    """media: n_app/2 base libs; extras: n_app apps (random payloads) and one `stack` needing them all."""
    key = hashlib.sha256(f"v1:{n_app}:{mb}".encode()).hexdigest()[:12]
    root = WORK / key
    if (root / "extras" / "repodata" / "repomd.xml").exists():
        return root
    tmp = Path(tempfile.mkdtemp(dir=WORK.parent if WORK.parent.exists() else None))
    payloads = tmp / "payloads"
    payloads.mkdir()
    n_base = max(1, n_app // 2)
    media, extras = [], []
    sh = pkg("bash", "5.1", "1", "x86_64", provides=["/bin/sh"], files={"/usr/share/bench/bash": "sh\n"})
    media.append(sh)
    for i in range(n_base):
        media.append(pkg(f"base{i}", "1.0", "1", "x86_64", files={f"/usr/share/bench/base{i}": f"base {i}\n"}))
    for i in range(n_app):
        blob = payloads / f"app{i}.bin"
        blob.write_bytes(os.urandom(int(mb * 1024 * 1024)))
        extras.append(pkg(f"app{i}", "2.0", "1", "x86_64", requires=[f"base{i % n_base}"],
                          files={f"/usr/share/bench/app{i}.bin": HostFile(str(blob), 0o644)}))
    extras.append(pkg("stack", "1.0", "1", "noarch", requires=[f"app{i}" for i in range(n_app)]))
    rpms = build_rpms(media + extras, tmp / "build")
    for name, defs in (("media", media), ("extras", extras)):
        d = tmp / "repos" / name / "Packages"
        d.mkdir(parents=True)
        for p in defs:
            shutil.move(str(rpms[p]), d / rpms[p].name)
        createrepo(d.parent)
    root.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(tmp / "repos"), root)
    shutil.rmtree(tmp, ignore_errors=True)
    return root


def run(cmd: list[str], **kw: Any) -> tuple[float, int]:
    """(seconds, peak RSS in KiB of that child) for one command."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr.read().decode() if proc.stderr else ''}")
    return elapsed, usage.ru_maxrss


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*.rpm"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packages", type=int, default=80)
    ap.add_argument("--mb", type=float, default=1.0, help="payload of each app package")
    ap.add_argument("--latency-ms", type=float, default=0.0,
                    help="delay before each package download is answered (a distant mirror)")
    args = ap.parse_args()
    t = time.perf_counter()
    repos = make_repos(args.packages, args.mb)
    print(f"repos ready in {time.perf_counter() - t:.1f} s: {repos}")
    resource.getrusage(resource.RUSAGE_CHILDREN)
    with RepoHTTPServer(repos) as server, tempfile.TemporaryDirectory() as td:
        work = Path(td)
        urls = {n: server.repo_url(n) for n in ("media", "extras")}
        if args.latency_ms:
            for rpm in repos.rglob("*.rpm"):
                server.slow("/" + rpm.relative_to(repos).as_posix(), args.latency_ms / 1000, times=None)
        manifest = work / "bench.yaml"
        manifest.write_text(
            "apiVersion: bundler/v1\nkind: Bundle\nmetadata: {name: bench, version: '1'}\nspec:\n"
            "  target: {os: el9, arch: x86_64}\n  repos:\n"
            f"    - {{name: media, baseurl: '{urls['media']}', onMedia: true}}\n"
            f"    - {{name: extras, baseurl: '{urls['extras']}'}}\n  packages: [stack]\n")
        bundler = [str(Path(sys.executable).parent / "bundler"), "build", str(manifest), "--format", "dir", "-q",
                   "--cache", str(work / "cache")]
        rows = []
        for label in ("cold", "warm"):
            out = work / f"ours-{label}"
            secs, rss = run(bundler + ["-o", str(out)])
            rows.append(("bundler build", label, secs, rss, du(out)))
        for label in ("cold", "warm"):
            root, dest = work / f"dnf-root-{label}", work / f"dnf-{label}"
            (root / "etc/dnf").mkdir(parents=True)
            (root / "etc/dnf/dnf.conf").write_text("[main]\n")
            dnf = ["dnf", "-q", "-c", str(root / "etc/dnf/dnf.conf"), "--installroot", str(root),
                   "--releasever", "9", "--setopt=reposdir=/dev/null", "--disableplugin=local", "--nogpgcheck",
                   f"--setopt=cachedir={work}/dnfcache",
                   *[f"--repofrompath={n},{u}" for n, u in urls.items()],
                   "download", "--resolve", "--alldeps", "--destdir", str(dest), "stack"]
            t0 = time.perf_counter()
            _, rss1 = run(dnf)
            _, rss2 = run(["createrepo_c", "-q", str(dest)])
            rows.append(("dnf download + createrepo_c", label, time.perf_counter() - t0, max(rss1, rss2), du(dest)))
    print(f"\n{'tool':<28} {'run':<5} {'seconds':>8} {'peak RSS':>10} {'shipped':>10}")
    for tool, label, secs, rss, size in rows:
        print(f"{tool:<28} {label:<5} {secs:>8.2f} {rss / 1024:>8.1f} MiB {size / 2**20:>7.1f} MiB")
    ours = {r[1]: r[2] for r in rows if r[0] == "bundler build"}
    dnf = {r[1]: r[2] for r in rows if r[0] != "bundler build"}
    print(f"\nratio dnf/bundler: cold {dnf['cold'] / ours['cold']:.2f}x, warm {dnf['warm'] / ours['warm']:.2f}x")


if __name__ == "__main__":
    main()
