"""Manifests by tag or digest, kept byte for byte (digests must survive), and platform selection from indexes."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import requests

from ..errors import FetchError
from ..fetch.download import read_body, send_once
from ..fetch.http import apply_mirrors, mirror_key
from ..fetch.retry import RetryPolicy, Transient, TrustProblem
from .access import explain_tls
from .auth import RegistryAuth, load_credentials
from .reference import Reference
from .transport import registry_session

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
MAX_MANIFEST = 4 << 20  # the distribution spec's limit; bigger is an attack or a mistake


@dataclass(frozen=True)
class Endpoint:
    """Where a reference is actually pulled from (after mirrors): scheme, host and repository there."""

    scheme: str
    host: str
    repository: str

    def url(self, kind: str, identifier: str) -> str:
        return f"{self.scheme}://{self.host}/v2/{self.repository}/{kind}/{identifier}"


@dataclass(frozen=True)
class Manifest:
    """A manifest or index exactly as the registry served it."""

    data: bytes
    media_type: str
    digest: str

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.data)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def size(self) -> int:
        return len(self.data)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def normalize_platform(p: str | dict[str, Any]) -> tuple[str, str, str]:
    """('linux', 'arm64', 'v8') from 'linux/arm64' or a descriptor's platform; containerd's defaults for variants."""
    if isinstance(p, str):
        parts = p.split("/")
        os_, arch, variant = (parts + ["", ""])[:3]
    else:
        os_, arch, variant = p.get("os", ""), p.get("architecture", ""), p.get("variant", "")
    arch = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm"}.get(arch, arch)
    if arch == "arm64" and variant in ("", "8"):
        variant = "v8"
    elif arch == "arm" and variant in ("", "7"):
        variant = "v7"
    elif arch == "amd64" and variant == "v1":
        variant = ""
    return os_, arch, variant


def platform_string(p: dict[str, Any]) -> str:
    os_, arch, variant = p.get("os", ""), p.get("architecture", ""), p.get("variant", "")
    return f"{os_}/{arch}/{variant}" if variant else f"{os_}/{arch}"


def select_manifests(ref: str, index: Manifest, platforms: Sequence[str]) -> list[dict[str, Any]]:
    """The child descriptor of index for each wanted platform (attestations, unknown/unknown, skipped)."""
    children = [d for d in index.json.get("manifests", []) if (d.get("platform") or {}).get("os") != "unknown"]
    out: list[dict[str, Any]] = []
    for want in platforms:
        w = normalize_platform(want)
        match = [d for d in children if normalize_platform(d.get("platform") or {}) == w]
        if not match:
            have = ", ".join(sorted({platform_string(d.get("platform") or {}) for d in children})) or "none"
            raise FetchError(
                f"image {ref}: no {want} variant in its {index.media_type} ({index.digest}); it offers {have}. "
                "Use an image built for the target architecture, or a tag that is multi-arch."
            )
        if match[0] not in out:
            out.append(match[0])
    return out


class RegistryClient:
    """A Registry HTTP API v2 client for pulling: mirrors, insecure hosts, auth and retries in one place."""

    def __init__(
        self,
        *,
        mirrors: dict[str, str] | None = None,
        insecure: Iterable[str] = (),
        session: requests.Session | None = None,
        credentials=load_credentials,
        attempts: int | None = None,
        backoff: float | None = None,
        timeout: float | None = None,
        policy: RetryPolicy | None = None,
    ):
        self.mirrors = dict(mirrors or {})
        self.insecure = set(insecure)
        policy = policy or RetryPolicy.from_env()
        changes: dict[str, Any] = {k: v for k, v in (("attempts", attempts), ("backoff", backoff),
                                                         ("read_timeout", timeout))
                   if v is not None}
        self.policy = replace(policy, **changes) if changes else policy
        self.attempts, self.backoff, self.timeout = self.policy.attempts, self.policy.backoff, self.policy.read_timeout
        self.session = session or registry_session(self.insecure, credentials, timeout=self.timeout)
        self._schemes: dict[str, str] = {}
        self._lock = threading.Lock()

    def _is_insecure(self, netloc: str) -> bool:
        return netloc in self.insecure or (urlsplit(f"//{netloc}").hostname or "") in self.insecure

    def endpoint(self, ref: Reference) -> Endpoint:
        """Apply `mirrors:` (by registry host, or host/repository prefix) and pick the scheme: https, or http for
        insecure plain-HTTP hosts."""
        upstream = f"https://{ref.registry}/{ref.repository}"
        key = mirror_key(upstream, self.mirrors) if self.mirrors else None
        if key is not None:
            parts = urlsplit(apply_mirrors(upstream, self.mirrors))
            host, repo = parts.netloc, parts.path.strip("/")
            scheme = parts.scheme if "://" in self.mirrors[key] else self._scheme(host)
        else:
            host, repo = ref.api_host, ref.repository
            scheme = self._scheme(host)
        if isinstance(self.session.auth, RegistryAuth):
            self.session.auth.allow(host)
        return Endpoint(scheme, host, repo)

    def _scheme(self, host: str) -> str:
        if not self._is_insecure(host):
            return "https"
        with self._lock:
            if host in self._schemes:
                return self._schemes[host]
        try:
            self.session.get(f"https://{host}/v2/", timeout=min(self.timeout, 10)).close()
            scheme = "https"
        except (requests.exceptions.SSLError, requests.ConnectionError):
            scheme = "http"  # insecure registries are plain HTTP more often than self-signed HTTPS
        with self._lock:
            self._schemes[host] = scheme
        return scheme

    def _explain(self, ref: Reference, ep: Endpoint, r: requests.Response, what: str) -> FetchError:
        via = f" (through the mirror {ep.host}/{ep.repository})" if ep.host != ref.api_host else ""
        if r.status_code in (401, 403):
            return FetchError(
                f"image {ref}: registry {ep.host} refused access to {what} (HTTP {r.status_code}){via}. Log in with "
                f"`docker login {ep.host}` (credentials are read from $DOCKER_CONFIG/config.json or "
                "~/.docker/config.json, including credHelpers/credsStore) or name them in the manifest under "
                f"spec.registries[\"{ep.host}\"].credentials (fromEnv, dockerConfig or helper), or check the name: "
                "registries answer 401 for repositories that do not exist."
            )
        if r.status_code == 404:
            return FetchError(
                f"image {ref}: {what} not found on {ep.host}{via} (HTTP 404). Check the name and tag in the manifest"
                + (", and that the mirror carries this image." if via else ".")
            )
        return FetchError(f"image {ref}: {ep.host} answered HTTP {r.status_code} for {what}{via}.")

    def get_manifest(self, ref: Reference, identifier: str | None = None) -> Manifest:
        """The manifest or index for ref (or for identifier, a child digest), verified against its digest.

        A body that arrives altered (digest mismatch, not JSON) is fetched once more before failing.
        """
        ep = self.endpoint(ref)
        ident = identifier or ref.identifier
        url = ep.url("manifests", ident)

        def once(_: int) -> tuple[bytes, str, dict[str, Any], str]:
            r = send_once(self.session, "GET", url, headers={"Accept": ACCEPT}, stream=True, policy=self.policy)
            if r.status_code != 200:
                with r:
                    raise self._explain(ref, ep, r, f"manifest {ident}")
            data = read_body(r, self.policy, url, MAX_MANIFEST)
            if len(data) > MAX_MANIFEST:
                raise FetchError(f"image {ref}: the manifest {ident} is larger than 4 MiB; refusing it.")
            digest = sha256_digest(data)
            expected = ident if ident.startswith("sha256:") else r.headers.get("Docker-Content-Digest", "")
            if expected.startswith("sha256:") and expected != digest:
                raise Transient(f"does not match its digest (expected {expected}, got {digest})", corrupt=True,
                                final=FetchError(
                    f"image {ref}: the manifest from {ep.host} does not match its digest (expected {expected}, got "
                    f"{digest}). The registry or a proxy altered it; nothing was written. Try another mirror."))
            try:
                doc = json.loads(data)
            except ValueError:
                raise Transient("is not JSON", corrupt=True, final=FetchError(
                    f"image {ref}: {ep.host} served a manifest that is not JSON.")) from None
            if not isinstance(doc, dict):
                raise FetchError(f"image {ref}: {ep.host} served a manifest that is not a JSON object.")
            return data, digest, doc, r.headers.get("Content-Type", "")

        try:
            data, digest, doc, ctype = self.policy.call(once, what=f"image {ref}", url=f"GET {url}")
        except TrustProblem as e:
            raise explain_tls(url, e.error, f"image {ref}") from None  # a setting: retrying cannot help
        media = doc.get("mediaType") or ctype.split(";")[0].strip()
        if doc.get("schemaVersion") == 1 or "prettyjws" in media or media == SCHEMA1:
            raise FetchError(
                f"image {ref}: uses the deprecated Docker schema 1 manifest format, which cannot be verified or "
                "stored by digest. Re-push the image with a current Docker, skopeo or crane."
            )
        if media not in INDEX_TYPES + MANIFEST_TYPES:
            media = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
        return Manifest(data, media, digest)

    def blob_url(self, ref: Reference, digest: str) -> str:
        return self.endpoint(ref).url("blobs", digest)

