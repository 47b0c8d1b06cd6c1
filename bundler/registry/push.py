"""`bundler push BUNDLE --to REGISTRY`: copy a bundle's images into a registry (Harbor, distribution, ...).

Like `kk artifact images push` or `hauler store copy`, but by content: every blob and manifest is looked for
first (HEAD) and only what is missing is sent, shared layers are cross-mounted between repositories, manifests
and indexes are PUT with their exact bytes (digests and multi-arch survive), the bundle's tags are kept. An
interrupted push is resumed by running it again. Images land at `REGISTRY[/PREFIX]/<upstream host>/<repo>`,
the layout the installer's runtime config (containerd hosts.toml) expects for `./install.py --registry`.
"""

from __future__ import annotations

import json
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from ..errors import BundlerError, FetchError
from ..fetch.download import send_once
from ..fetch.retry import _NOT_TLS, _SSL_REASON, RetryPolicy, TrustProblem
from ..manifest.model import RegistrySettings
from ..oci.layout import FULL_REF, REF_NAME
from .access import credential_lookup, merge_settings, settings_for, tls_verify
from .auth import Credentials, RegistryAuth
from .client import INDEX_TYPES, OCI_MANIFEST, sha256_digest
from .reference import parse_reference
from .transport import registry_session

_TARGET_HOST = r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$"


class PushError(BundlerError):
    """The push cannot go on (registry unreachable, untrusted, refused); exit code 1."""


class UsageError(BundlerError):
    """Bad --to, --credentials or BUNDLE: exit code 2."""

    exit_code = 2


@dataclass(frozen=True)
class Target:
    """REGISTRY[/PREFIX]: the host as contacted and the path the images go under."""

    host: str
    prefix: str = ""

    def repository(self, ref: str) -> str:
        r = parse_reference(ref)
        return "/".join(p for p in (self.prefix, r.registry, r.repository) if p)

    def __str__(self) -> str:
        return f"{self.host}/{self.prefix}" if self.prefix else self.host


