"""Benchmark: filling the bundled registry from the bundle's image store, by HTTP push vs direct storage layout.

Run: .venv/bin/python bench/registry_populate.py [--mb 1000] [--images 14] [--multi 10]
Generates (once, cached in /tmp/airgap-bench-registry) an OCI image store like a bundle's images/: N images,
M of them multi-arch (amd64 + arm64 children), every child on two shared base layers of its arch plus one own
layer, random (incompressible) data, about --mb MB of unique blobs. Then, in one run, fills a fresh
docker-registry storage with each method:

  http-push     installer.registry_push (what install.py did until now), plain HTTP on loopback
  skopeo        `skopeo copy --all oci:STORE:REF docker://…` once per image, as people script it
  layout-link   installer.registry_layout, storage on the store's filesystem (hard links)
  layout-copy   the same with links disabled (every blob copied, sha256 checked, fsync'd)
  layout-tmpfs  the same into a storage on /dev/shm (another filesystem: copies, as across disks)

and the no-op second run of http-push and layout-link. Wall time, CPU time and peak RSS (wait4) of the tool
process and of the registry process are reported; every storage is then served by docker-registry and its
catalog, tags and manifest digests checked against the HTTP push's. The store is read once before timing,
so every method reads it from the page cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.images.helpers import free_port, wait_http  # noqa: E402

DATA = Path("/tmp/airgap-bench-registry")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


# ---- data set -------------------------------------------------------------------------------------------------
def _put(store: Path, data: bytes, media_type: str) -> dict:
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    (store / "blobs" / "sha256" / d[7:]).write_bytes(data)
    return {"mediaType": media_type, "digest": d, "size": len(data)}


def _layer(store: Path, size: int) -> tuple[dict, str]:
    """A gzip'd tar of `size` random bytes, streamed to the store: (descriptor, diff_id)."""
    tmp = store / "blobs" / "sha256" / ".layer.tmp"
    gz, raw = hashlib.sha256(), hashlib.sha256()
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    n = 0
    with open(tmp, "wb") as out:
        def emit(chunk: bytes) -> None:
            nonlocal n
            raw.update(chunk)
            c = comp.compress(chunk)
            gz.update(c)
            out.write(c)
            n += len(c)

        info = tarfile.TarInfo("payload.bin")
        info.size = size
        emit(info.tobuf(format=tarfile.PAX_FORMAT))
        left = size
        while left:
            chunk = os.urandom(min(1 << 20, left))
            emit(chunk)
            left -= len(chunk)
        emit(b"\0" * ((512 - size % 512) % 512) + b"\0" * 1024)
        tail = comp.flush()
        gz.update(tail)
        out.write(tail)
        n += len(tail)
    d = "sha256:" + gz.hexdigest()
    tmp.rename(store / "blobs" / "sha256" / d[7:])
    return {"mediaType": OCI_LAYER, "digest": d, "size": n}, "sha256:" + raw.hexdigest()


