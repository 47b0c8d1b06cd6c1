"""spec.registries: private registries (self-signed CA, plain HTTP, htpasswd) honoured by plan, lock and build.

Real Debian docker-registry processes on loopback: one plain-HTTP, one HTTPS with a certificate from a
throwaway CA and htpasswd auth, sharing one storage. Nothing is mocked.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest
import requests

from bundler.errors import ManifestError
from bundler.lock import manifest_digest
from bundler.manifest import load_manifest
from tests.images.helpers import Registry, free_port, layer, put_image, single

ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD = "h4user", "Sup3r-Secret-Pw"


@dataclass
class Registries:
    plain: str  # host:port, plain HTTP, anonymous
    tls: str  # host:port, HTTPS (throwaway CA), htpasswd
    ca: Path
    digest: str
    work: Path


def _make_ca_and_cert(work: Path) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "h4 test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = work / "ca.pem", work / "server.pem", work / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@pytest.fixture(scope="module")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registries]:
    work = tmp_path_factory.mktemp("regs")
    ca, cert, key = _make_ca_and_cert(work)
    htpasswd = work / "htpasswd"
    htpasswd.write_text(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(5)).decode()}\n")
    plain = Registry(work / "plain")
    proc = log = None
    try:
        digest = put_image(plain.host, "app/one", "v1", single([layer(3000, "h4-one")], label="h4"))
        port = free_port()
        cfg = {"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
               "storage": {"filesystem": {"rootdirectory": str(plain.storage)}},
               "http": {"addr": f"127.0.0.1:{port}", "tls": {"certificate": str(cert), "key": str(key)}},
               "auth": {"htpasswd": {"realm": "h4", "path": str(htpasswd)}}}
        (work / "tls.yml").write_text(json.dumps(cfg))
        log = open(work / "tls.log", "wb")  # closed below
        proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(work / "tls.yml")], stdout=log,
                                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            try:
                if requests.get(f"https://127.0.0.1:{port}/v2/", verify=str(ca), timeout=1).status_code == 401:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, (work / "tls.log").read_text()
            time.sleep(0.05)
        yield Registries(plain.host, f"127.0.0.1:{port}", ca, digest, work)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if log is not None:
            log.close()
        plain.stop()


def _manifest(tmp_path: Path, regs: Registries, section: str = "", images: tuple[str, ...] = ("tls", "plain")) -> Path:
    refs = [f"{getattr(regs, k)}/app/one:v1" for k in images]
    (tmp_path / "ca.pem").write_bytes(regs.ca.read_bytes())
    p = tmp_path / "m.yaml"
    p.write_text("apiVersion: bundler/v1\nkind: Bundle\nmetadata: {name: regs, version: '1'}\nspec:\n"
                 f"  target: {{os: el9, arch: x86_64}}\n  images: {json.dumps(refs)}\n{section}")
    return p


SECTION = """  registries:
    "{tls}":
      caFile: ca.pem
      credentials: {{fromEnv: {{username: H4_REG_USER, password: H4_REG_PASS}}}}
    "{plain}": {{insecure: true}}