def parse_target(text: str) -> Target:
    import re

    raw = text.strip()
    if raw.lower().startswith("https://"):
        raw = raw[8:]
    host, _, prefix = raw.partition("/")
    prefix = prefix.strip("/")
    if "://" in raw or not re.match(_TARGET_HOST, host) or \
            (prefix and not re.match(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$", prefix)):
        raise UsageError(f"--to {text!r} is not REGISTRY[/PREFIX]: give a host[:port] and optionally a lower-case "
                         "path such as a Harbor project (harbor.example.com/k8s, 10.0.0.5:5000).")
    return Target(host, prefix)


def read_credentials_file(path: Path, host: str) -> Credentials:
    """`user:password` on one line, or a Docker config.json with an auths entry for host; never echoes it."""
    from .auth import load_credentials

    try:
        if path.exists() and not path.is_file():  # a FIFO would block the read
            raise OSError(0, "not a regular file")
        text = path.read_bytes().decode("utf-8").strip()
    except OSError as e:
        raise UsageError(f"--credentials {path}: cannot read it ({e.strerror or e}).") from None
    except UnicodeDecodeError:
        raise UsageError(f"--credentials {path}: not UTF-8 text; give `user:password` on one line or a Docker "
                         "config.json.") from None
    if text.startswith("{"):
        try:
            json.loads(text)
        except (ValueError, RecursionError):
            raise UsageError(f"--credentials {path}: not valid JSON (a Docker config.json was expected).") from None
        creds = load_credentials(host, config_file=path)
        if creds is None:
            raise UsageError(f"--credentials {path}: no auths entry for {host}. Run `docker login {host}` or give "
                             "a file with `user:password` on one line.")
        return creds
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) != 1 or ":" not in lines[0] or lines[0].startswith(":"):
        raise UsageError(f"--credentials {path}: expected one line `user:password` or a Docker config.json.")
    user, _, password = lines[0].partition(":")
    return Credentials(user.strip(), password)


@dataclass
class Stats:
    images: int = 0
    manifests_put: int = 0
    manifests_present: int = 0
    blobs_uploaded: int = 0
    blobs_present: int = 0
    blobs_mounted: int = 0
    bytes_uploaded: int = 0
    missing: dict[str, int] = field(default_factory=dict)  # plan: blob digest -> size

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["missing_blobs"] = len(d.pop("missing"))
        return d


class Layout:
    """The bundle's OCI image layout (images/): index.json and blobs/sha256/<hex>."""

    def __init__(self, root: Path, runtime: str = "containerd"):
        self.root = root
        self.runtime = runtime  # bundle.json's: docker bundles also get docker.io images at the bare repository
        try:
            self.index = json.loads((root / "index.json").read_text())
        except (OSError, ValueError, RecursionError) as e:
            raise UsageError(f"{root / 'index.json'}: cannot read the bundle's image index ({e}). Give an unpacked "
                             "bundle directory or its tarball.") from None
        manifests = self.index.get("manifests", []) if isinstance(self.index, dict) else None
        if not isinstance(manifests, list) or not all(
                isinstance(d, dict) and isinstance(d.get("digest"), str)
                and isinstance(d.get("annotations") or {}, dict) for d in manifests):
            raise UsageError(f"{root / 'index.json'}: not an OCI image index (an object whose manifests[] each have a "
                             "digest). The bundle is damaged: check it with `bundler verify` and copy it again.")

    def blob(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest.split(":", 1)[1]

    def read(self, digest: str) -> bytes:
        data = self.blob(digest).read_bytes()
        if sha256_digest(data) != digest:
            raise PushError(f"{self.blob(digest)} does not match its digest {digest}: the bundle is damaged. Check it "
                            "with `bundler verify` and copy it again.")
        return data

    def images(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for d in self.index.get("manifests", []):
            ann = d.get("annotations") or {}
            ref = ann.get(FULL_REF) or ann.get(REF_NAME)
            if ref:
                out.append((ref, d))
        return sorted(out, key=lambda t: t[0])


@contextmanager
def open_layout(bundle: Path) -> Iterator[Layout]:
    """The images/ layout of an unpacked bundle, or of a tarball (its images/ unpacked to a temporary dir)."""
    if bundle.is_dir():
        root = bundle / "images" if (bundle / "images" / "index.json").is_file() else bundle
        yield Layout(root, _runtime((root.parent / "bundle.json").read_bytes()
                                    if (root.parent / "bundle.json").is_file() else b"{}"))
        return
    if not bundle.is_file():
        raise UsageError(f"{bundle}: no such bundle (give the tarball or the unpacked directory).")
    with tempfile.TemporaryDirectory(prefix="bundler-push-") as tmp:
        found = None
        bom = b"{}"
        try:
            with tarfile.open(bundle, "r:*") as tar:
                for m in tar:
                    parts = m.name.split("/")
                    if parts[-1] == "bundle.json" and len(parts) <= 2 and m.isfile():
                        src = tar.extractfile(m)
                        bom = src.read(4 << 20) if src is not None else bom
                        continue
                    if "images" not in parts[:2] or not m.isfile() or ".." in parts:
                        continue
                    rel = parts[parts.index("images") + 1:]
                    dest = Path(tmp, *rel)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    src = tar.extractfile(m)
                    if src is not None:
                        with src, open(dest, "wb") as out:
                            while chunk := src.read(1 << 20):
                                out.write(chunk)
                    found = True
        except (OSError, tarfile.TarError) as e:
            raise UsageError(f"{bundle}: cannot read the tarball ({e}).") from None
        if not found:
            raise UsageError(f"{bundle}: the tarball has no images/ directory (a bundle without images?).")
        yield Layout(Path(tmp), _runtime(bom))


def _runtime(bundle_json: bytes) -> str:
    try:
        return str(json.loads(bundle_json).get("runtime") or "containerd")
    except (ValueError, AttributeError):
        return "containerd"


class Pusher:
    """Pushes a layout's images to one target over one authenticated session."""

    def __init__(self, target: Target, session: requests.Session, policy: RetryPolicy, scheme: str = "https",
                 progress: Callable[[str], None] | None = None, fix_tls: str = "", fix_auth: str = ""):
        self.target, self.session, self.policy = target, session, policy
        self.base = f"{scheme}://{target.host}"
        self.progress = progress or (lambda _: None)
        self.fix_tls, self.fix_auth = fix_tls, fix_auth
        self.stats = Stats()
        self.home: dict[str, str] = {}  # blob digest -> a repository on the target that has it

    # -- HTTP ----------------------------------------------------------------------------------------
    def _send(self, method: str, path: str, *, headers: dict[str, str] | None = None, data: Any = None,
              ok: tuple[int, ...] = ()) -> requests.Response:
        url = path if path.startswith("http") else urljoin(self.base + "/", path.lstrip("/"))
        try:
            r = self.policy.call(lambda _: send_once(self.session, method, url, headers=headers, data=data,
                                                     stream=False, policy=self.policy),
                                 what=f"registry {self.target.host}", url=f"{method} {url}")
        except TrustProblem as e:
            m = _SSL_REASON.search(str(e.error))
            why = f"{m.group(1)}: {m.group(2).strip()}" if m else type(e.error).__name__
            if m and m.group(1) in _NOT_TLS:
                raise PushError(f"{self.target.host} does not speak TLS ({why}); it is probably a plain-HTTP "
                                "registry. Use --insecure for plain HTTP (only on a trusted network).") from None
            raise PushError(f"the TLS certificate of {self.target.host} is not trusted ({why}). "
                            f"{self.fix_tls}") from None
        except FetchError as e:
            raise PushError(f"cannot reach the registry {self.target.host}: {e}. Check the address and port, and "
                            "that the registry runs and is reachable from here.") from None
        if ok and r.status_code not in ok:
            raise self._explain(r, method, url)
        return r

    def _explain(self, r: requests.Response, method: str, url: str) -> PushError:
        path = urlsplit(url).path
        if r.status_code == 401:
            return PushError(f"registry {self.target.host} refused the credentials for {method} {path} (HTTP 401). "
                             f"{self.fix_auth}")
        if r.status_code == 403:
            return PushError(f"registry {self.target.host} denies {method} {path} (HTTP 403): the account may not "
                             "push there. Give it push permission on that repository or project (Harbor: the "
                             "Developer role or higher), or push under another prefix.")
        return PushError(f"registry {self.target.host} answered HTTP {r.status_code} to {method} {path}: "
                         f"{r.text[:300].strip()}")

    def ping(self) -> None:
        r = self._send("GET", "/v2/")
        if r.status_code == 401:
            raise self._explain(r, "GET", "/v2/")
        if r.status_code != 200:
            raise PushError(f"https://{self.target.host}/v2/ answered HTTP {r.status_code}: not a container "
                            "registry (Registry API v2). Check the address given with --to.")

    # -- blobs and manifests -------------------------------------------------------------------------
    def has_blob(self, repo: str, digest: str) -> bool:
        r = self._send("HEAD", f"/v2/{repo}/blobs/{digest}")
        if r.status_code in (401, 403):
            raise self._explain(r, "HEAD", f"/v2/{repo}/blobs/{digest}")
        return r.status_code == 200

    def put_blob(self, layout: Layout, repo: str, digest: str, size: int) -> None:
        if self.has_blob(repo, digest):
            self.stats.blobs_present += 1
            self.home.setdefault(digest, repo)
            return
        home = self.home.get(digest)
        query = {"mount": digest, "from": home} if home and home != repo else {}
        r = self._send("POST", f"/v2/{repo}/blobs/uploads/" + (f"?{urlencode(query)}" if query else ""),
                       ok=(201, 202))
        if r.status_code == 201:
            self.stats.blobs_mounted += 1
            self.home[digest] = repo
            return
        path = layout.blob(digest)
        if not path.is_file():
            raise PushError(f"the bundle lacks blob {digest} ({path}); check it with `bundler verify`.")
        location = urljoin(self.base + "/", r.headers["Location"])
        sep = "&" if "?" in location else "?"

        def body() -> Any:
            return path.open("rb")

        self._send("PUT", f"{location}{sep}{urlencode({'digest': digest})}", data=body,
                   headers={"Content-Type": "application/octet-stream", "Content-Length": str(path.stat().st_size)},
                   ok=(201,))
        self.stats.blobs_uploaded += 1
        self.stats.bytes_uploaded += path.stat().st_size
        self.home[digest] = repo

    def manifest_digest(self, repo: str, reference: str, media_type: str) -> str | None:
        r = self._send("HEAD", f"/v2/{repo}/manifests/{reference}", headers={"Accept": media_type})
        if r.status_code in (401, 403):
            raise self._explain(r, "HEAD", f"/v2/{repo}/manifests/{reference}")
        return r.headers.get("Docker-Content-Digest") if r.status_code == 200 else None

    def push_manifest(self, layout: Layout, repo: str, desc: dict[str, Any], reference: str, dry: bool) -> None:
        digest = desc["digest"]
        data = layout.read(digest)
        doc = json.loads(data)
        media = doc.get("mediaType") or desc.get("mediaType") or OCI_MANIFEST
        if media in INDEX_TYPES or "manifests" in doc:
            for child in doc.get("manifests", []):
                if layout.blob(child["digest"]).is_file():  # platforms the bundle did not keep are left out
                    self.push_manifest(layout, repo, child, child["digest"], dry)
        else:
            wanted = ([doc["config"]] if doc.get("config") else []) + [
                d for d in doc.get("layers", []) if not d.get("urls")]
            for d in wanted:
                if dry:
                    if d["digest"] not in self.stats.missing and not self.has_blob(repo, d["digest"]):
                        self.stats.missing[d["digest"]] = int(d.get("size", 0))
                else:
                    self.put_blob(layout, repo, d["digest"], int(d.get("size", 0)))
        if self.manifest_digest(repo, reference, media) == digest:
            self.stats.manifests_present += 1
            return
        if dry:
            self.stats.manifests_put += 1
            return
        r = self._send("PUT", f"/v2/{repo}/manifests/{reference}", data=data, headers={"Content-Type": media},
                       ok=(201,))
        got = r.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise PushError(f"registry {self.target.host} stored {repo}:{reference} as {got}, not {digest}: it "
                            "rewrites manifests, so pulls by digest would fail.")
        self.stats.manifests_put += 1

    def push(self, layout: Layout, only: set[str] | None = None, dry: bool = False) -> Stats:
        images = [(ref, d) for ref, d in layout.images() if not only or ref in only]
        for n, (ref, desc) in enumerate(images, 1):
            repo = self.target.repository(ref)
            tag = parse_reference(ref).tag or desc["digest"]
            repos = [repo]
            if layout.runtime == "docker" and repo.startswith("docker.io/") and not self.target.prefix:
                repos.append(repo[len("docker.io/"):])  # docker's registry-mirrors look there (install --registry)
            for r in repos:
                self.push_manifest(layout, r, desc, tag, dry)
            self.stats.images += 1
            self.progress(f"[{n}/{len(images)}] {ref} -> {self.target.host}/{repo}:{tag}")
        return self.stats


def make_pusher(target: Target, ca: Path | None = None, credentials: Path | None = None,
                settings: dict[str, RegistrySettings] | None = None, insecure: bool = False,
                progress: Callable[[str], None] | None = None) -> Pusher:
    """A Pusher whose session trusts --ca (else spec.registries' caFile, else the system CAs) and answers
    challenges with --credentials (else spec.registries' credentials, else the Docker login)."""
    table = merge_settings(settings or {}, [target.host] if insecure else [])
    current = settings_for(table, target.host) or RegistrySettings()
    if ca is not None:
        if not ca.is_file() or "-----BEGIN CERTIFICATE-----" not in ca.read_text(errors="replace"):
            raise UsageError(f"--ca {ca}: not a PEM certificate file. Give the CA that signed the registry's "
                             "certificate, in PEM.")
        table[target.host.lower()] = replace(current, ca_file=ca, insecure=False)
    lookup = credential_lookup(table)
    given = read_credentials_file(credentials, target.host) if credentials else None

    def creds(netloc: str) -> Credentials | None:
        return given if given is not None and netloc == target.host else lookup(netloc)

    policy = RetryPolicy.from_env()
    session = registry_session([target.host] if insecure else [], creds, verify=tls_verify(table))
    auth = session.auth
    if isinstance(auth, RegistryAuth):
        auth.allow(target.host)
    fix_tls = (f"--ca {ca} did not sign its certificate: give the right CA (PEM)." if ca else
               "Give the CA that signed its certificate with --ca FILE (PEM), or its caFile under spec.registries.")
    fix_auth = (f"Check the user and password in {credentials}, and that the account may push under {target}/ (a "
                "token registry such as Harbor answers 401 when the project does not exist or the account lacks the "
                "Developer role there)." if credentials else
                f"Give them with --credentials FILE (user:password or a Docker config.json), `docker login "
                f"{target.host}`, or credentials under spec.registries.")
    scheme = "http" if insecure and _plain_http(session, target.host) else "https"
    return Pusher(target, session, replace(policy, attempts=min(policy.attempts, 3)), scheme, progress, fix_tls,
                  fix_auth)


def _plain_http(session: requests.Session, host: str) -> bool:
    try:
        session.get(f"https://{host}/v2/", timeout=10).close()
        return False
    except (requests.exceptions.SSLError, requests.ConnectionError):
        return True