def _manifest(store: Path, layers: list[tuple[dict, str]], arch: str, label: str) -> dict:
    cfg = {"architecture": arch, "os": "linux", "config": {"Labels": {"bench": label}},
           "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in layers]}}
    c = _put(store, json.dumps(cfg, sort_keys=True).encode(), OCI_CONFIG)
    man = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": c, "layers": [desc for desc, _ in layers]}
    m = _put(store, json.dumps(man).encode(), OCI_MANIFEST)
    m["platform"] = {"architecture": arch, "os": "linux"}
    return m


def dataset(total_mb: int, n: int, n_multi: int) -> Path:
    """The store (built once per parameter set): 2 shared base layers per arch (1/8 of the bytes each arch),
    the rest split over the own layers of every child."""
    store = DATA / f"{total_mb}mb-{n}-{n_multi}"
    if (store / "index.json").is_file():
        return store
    shutil.rmtree(store, ignore_errors=True)
    (store / "blobs" / "sha256").mkdir(parents=True)
    (store / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    total = total_mb * 1_000_000
    base = {arch: [_layer(store, total // 16), _layer(store, total // 16)] for arch in ("amd64", "arm64")}
    children = n + n_multi
    own = (total - 4 * (total // 16)) // children
    entries = []
    for i in range(n):
        host = ("registry.k8s.io", "docker.io/bench", "quay.io/bench")[i % 3]
        ref = f"{host}/img{i}:v1.{i}"
        archs = ("amd64", "arm64") if i < n_multi else ("amd64",)
        mans = [_manifest(store, base[a] + [_layer(store, own)], a, f"img{i}-{a}") for a in archs]
        if len(mans) == 1:
            top = dict(mans[0])
            top.pop("platform")
        else:
            top = _put(store, json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": mans}).encode(),
                       OCI_INDEX)
        top["annotations"] = {"org.opencontainers.image.ref.name": ref, "io.airgap-bundler.image.ref": ref}
        entries.append(top)
    (store / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))
    return store


# ---- measured runs --------------------------------------------------------------------------------------------
def run_measured(cmd: list[str]) -> tuple[float, float, int]:
    """(seconds, CPU seconds, peak RSS in KiB) of one child process; exits on failure.

    Run under GNU time: a child forked straight from this (bigger) process would report this process's RSS
    as its own floor (Linux carries the parent's RSS at fork into the child's ru_maxrss)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as out:
        t = time.monotonic()
        p = subprocess.run(["/usr/bin/time", "-o", out.name, "-f", "%U %S %M", *cmd], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
        secs = time.monotonic() - t
        if p.returncode != 0:
            raise SystemExit(f"{cmd[:4]} failed: {p.stderr.decode()[-2000:]}")
        user, sys_, rss = out.read().split()[-3:]
    return secs, float(user) + float(sys_), int(rss)


def _wait_tls(url: str, cafile: str, timeout: float = 15.0) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, verify=cafile, timeout=1).status_code == 401:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout}s")


class Reg:
    """docker-registry on 127.0.0.1 over a given storage directory; stop() returns its CPU time and peak RSS."""

    def __init__(self, storage: Path, work: Path, secure: bool = False):
        self.host = f"127.0.0.1:{free_port()}"
        cfg = work / f"reg-{self.host.split(':')[1]}.yml"
        http: dict = {"addr": self.host}
        doc = {"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
               "storage": {"filesystem": {"rootdirectory": str(storage)}}, "http": http}
        if secure:  # as install.py configures the push instance: TLS and htpasswd (bcrypt) auth
            http["tls"] = {"certificate": str(work / "tls.crt"), "key": str(work / "tls.key")}
            doc["auth"] = {"htpasswd": {"realm": "airgap-registry", "path": str(work / "htpasswd")}}
        cfg.write_text(json.dumps(doc))
        self.proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        try:
            if secure:
                _wait_tls(f"https://{self.host}/v2/", str(work / "tls.crt"))
            else:
                wait_http(f"http://{self.host}/v2/", ok=lambda s: s == 200)
        except Exception:
            self.stop()
            raise

    def stop(self) -> tuple[float, int]:
        """Stop it; (CPU seconds, peak RSS KiB). The peak is VmHWM read just before: it counts only the
        registry's own memory (its address space is new since exec)."""
        if self.proc.poll() is not None:
            return 0.0, 0
        with open(f"/proc/{self.proc.pid}/status") as f:
            rss = int([ln.split()[1] for ln in f if ln.startswith("VmHWM:")][0])
        self.proc.terminate()
        _, _, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = 0
        return usage.ru_utime + usage.ru_stime, rss


def view(host: str) -> dict:
    """Catalog, tags and manifest digests, as served."""
    import requests

    s = requests.Session()
    accept = f"{OCI_INDEX},{OCI_MANIFEST}"
    out = {}
    for repo in s.get(f"http://{host}/v2/_catalog?n=1000", timeout=30).json()["repositories"]:
        for tag in s.get(f"http://{host}/v2/{repo}/tags/list", timeout=30).json()["tags"]:
            r = s.get(f"http://{host}/v2/{repo}/manifests/{tag}", headers={"Accept": accept}, timeout=30)
            out[f"{repo}:{tag}"] = r.headers.get("Docker-Content-Digest")
    return out


PUSH = """
import sys
from installer.registry_push import Layout, Pusher, Registry
if len(sys.argv) > 3:
    reg = Registry("https://" + sys.argv[1], "pusher", sys.argv[3], cafile=sys.argv[4])
else:
    reg = Registry("http://" + sys.argv[1])
Pusher(reg, Layout(sys.argv[2])).push_all()
"""


def secure_setup(work: Path) -> str:
    """TLS certificate and an htpasswd made the way install.py makes them; returns the password."""
    from installer.phases.registry import bcrypt_hash

    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(work / "tls.key"),
                    "-out", str(work / "tls.crt")], check=True, capture_output=True)
    password = os.urandom(12).hex()
    (work / "htpasswd").write_text(f"pusher:{bcrypt_hash(password)}\n")
    return password
LAYOUT = """
import sys
from installer.registry_layout import lay_out
from installer.registry_push import Layout
lay_out(Layout(sys.argv[1]), sys.argv[2], link=sys.argv[3] == "link")
"""


def skopeo_all(host: str, store: Path) -> tuple[float, float, int]:
    from installer.bundle import split_ref

    index = json.loads((store / "index.json").read_text())
    secs = cpu = 0.0
    rss = 0
    for desc in index["manifests"]:
        ref = desc["annotations"]["org.opencontainers.image.ref.name"]
        h, repo, tag = split_ref(ref)
        t, c, r = run_measured(["skopeo", "copy", "--all", "--dest-tls-verify=false", f"oci:{store}:{ref}",
                                f"docker://{host}/{h}/{repo}:{tag}"])
        secs, cpu, rss = secs + t, cpu + c, max(rss, r)
    return secs, cpu, rss


def du(path: Path) -> int:
    """Bytes of data files under path that are not hard links into the store (what the method really wrote)."""
    n = 0
    for d, _, files in os.walk(path):
        for f in files:
            st = os.stat(os.path.join(d, f))
            if st.st_nlink == 1:
                n += st.st_size
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=1000)
    ap.add_argument("--images", type=int, default=14)
    ap.add_argument("--multi", type=int, default=10, help="how many of the images are multi-arch")
    a = ap.parse_args()
    if not (shutil.which("docker-registry") and shutil.which("skopeo")):
        raise SystemExit("docker-registry and skopeo are needed")
    store = dataset(a.mb, a.images, a.multi)
    blobs = list((store / "blobs" / "sha256").iterdir())
    unique = sum(p.stat().st_size for p in blobs)
    for p in blobs:  # warm the page cache: every method reads the store from memory
        with open(p, "rb") as f:
            while f.read(1 << 22):
                pass
    work = Path(tempfile.mkdtemp(prefix="bench-registry-", dir=str(store.parent)))
    shm = Path(tempfile.mkdtemp(prefix="bench-registry-", dir="/dev/shm")) if os.access("/dev/shm", os.W_OK) else None
    rows: list[tuple[str, float, float, int, float, int, int]] = []
    reference = None
    py = sys.executable
    try:
        def one(name: str, storage: Path, fill, again: bool = False) -> None:
            nonlocal reference
            reg = Reg(storage, work, secure=fill[0] == "https") if fill[0].startswith("http") else None
            host = reg.host if reg else ""
            secs, cpu, rss = fill[1](host)
            again_secs = fill[1](host)[0] if again else None
            rcpu, rrss = reg.stop() if reg else (0.0, 0)
            check = Reg(storage, work)  # served, and the same names and digests as the HTTP push
            try:
                got = view(check.host)
            finally:
                check.stop()
            reference = reference or got
            if got != reference:
                raise SystemExit(f"{name}: the registry serves {len(got)} tags differently from the HTTP push")
            rows.append((name, secs, cpu, rss, rcpu, rrss, du(storage)))
            if again_secs is not None:
                rows.append((name + " (again, no-op)", again_secs, 0.0, 0, 0.0, 0, 0))
            shutil.rmtree(storage)

        one("http-push", work / "s-push", ("http", lambda h: run_measured([py, "-c", PUSH, h, str(store)])),
            again=True)
        password = secure_setup(work)
        one("http-push, TLS + htpasswd", work / "s-push-tls", ("https", lambda h: run_measured(
            [py, "-W", "ignore", "-c", PUSH, h, str(store), password, str(work / "tls.crt")])))
        one("skopeo", work / "s-skopeo", ("http", lambda h: skopeo_all(h, store)))
        one("layout-link", work / "s-link", ("fs", lambda h: run_measured(
            [py, "-c", LAYOUT, str(store), str(work / "s-link"), "link"])), again=True)
        one("layout-copy", work / "s-copy", ("fs", lambda h: run_measured(
            [py, "-c", LAYOUT, str(store), str(work / "s-copy"), "copy"])))
        if shm is not None:
            one("layout-tmpfs", shm / "s", ("fs", lambda h: run_measured(
                [py, "-c", LAYOUT, str(store), str(shm / "s"), "link"])))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if shm is not None:
            shutil.rmtree(shm, ignore_errors=True)

    n_tags = len(reference or {})
    print(f"store: {a.images} images ({a.multi} multi-arch), {len(blobs)} blobs, {unique / 1e6:.0f} MB unique; "
          f"{n_tags} tags served identically by every storage")
    print(f"{'method':28} {'wall s':>8} {'tool CPU s':>10} {'tool RSS MiB':>12} {'registry CPU s':>14} "
          f"{'registry RSS MiB':>16} {'MB written':>10}")
    for name, secs, cpu, rss, rcpu, rrss, written in rows:
        reg = f"{rcpu:14.2f} {rrss / 1024:16.1f}" if rrss else f"{'(not running)':>14} {'-':>16}"
        extra = f"{cpu:10.2f} {rss / 1024:12.1f} {reg} {written / 1e6:10.0f}" if rss else ""
        print(f"{name:28} {secs:8.2f} {extra}")
    t = {name: secs for name, secs, *_ in rows}
    print("ratios (wall time): " + ", ".join(
        f"{other}/layout-link {t[other] / t['layout-link']:.1f}x" for other in
        ("http-push", "http-push, TLS + htpasswd", "skopeo", "layout-copy", "layout-tmpfs") if other in t))
    print(f"ratio http-push/skopeo {t['http-push'] / t['skopeo']:.2f}x; "
          f"http-push/layout-copy {t['http-push'] / t['layout-copy']:.1f}x")


if __name__ == "__main__":
    main()
