"""A registry of "yours" for push tests: Debian's docker-registry on loopback with TLS (a throwaway CA) and
htpasswd, plus a bundle-style OCI layout (single-arch, multi-arch index, docker.io image) to push into it.

Shared by the builder's `bundler push` tests and the installer's push-images tests. Every process started
here is stopped by stop(); readiness waits are bounded.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import subprocess
import time
from pathlib import Path

import bcrypt
import requests

from .helpers import Img, TokenServer, digest_of, free_port, layer, multi, single, stop_process

USER, PASSWORD = "pushuser", "Pu5h-Secret-Pw"
FULL_REF = "io.airgap-bundler.image.ref"
REF_NAME = "org.opencontainers.image.ref.name"


def make_ca(work: Path, name: str = "ca", ip: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """(CA pem, server cert pem, server key pem) for the address ip, valid for two days."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"push test {name}")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - day).not_valid_after(now + 2 * day)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - day).not_valid_after(now + 2 * day)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = work / f"{name}.pem", work / f"{name}-server.pem", work / f"{name}-server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class TLSRegistry:
    """docker-registry serve on 127.0.0.1:<ephemeral> with TLS and htpasswd (USER/PASSWORD); with
    public=True, token auth instead, anonymous pulls allowed and pushes for USER only (a Harbor public project)."""

    def __init__(self, work: Path, public: bool = False):
        work.mkdir(parents=True, exist_ok=True)
        self.work = work
        self.tokens = None
        self.ca, cert, key = make_ca(work)
        htpasswd = work / "htpasswd"
        htpasswd.write_text(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(5)).decode()}\n")
        auth: dict = {"htpasswd": {"realm": "push-test", "path": str(htpasswd)}}
        if public:
            self.tokens = TokenServer(work, {USER: PASSWORD})
            self.tokens.anonymous_pull = True  # type: ignore[attr-defined]
            auth = self.tokens.registry_auth()
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.storage = work / "storage"
        cfg = {"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
               "storage": {"filesystem": {"rootdirectory": str(self.storage)}, "delete": {"enabled": True}},
               "http": {"addr": self.host, "tls": {"certificate": str(cert), "key": str(key)}},
               "auth": auth}
        (work / "registry.yml").write_text(json.dumps(cfg))
        self.log = open(work / "registry.log", "wb")  # closed in stop()
        self.proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(work / "registry.yml")],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self._wait()
        except Exception:
            self.stop()
            raise

    def _wait(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.05) + 1):
            try:
                if requests.get(f"https://{self.host}/v2/", verify=str(self.ca), timeout=1).status_code == 401:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"the TLS registry did not start: {(self.work / 'registry.log').read_text()[-2000:]}")

    def credentials_file(self, password: str = PASSWORD) -> Path:
        p = self.work / f"creds-{len(password)}-{abs(hash(password)) % 10000}"
        p.write_text(f"{USER}:{password}\n")
        p.chmod(0o600)
        return p

    def skopeo_raw(self, ref: str) -> bytes:
        """`skopeo inspect --raw` of ref on this registry (pulled back by the independent tool)."""
        out = subprocess.run(["skopeo", "inspect", "--raw", "--cert-dir", str(self.cert_dir()),
                              "--creds", f"{USER}:{PASSWORD}", f"docker://{self.host}/{ref}"],
                             capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr.decode()
        return out.stdout

    def cert_dir(self) -> Path:
        d = self.work / "certs.d"
        d.mkdir(exist_ok=True)
        (d / "ca.crt").write_bytes(self.ca.read_bytes())
        return d

    def stop(self) -> None:
        stop_process(self.proc, self.log)
        if self.tokens is not None:
            self.tokens.stop()


def htpasswd_line(user: str = USER, password: str = PASSWORD) -> str:
    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(5)).decode()}\n"


def bundle_images() -> dict[str, Img]:
    """The images of a small bundle: two sharing a layer, a multi-arch index, a docker.io image."""
    shared = layer(30_000, "push-shared")
    return {
        "registry.k8s.io/pause:3.9": single([shared, layer(5_000, "push-pause")], label="pause"),
        "registry.k8s.io/coredns/coredns:v1.11.1": single([shared, layer(8_000, "push-coredns")], label="coredns"),
        "docker.io/calico/node:v3.28.0": multi(
            [(single([layer(9_000, "push-amd64")], "amd64"), {"architecture": "amd64", "os": "linux"}),
             (single([layer(9_000, "push-arm64")], "arm64", "v8"),
              {"architecture": "arm64", "os": "linux", "variant": "v8"})]),
    }


def write_bundle(root: Path, images: dict[str, Img]) -> Path:
    """A bundle directory whose images/ is an OCI layout as `bundler build` writes it (full refs annotated)."""
    lay = root / "images"
    (lay / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (lay / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    descs = []
    for ref, img in sorted(images.items()):
        for d, data in list(img.blobs.items()) + [(digest_of(m), m) for m, _ in img.manifests]:
            (lay / "blobs" / "sha256" / d.split(":")[1]).write_bytes(data)
        data, mt = img.top
        descs.append({"mediaType": mt, "digest": digest_of(data), "size": len(data),
                      "annotations": {REF_NAME: ref, FULL_REF: ref}})
    (lay / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": descs}))
    (root / "bundle.json").write_text(json.dumps({"schemaVersion": 1, "name": "push-test", "version": "1",
                                                  "target": {"os": "el9", "arch": "x86_64"},
                                                  "kubernetes": {"version": "1.30.0"},
                                                  "images": [{"ref": r, "digest": images[r].digest}
                                                             for r in sorted(images)]}))
    return root