"""


def _cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    empty = tmp_path / "docker-config"
    empty.mkdir(exist_ok=True)
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "DOCKER_CONFIG": str(empty), **(env or {})}
    for var in ("H4_REG_USER", "H4_REG_PASS"):
        if env is None or var not in env:
            full_env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "bundler.cli", *args, "--cache", str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=120, env=full_env, cwd=tmp_path,
                          stdin=subprocess.DEVNULL)


CREDS = {"H4_REG_USER": USER, "H4_REG_PASS": PASSWORD}


def test_lock_and_plan_honour_the_registries_section(registries: Registries, tmp_path: Path) -> None:
    m = _manifest(tmp_path, registries, SECTION.format(tls=registries.tls, plain=registries.plain))
    r = _cli(tmp_path, "lock", str(m), env=CREDS)
    assert r.returncode == 0, r.stderr
    lock = json.loads((tmp_path / "m.yaml.lock").read_text())
    assert {i["ref"]: i["digest"] for i in lock["images"]} == {
        f"{registries.tls}/app/one:v1": registries.digest, f"{registries.plain}/app/one:v1": registries.digest}
    r = _cli(tmp_path, "plan", str(m), "--json", env=CREDS)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["images"]) == 2
    for text in (r.stdout, r.stderr, (tmp_path / "m.yaml.lock").read_text()):
        assert PASSWORD not in text  # a credential is never printed or written


def test_build_honours_the_registries_section(registries: Registries, tmp_path: Path) -> None:
    m = _manifest(tmp_path, registries, SECTION.format(tls=registries.tls, plain=registries.plain))
    r = _cli(tmp_path, "build", str(m), "-o", str(tmp_path / "out"), "--format", "dir", "-q", env=CREDS)
    assert r.returncode == 0, r.stderr
    bom = (tmp_path / "out" / "regs-1-el9-x86_64" / "bundle.json").read_text()
    assert json.loads(bom)["images"][0]["digest"] == registries.digest
    assert PASSWORD not in bom and "H4_REG_PASS" not in bom and "ca.pem" not in bom  # access is not content


def test_without_the_section_tls_and_http_registries_fail_pointing_at_it(registries: Registries,
                                                                          tmp_path: Path) -> None:
    r = _cli(tmp_path, "lock", str(_manifest(tmp_path, registries, images=("tls",))))
    msg = " ".join(r.stderr.split())
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"the certificate of {registries.tls} is not trusted" in msg
    assert "spec.registries" in msg and "caFile" in msg and "failed after" not in msg  # no pointless retries
    r = _cli(tmp_path, "lock", str(_manifest(tmp_path, registries, images=("plain",))))
    msg = " ".join(r.stderr.split())
    assert r.returncode == 1 and f"{registries.plain} does not speak TLS" in msg, r.stderr
    assert f'"{registries.plain}": {{insecure: true}}' in msg and f"--insecure-registry {registries.plain}" in msg


def test_lock_takes_insecure_registry_flag_and_missing_credentials_fail_early(registries: Registries,
                                                                               tmp_path: Path) -> None:
    r = _cli(tmp_path, "lock", str(_manifest(tmp_path, registries, images=("plain",))),
             "--insecure-registry", registries.plain)
    assert r.returncode == 0, r.stderr
    m = _manifest(tmp_path, registries, SECTION.format(tls=registries.tls, plain=registries.plain))
    r = _cli(tmp_path, "lock", str(m), env={"H4_REG_USER": USER})
    msg = " ".join(r.stderr.split())
    assert r.returncode == 2 and "fromEnv names H4_REG_PASS, which is not set" in msg, r.stderr
    r = _cli(tmp_path, "lock", str(m), env={"H4_REG_USER": USER, "H4_REG_PASS": "wrong-" + PASSWORD})
    assert r.returncode == 1 and "refused access" in r.stderr and PASSWORD not in r.stderr, r.stderr


HEAD = "apiVersion: bundler/v1\nkind: Bundle\nmetadata: {name: a, version: '1'}\nspec:\n" \
       "  target: {os: el9, arch: x86_64}\n  registries:\n"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ('    "https://reg.example:5000": {insecure: true}\n', "is not a registry host: write the host name"),
        ("    reg.example:5000: {caFile: nope.pem}\n", "caFile: "),
        ("    reg.example:5000: {caFile: notpem.pem}\n", "holds no PEM certificate"),
        ("    reg.example:5000: {caFile: badpem.pem}\n", "is not a valid PEM CA certificate"),
        ("    reg.example:5000: {caFile: ca.pem, insecure: true}\n", "keep one"),
        ("    reg.example:5000: {insecure: 'yes'}\n", "must be true or false"),
        ("    reg.example:5000: {credentials: {helper: x, fromEnv: {username: A, password: B}}}\n",
         "give exactly one of fromEnv"),
        ("    reg.example:5000: {credentials: {fromEnv: {username: 'A B', password: B}}}\n",
         "an environment variable name"),
        ("    reg.example:5000: {credentials: {dockerConfig: nodir}}\n", "no such Docker config file"),
        ("    reg.example:5000: {tls: true}\n", "unknown key"),
    ],
)
def test_registries_section_is_validated(tmp_path: Path, entry: str, expected: str) -> None:
    (tmp_path / "notpem.pem").write_text("hello\n")
    (tmp_path / "badpem.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    (tmp_path / "ca.pem").write_bytes(_make_ca_and_cert(tmp_path)[0].read_bytes())
    p = tmp_path / "m.yaml"
    p.write_text(HEAD + entry)
    with pytest.raises(ManifestError) as e:
        load_manifest(p)
    msg = str(e.value)
    assert str(p) in msg and "spec.registries" in msg and expected in msg and "\n" not in msg


def test_paths_are_relative_to_the_fragment_and_access_is_not_in_the_lock_digest(tmp_path: Path) -> None:
    (tmp_path / "frag").mkdir()
    _make_ca_and_cert(tmp_path / "frag")
    (tmp_path / "frag" / "regs.yaml").write_text(
        "spec:\n  registries:\n    Reg.Example:5000: {caFile: ca.pem, credentials: {dockerConfig: .}}\n")
    (tmp_path / "frag" / "config.json").write_text("{}")
    base = "apiVersion: bundler/v1\nkind: Bundle\nmetadata: {name: a, version: '1'}\nspec:\n" \
           "  target: {os: el9, arch: x86_64}\n"
    (tmp_path / "m.yaml").write_text(base.replace("spec:\n", "include: [frag/regs.yaml]\nspec:\n"))
    (tmp_path / "plain.yaml").write_text(base)
    m = load_manifest(tmp_path / "m.yaml")
    s = m.registries["reg.example:5000"]
    assert s.ca_file == tmp_path / "frag" / "ca.pem"
    assert s.credentials.docker_config == tmp_path / "frag" / "config.json"
    assert manifest_digest(m) == manifest_digest(load_manifest(tmp_path / "plain.yaml"))


@pytest.mark.parametrize("kind", ["helper", "dockerConfig"])
def test_credentials_from_a_helper_or_a_docker_config(registries: Registries, tmp_path: Path, kind: str) -> None:
    """The other two references: docker-credential-NAME on PATH, and a config.json beside the manifest."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-h4fake"
    helper.write_text(f'#!/bin/sh\nread host\n[ "$host" = "{registries.tls}" ] || exit 1\n'
                      f'echo \'{{"Username":"{USER}","Secret":"{PASSWORD}"}}\'\n')
    helper.chmod(0o755)
    (tmp_path / "dc").mkdir()
    token = __import__("base64").b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (tmp_path / "dc" / "config.json").write_text(json.dumps({"auths": {registries.tls: {"auth": token}}}))
    ref = "{helper: h4fake}" if kind == "helper" else "{dockerConfig: dc}"
    section = f'  registries:\n    "{registries.tls}": {{caFile: ca.pem, credentials: {ref}}}\n'
    m = _manifest(tmp_path, registries, section, images=("tls",))
    r = _cli(tmp_path, "lock", str(m), env={"PATH": f"{bindir}:{os.environ['PATH']}"})
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "m.yaml.lock").read_text())["images"][0]["digest"] == registries.digest


def test_settings_lookup_flag_merge_and_tls_table() -> None:
    from bundler.manifest import RegistrySettings
    from bundler.registry.access import merge_settings, settings_for, tls_verify

    table = merge_settings({"reg.example": RegistrySettings(insecure=True),
                            "ca.example:8443": RegistrySettings(ca_file=Path("/ca.pem")),
                            "docker.io": RegistrySettings(ca_file=Path("/hub.pem"))},
                           insecure=["Flag.Example:5000", "ca.example:8443"])
    assert settings_for(table, "reg.example:5000").insecure  # a key without a port covers every port
    assert settings_for(table, "ca.example:443") is None
    assert settings_for(table, "flag.example:5000").insecure
    assert table["ca.example:8443"] == RegistrySettings(insecure=True)  # the flag wins over a caFile
    assert settings_for(table, "registry-1.docker.io").ca_file == Path("/hub.pem")  # docker.io's API host
    assert tls_verify(table)["reg.example"] is False and tls_verify(table)["docker.io"] == "/hub.pem"
