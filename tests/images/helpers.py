"""Test rig for images: Debian's docker-registry on loopback, hand-built images, fault-injecting proxies.

Also imported by bench/images_vs_skopeo.py. Every process and server started here has a stop() and a
bounded readiness wait; only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
D_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
D_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
D_CONFIG = "application/vnd.docker.container.image.v1+json"
D_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, ok: Callable[[int], bool] = lambda s: s < 500, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.05) + 1):
        try:
            if ok(requests.get(url, timeout=1).status_code):
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout}s")


class Registry:
    """docker-registry serve on 127.0.0.1:<ephemeral>, storage in a directory (shareable between instances)."""

    def __init__(self, workdir: Path, storage: Path | None = None, auth: dict | None = None, name: str = "reg"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage = Path(storage or self.workdir / "storage")
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        cfg = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)}, "delete": {"enabled": True}},
            "http": {"addr": self.host},
        }
        if auth:
            cfg["auth"] = auth
        self.config = self.workdir / f"{name}.yml"
        self.config.write_text(json.dumps(cfg))  # JSON is YAML
        self.log = open(self.workdir / f"{name}.log", "wb")  # closed in stop()
        self.proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(self.config)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_http(f"http://{self.host}/v2/", ok=lambda s: s in (200, 401))
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        stop_process(self.proc, self.log)


# ---- hand-built images -------------------------------------------------------------------------------

@dataclass
class Img:
    """An image as blobs + manifests, pushable by raw HTTP or written as an OCI layout."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: list[tuple[bytes, str]] = field(default_factory=list)  # children first, top last

    @property
    def top(self) -> tuple[bytes, str]:
        return self.manifests[-1]

    @property
    def digest(self) -> str:
        return digest_of(self.top[0])


def layer(size: int, seed: str) -> tuple[bytes, bytes]:
    """(gzip layer, uncompressed tar) with `size` deterministic pseudo-random bytes."""
    payload = bytearray()
    counter = 0
    while len(payload) < size:
        payload += hashlib.shake_256(f"{seed}:{counter}".encode()).digest(min(1 << 20, size - len(payload)))
        counter += 1
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"data/{seed}.bin")
        info.size = len(payload)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(bytes(payload)))
    raw = tar_buf.getvalue()
    return gzip.compress(raw, compresslevel=1, mtime=0), raw


