"""Push images from the OCI store into a registry exactly as stored: same manifest bytes, same digests.

This is the reference implementation of what the installer does on the target (its copy is stdlib only).
Blobs are streamed from disk, skipped when the registry already has them, mounted across repositories of
the same registry when possible; children are pushed before their index, the index last under its tag.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlencode, urljoin

import requests

from ..errors import FetchError
from ..registry.client import INDEX_TYPES, RegistryClient
from ..registry.reference import Reference, parse_reference
from ..registry.transport import request
from .layout import FULL_REF, REF_NAME, OCILayout


class _Pusher:
    def __init__(self, layout: OCILayout, client: RegistryClient, base: str):
        self.layout, self.client, self.base = layout, client, base
        self.pushed: dict[str, str] = {}  # blob digest -> repository that has it

    def _req(self, method: str, url: str, what: str, **kw) -> requests.Response:
        return request(self.client.session, method, url, what=what, attempts=self.client.attempts,
                       backoff=self.client.backoff, timeout=self.client.timeout, **kw)

    def blob(self, repo: str, digest: str, what: str) -> None:
        url = f"{self.base}/v2/{repo}/blobs/{digest}"
        if self.pushed.get(digest) == repo:
            return
        r = self._req("HEAD", url, what)
        r.close()
        if r.status_code == 200:
            self.pushed[digest] = repo
            return
        query = {}
        if digest in self.pushed:
            query = {"mount": digest, "from": self.pushed[digest]}
        r = self._req("POST", f"{self.base}/v2/{repo}/blobs/uploads/?{urlencode(query)}", what, ok=(201, 202))
        r.close()
        if r.status_code == 201:
            self.pushed[digest] = repo
            return
        if r.status_code != 202 or "Location" not in r.headers:
            raise FetchError(f"{what}: {self.base} refused the upload of blob {digest} (HTTP {r.status_code}).")
        loc = urljoin(url, r.headers["Location"])
        loc += ("&" if "?" in loc else "?") + urlencode({"digest": digest})
        path = self.layout.blob_path(digest)
        size = path.stat().st_size

        def body():
            return open(path, "rb")  # noqa: SIM115 - requests streams and closes it

        r = self._req("PUT", loc, what, data=body,
                      headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)})
        r.close()
        if r.status_code != 201:
            raise FetchError(f"{what}: {self.base} rejected blob {digest} (HTTP {r.status_code}).")
        self.pushed[digest] = repo

    def manifest(self, repo: str, digest: str, media_type: str, tag: str, what: str) -> str:
        data = self.layout.read_blob(digest)
        doc = json.loads(data)
        if media_type in INDEX_TYPES:
            for child in doc.get("manifests", []):
                self.manifest(repo, child["digest"], child["mediaType"], child["digest"], what)
        else:
            for d in [doc["config"], *(doc.get("layers") or [])]:
                self.blob(repo, d["digest"], what)
        r = self._req("PUT", f"{self.base}/v2/{repo}/manifests/{tag}", what, data=data,
                      headers={"Content-Type": media_type}, ok=(201,))
        r.close()
        if r.status_code != 201:
            raise FetchError(f"{what}: {self.base} rejected manifest {digest} (HTTP {r.status_code}).")
        got = r.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise FetchError(f"{what}: {self.base} stored manifest {digest} as {got}: it rewrote the manifest.")
        return digest


def default_repository(ref: Reference) -> str:
    """registry.k8s.io/pause -> pause, docker.io/library/nginx -> library/nginx: the upstream path."""
    return ref.repository


def push_layout(
    store: Path | str,
    registry: str,
    *,
    client: RegistryClient | None = None,
    insecure: Iterable[str] = (),
    refs: Iterable[str] | None = None,
    repository: Callable[[Reference], str] = default_repository,
) -> dict[str, str]:
    """Push every image in the store (or only refs) to registry (host[:port], or http://host:port).

    Returns {full original ref: pushed manifest digest}; the digest is the stored one, byte for byte.
    """
    layout = OCILayout(store)
    client = client or RegistryClient(insecure=insecure)
    if "://" in registry:
        base = registry.rstrip("/")
        host = base.split("://", 1)[1]
    else:
        host = registry
        base = f"{client._scheme(host)}://{host}"
    if hasattr(client.session.auth, "allow"):
        client.session.auth.allow(host)  # type: ignore[union-attr]
    pusher = _Pusher(layout, client, base)
    wanted = set(refs) if refs is not None else None
    out: dict[str, str] = {}
    for desc in layout.entries():
        ann = desc.get("annotations") or {}
        full = ann.get(FULL_REF) or ann.get(REF_NAME)  # ref.name: the full reference, as in layouts skopeo writes
        if not full:
            continue
        if wanted is not None and full not in wanted and str(parse_reference(full)) not in wanted:
            continue
        ref = parse_reference(full)
        repo = repository(ref)
        tag = ref.tag or desc["digest"]
        out[full] = pusher.manifest(repo, desc["digest"], desc["mediaType"], tag, f"image {full}")
    return out
