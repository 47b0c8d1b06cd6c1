"""The bundle write step vs `cp` of the same bytes (issue 11: "a write step that does not waste 32 s per GB").

Generates (once, cached in /tmp/airgap-bench-write) a staging tree shaped like a real bundle: image layers
(already gzip-compressed: random bytes behind a gzip header), RPMs (compressed payloads: random bytes
behind the RPM lead), two uncompressed binaries (files/helm, files/registry: compressible), and small text
files (installer, repodata, bundle.json). Then, in one run and each in its own process (peak RSS by
wait4(2)), times:

  write tar.gz   bundler.bundle.tarball.write_tarball(tree, out, fmt="tar.gz") (what `bundler build` does;
                 hashes every member for SHA256SUMS and fsyncs)
  write tar      the same, --format tar
  gzip -6 (old)  the former writer: one gzip stream at level 6 over everything
  cp -r          `cp -r` of the staging tree (the same bytes, no hashing), and `cp` of the written tarball
  sync           `sync` after each, reported separately (our writer fsyncs, cp does not)

With --full, the whole `bundler build` instead: a ~1 GB bundle (10 images of one random ~100 MB layer each,
plus a package) from the loopback test upstream (docker-registry, yum repo over HTTP), built once cold, then
timed warm (everything in the cache: resolve, stage, check, write) three times per run: with the previous bundle
removed first (every member checked against bundle.json and written), then twice with that bundle in place (checked
byte by byte against the sha256 recorded when it was written, and kept: bundle/reuse.py; the first check also
records each 64 MiB segment's digest, so the second checks segments on two threads); against `cp` of the tarball
into a new file. --format tar times the plain tar format.

    .venv/bin/python bench/write_vs_cp.py              # --mb 1024
    .venv/bin/python bench/write_vs_cp.py --mb 256 --runs 1
    .venv/bin/python bench/write_vs_cp.py --full       # warm `bundler build` of ~1 GB vs cp
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path("/tmp/airgap-bench-write")


def _random(n: int, seed: str) -> bytes:
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.shake_256(f"{seed}:{i}".encode()).digest(min(1 << 20, n - len(out)))
        i += 1
    return bytes(out)


def make_tree(mb: int) -> Path:
    tree = DATA / f"tree-{mb}"
    if (tree / ".done").exists():
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    total = mb << 20
    bin_bytes = min(45 << 20, total // 10)
    rpm_bytes = total // 10
    layer_bytes = total - bin_bytes - rpm_bytes
    blobs = tree / "images" / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    sizes = [layer_bytes // 12] * 11 + [layer_bytes - 11 * (layer_bytes // 12)]
    for i, n in enumerate(sizes):
        data = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + _random(n - 10, f"layer{i}")
        (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
    pkgs = tree / "repo" / "Packages"
    pkgs.mkdir(parents=True)
    for i in range(max(1, rpm_bytes >> 20)):
        (pkgs / f"pkg{i:03d}-1.0-1.x86_64.rpm").write_bytes(b"\xed\xab\xee\xdb" + _random((1 << 20) - 4, f"rpm{i}"))
    files = tree / "files"
    files.mkdir()
    text = b"".join(f"{i:08d} ELF-ish symbol table entry for a Go binary\n".encode() for i in range(1 << 16))
    for name, n in (("helm", bin_bytes * 2 // 3), ("registry", bin_bytes // 3)):
        rnd = _random(n // 3, name)
        (files / name).write_bytes((rnd + text * (n // len(text) + 1))[:n])
    inst = tree / "installer"
    inst.mkdir()
    for i in range(40):
        (inst / f"mod{i}.py").write_bytes(text[: 8000 + 100 * i])
    (tree / "bundle.json").write_bytes(text[:200_000])
    (tree / ".done").write_text("")
    return tree


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one child process, run under GNU time (a small parent: honest RSS)."""
    rss_file = DATA / "rss"
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *cmd], env=env)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{cmd} failed")
    return dt, int(rss_file.read_text().split()[-1]) / 1024


def _writer(fmt: str, level: int | None = None) -> str:
    if level is None:
        return (f"from bundler.bundle.tarball import write_tarball; import sys; "
                f"write_tarball(__import__('pathlib').Path(sys.argv[1]), __import__('pathlib').Path(sys.argv[2]), "
                f"top='b', fmt={fmt!r})")
    # the former writer: one gzip stream at `level` over every member
    return ("import gzip, tarfile, sys, hashlib\n"
            f"with open(sys.argv[2], 'wb') as raw, gzip.GzipFile('', 'wb', {level}, raw, 0) as g, "
            "tarfile.open(fileobj=g, mode='w|', format=tarfile.PAX_FORMAT) as t:\n"
            "    t.add(sys.argv[1], 'b')\n")