def single(layers: list[tuple[bytes, bytes | str]], arch: str = "amd64", variant: str = "", docker: bool = False,
           label: str = "") -> Img:
    img = Img()
    diff_ids = [raw if isinstance(raw, str) else digest_of(raw) for _, raw in layers]
    cfg = {"architecture": arch, "os": "linux", "config": {"Labels": {"t": label}},
           "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    if variant:
        cfg["variant"] = variant
    cfg_bytes = json.dumps(cfg, sort_keys=True).encode()
    img.blobs[digest_of(cfg_bytes)] = cfg_bytes
    descs = []
    for gz, _ in layers:
        img.blobs[digest_of(gz)] = gz
        descs.append({"mediaType": D_LAYER if docker else OCI_LAYER, "digest": digest_of(gz), "size": len(gz)})
    man = {"schemaVersion": 2, "mediaType": D_MANIFEST if docker else OCI_MANIFEST,
           "config": {"mediaType": D_CONFIG if docker else OCI_CONFIG, "digest": digest_of(cfg_bytes),
                      "size": len(cfg_bytes)}, "layers": descs}
    img.manifests.append((json.dumps(man, indent=3).encode(), man["mediaType"]))
    return img


def multi(children: list[tuple[Img, dict]], docker: bool = False, attestation: bool = False) -> Img:
    img = Img()
    descs = []
    for child, plat in children:
        img.blobs.update(child.blobs)
        img.manifests += child.manifests
        data, mt = child.top
        descs.append({"mediaType": mt, "digest": digest_of(data), "size": len(data), "platform": plat})
    if attestation:  # the unknown/unknown manifest buildkit adds for provenance
        att = single([layer(300, "att-" + descs[0]["digest"])], arch="unknown")
        img.blobs.update(att.blobs)
        img.manifests += att.manifests
        data, mt = att.top
        descs.append({"mediaType": mt, "digest": digest_of(data), "size": len(data),
                      "platform": {"architecture": "unknown", "os": "unknown"},
                      "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                      "vnd.docker.reference.digest": descs[0]["digest"]}})
    idx = {"schemaVersion": 2, "mediaType": D_LIST if docker else OCI_INDEX, "manifests": descs}
    img.manifests.append((json.dumps(idx, indent=2).encode(), idx["mediaType"]))
    return img


def put_image(host: str, repo: str, tag: str, img: Img, auth: tuple[str, str] | None = None) -> str:
    """Push by the raw registry API (independent of the code under test); returns the top digest."""
    s = requests.Session()
    s.auth = auth
    for d, data in img.blobs.items():
        if s.head(f"http://{host}/v2/{repo}/blobs/{d}").status_code == 200:
            continue
        r = s.post(f"http://{host}/v2/{repo}/blobs/uploads/")
        assert r.status_code == 202, r.text
        loc = r.headers["Location"]
        loc = loc if loc.startswith("http") else f"http://{host}{loc}"
        r = s.put(loc + ("&" if "?" in loc else "?") + f"digest={d}", data=data,
                  headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 201, r.text
    for i, (data, mt) in enumerate(img.manifests):
        ref = tag if i == len(img.manifests) - 1 else digest_of(data)
        r = s.put(f"http://{host}/v2/{repo}/manifests/{ref}", data=data, headers={"Content-Type": mt})
        assert r.status_code == 201, r.text
    return img.digest


def write_oci_layout(path: Path, tag: str, img: Img) -> None:
    """A hand-written OCI layout holding img under ref.name tag (for skopeo copy oci:...)."""
    (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    for d, data in list(img.blobs.items()) + [(digest_of(m), m) for m, _ in img.manifests]:
        (path / "blobs" / "sha256" / d.split(":")[1]).write_bytes(data)
    data, mt = img.top
    index = {"schemaVersion": 2, "manifests": [{"mediaType": mt, "digest": digest_of(data), "size": len(data),
                                                "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    (path / "index.json").write_text(json.dumps(index))


def skopeo_raw_digest(ref: str) -> str:
    """What skopeo sees: sha256 of `skopeo inspect --raw` output."""
    out = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                         capture_output=True, check=True, timeout=60)
    return digest_of(out.stdout)


def docker_config(dirpath: Path, auths: dict[str, tuple[str, str]]) -> Path:
    dirpath.mkdir(parents=True, exist_ok=True)
    cfg = {"auths": {h: {"auth": base64.b64encode(f"{u}:{p}".encode()).decode()} for h, (u, p) in auths.items()}}
    (dirpath / "config.json").write_text(json.dumps(cfg))
    return dirpath


# ---- servers: token service and fault-injecting proxy -----------------------------------------------------

class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


def _libtrust_kid(public_der: bytes) -> str:
    b32 = base64.b32encode(hashlib.sha256(public_der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))


class TokenServer(_Server):
    """A minimal Docker token service: RS256 JWTs for user/password, 401 for anyone else."""

    def __init__(self, workdir: Path, users: dict[str, str], key_name: str = "token"):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-token-issuer")])
        now = __import__("datetime").datetime.now(__import__("datetime").timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
                .serial_number(1).not_valid_before(now - __import__("datetime").timedelta(days=1))
                .not_valid_after(now + __import__("datetime").timedelta(days=1)).sign(self.key, hashes.SHA256()))
        self.cert_path = Path(workdir) / "token-cert.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        der = self.key.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = _libtrust_kid(der)
        self.users, self.key_name = users, key_name
        self.requests: list[dict] = []
        super().__init__(_TokenHandler)

    def registry_auth(self) -> dict:
        return {"token": {"realm": f"http://{self.host}/token", "service": "test-registry",
                          "issuer": "test-issuer", "rootcertbundle": str(self.cert_path)}}

    def sign(self, scope: str, service: str) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        def b64(d: bytes) -> str:
            return base64.urlsafe_b64encode(d).decode().rstrip("=")

        access = []
        for s in filter(None, scope.split(" ")):
            typ, _, rest = s.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": typ, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": "test-issuer", "sub": "tester", "aud": service, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": os.urandom(8).hex(), "access": access}
        head = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        signing = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(claims).encode())}"
        sig = self.key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing}.{b64(sig)}"


class _TokenHandler(BaseHTTPRequestHandler):
    def log_message(self, *a) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        srv: TokenServer = self.server.owner  # type: ignore[attr-defined]
        q = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        srv.requests.append(q)
        auth = self.headers.get("Authorization", "")
        ok = False
        if auth.startswith("Basic "):
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            ok = srv.users.get(user) == pw
        elif not auth and getattr(srv, "anonymous_pull", False):  # like a Harbor public project: pull only
            q["scope"] = " ".join(s.rsplit(":", 1)[0] + ":pull" for s in q.get("scope", "").split(" ") if s)
            ok = True
        if not ok:
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({srv.key_name: srv.sign(q.get("scope", ""), q.get("service", "")),
                           "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Proxy(_Server):
    """HTTP proxy in front of a registry; `decide(method, path, n)` picks forward/503/drop/tamper/redirect:URL.

    n counts requests per (method, path). Every request's headers are recorded in `seen`.
    """

    def __init__(self, upstream: str, decide: Callable[[str, str, int], str] = lambda m, p, n: "forward"):
        self.upstream, self.decide = upstream, decide
        self.counts: dict[tuple[str, str], int] = {}
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()
        super().__init__(_ProxyHandler)


_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization"}


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a) -> None:
        pass

    def _handle(self) -> None:
        px: Proxy = self.server.owner  # type: ignore[attr-defined]
        path = self.path
        with px.lock:
            key = (self.command, urlsplit(path).path)
            px.counts[key] = n = px.counts.get(key, 0) + 1
            px.seen.append((self.command, path, dict(self.headers)))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        action = px.decide(self.command, urlsplit(path).path, n)
        if action == "503":
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if action.startswith("redirect:"):
            self.send_response(307)
            self.send_header("Location", action[len("redirect:"):] + path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        conn = http.client.HTTPConnection(px.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP and k.lower() != "host"}
        headers["Host"] = px.upstream
        conn.request(self.command, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if action == "tamper" and len(data) > 10:
            data = data[:5] + bytes([data[5] ^ 0xFF]) + data[6:]
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in _HOP and k.lower() != "content-length":
                if k.lower() == "location" and v.startswith(f"http://{px.upstream}"):
                    v = f"http://127.0.0.1:{px.port}" + v[len(f"http://{px.upstream}"):]
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if action == "drop" and self.command == "GET" and len(data) > 100:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle


def stop_process(proc: subprocess.Popen, log: object) -> None:
    """Terminate a server we started (kill it after 10 s) and close its log."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    log.close()  # type: ignore[attr-defined]