def full(mb: int, runs: int, fmt: str = "tar.gz") -> None:
    """Warm `bundler build` of a ~mb MiB bundle from the loopback upstream vs cp of the tarball it writes."""
    sys.path.insert(0, str(ROOT))
    from tests.images.helpers import Registry, layer, put_image, single
    from tests.upstream.http import RepoHTTPServer
    from tests.upstream.stack import Stack, build_site
    from tests.upstream.yumrepos import build_upstream_cached, repo_dirname

    work = DATA / f"full-{mb}"
    work.mkdir(parents=True, exist_ok=True)
    up = build_upstream_cached(DATA / "yum")
    reg = Registry(work / "registry", storage=work / "registry-storage")
    refs = [f"registry.k8s.io/bench/img{i}:1" for i in range(10)]
    try:
        shutil.rmtree(work / "site", ignore_errors=True)
        site = build_site(work / "site")
        with RepoHTTPServer(up.root) as yum, RepoHTTPServer(site.root) as site_server:
            site.server = site_server
            st = Stack({r: yum.repo_url(repo_dirname(r)) for r in ("media", "extras")}, reg, site, yum=yum)
            if not (work / "pushed").exists():
                for i in range(len(refs)):
                    put_image(reg.host, f"bench/img{i}", "1", single([layer((mb << 20) // 10, f"bench{i}")]))
                (work / "pushed").write_text("")
            manifest = work / "bench.yaml"
            manifest.write_text(st.manifest(packages=["kubectl-1.30.4"], k8s=None, cni="none", extra_images=refs))
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            cmd = [sys.executable, "-m", "bundler.cli", "build", str(manifest), "--cache", str(work / "cache"),
                   "-o", str(work / "out"), "-q", "--format", fmt]
            shutil.rmtree(work / "out", ignore_errors=True)
            shutil.rmtree(work / "cache", ignore_errors=True)
            cold = timed(cmd, env)
            tarball = next((work / "out").glob(f"*.{fmt}"))
            size = tarball.stat().st_size
            kept, again, warm, cps = [], [], [], []

            def run(cmd: list[str], into: list, env: dict | None = None) -> None:
                subprocess.run(["sync"], check=True)
                dt, rss = timed(cmd, env)
                t = time.perf_counter()
                subprocess.run(["sync"], check=True)
                into.append((dt, time.perf_counter() - t, rss))

            copy = work / f"copy.{fmt}"
            for _ in range(runs):
                tarball.unlink()
                run(cmd, warm, env)  # nothing to keep: every member checked and written, as a first build would
                run(cmd, kept, env)  # the bundle just written is there: checked byte by byte, kept (bundle/reuse.py)
                run(cmd, again, env)  # and once more: its segments' digests are known now, checked on 2 threads
                copy.unlink(missing_ok=True)
                run(["cp", str(tarball), str(copy)], cps)  # into a new file, like the write after the unlink
    finally:
        reg.stop()
    print(f"bundle: {size / 2**20:.0f} MiB ({tarball.name}); cold build {cold[0]:.1f} s, peak RSS {cold[1]:.0f} MiB")
    rows = (("warm build, written", warm), ("warm build, kept (1st)", kept), ("warm build, kept again", again),
            ("cp of the tarball", cps))
    for name, rs in rows:
        print(f"{name:24} " + " / ".join(f"{r[0]:.2f}" for r in rs) + f" s  (+sync {min(r[1] for r in rs):.2f} s)"
              f"  peak RSS {max(r[2] for r in rs):.0f} MiB")
    best_cp = min(r[0] + r[1] for r in cps)
    for name, rs in rows[:3]:
        print(f"ratio {name} / cp (best, each + sync): {min(r[0] + r[1] for r in rs) / best_cp:.2f}x; "
              f"without sync: {min(r[0] for r in rs) / min(r[0] for r in cps):.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--old", action="store_true", help="also time the former gzip -6 writer once (~32 s/GB)")
    ap.add_argument("--make", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--full", action="store_true", help="time a warm `bundler build` of the bundle instead")
    ap.add_argument("--format", default="tar.gz", choices=("tar.gz", "tar"), help="with --full: the bundle format")
    args = ap.parse_args()
    if args.full:
        full(args.mb, args.runs, args.format)
        return
    if args.make:
        make_tree(args.mb)
        return
    # generated in a child: the measured processes are forked from a small parent (honest peak RSS)
    subprocess.run([sys.executable, __file__, "--make", "--mb", str(args.mb)], check=True)
    tree = make_tree(args.mb)
    size = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    out = DATA / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    py = sys.executable
    cases = [("write tar.gz", [py, "-c", _writer("tar.gz"), str(tree), str(out / "b.tar.gz")]),
             ("write tar", [py, "-c", _writer("tar"), str(tree), str(out / "b.tar")])]
    if args.old:
        cases.append(("old gzip -6", [py, "-c", _writer("tar.gz", 6), str(tree), str(out / "old.tar.gz")]))
    cases += [("cp -r tree", ["cp", "-r", str(tree), str(out / "copy")]),
              ("cp tarball", ["cp", str(out / "b.tar.gz"), str(out / "copy.tar.gz")])]
    results: dict[str, list[tuple[float, float, float]]] = {}
    for run in range(args.runs):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        for name, cmd in cases:
            if name == "old gzip -6" and run:
                continue  # 30+ s a time, and nothing to learn from its noise
            subprocess.run(["sync"], check=True)
            dt, rss = timed(cmd, env)
            t = time.perf_counter()
            subprocess.run(["sync"], check=True)
            results.setdefault(name, []).append((dt, time.perf_counter() - t, rss))
    sizes = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}
    print(f"tree: {size / 2**20:.0f} MiB in {sum(1 for p in tree.rglob('*') if p.is_file())} files; "
          f"outputs: " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in sorted(sizes.items())))
    cp = min(r[0] + r[1] for r in results["cp -r tree"])
    print(f"{'':14} {'time (runs)':>28} {'+sync':>8} {'peak RSS':>9} {'vs cp -r + sync':>16}")
    for name, rs in results.items():
        best = min(r[0] + r[1] for r in rs)
        runs = " / ".join(f"{r[0]:.2f}" for r in rs)
        print(f"{name:14} {runs:>28} {min(r[1] for r in rs):>7.2f}s {max(r[2] for r in rs):>6.0f} MiB "
              f"{best / cp:>15.2f}x")


if __name__ == "__main__":
    main()
