"""Fetching `spec.files` and the defaults: verified against an operator sha256, the publisher's checksum
file, or the lock; archives' `extract` members are stored in the cache under their own sha256."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import FetchError, ManifestError
from ..fetch.cache import Cache
from ..fetch.download import Item, Stats, fetch, fetch_unpinned, read_body, send_once, store_stream
from ..fetch.http import apply_mirrors
from ..fetch.retry import RetryPolicy
from ..manifest.model import FileEntry, Manifest
from .defaults import default_files

if TYPE_CHECKING:  # sessions come from fetch.http.make_session, which loads requests
    import requests

_HEX64 = re.compile(r"\b([0-9a-fA-F]{64})\b")
DEST_DIR = {"binary": "files", "archive": "files", "manifest": "manifests", "rpm": "repo/Packages",
            "gpgkey": "repo/gpgkeys"}


@dataclass(frozen=True)
class FileSpec:
    """A file to fetch, with the sha256 it must have when known before downloading."""

    entry: FileEntry
    sha256: str | None  # of the downloaded object; None: unpinned default, pinned by this build's lock
    origin: str  # "manifest" | "default" | "lock"
    checksum_url: str | None = None


@dataclass(frozen=True)
class FileRecord:
    """A fetched file, ready for the bundle and bundle.json."""

    name: str
    kind: str
    url: str
    sha256: str  # of the file as it is in the bundle (the extracted member when extract is set)
    size: int
    path: str  # relative path inside the bundle
    cached: Path
    source_sha256: str  # of the downloaded object
    extract: str | None = None
    pinned_by: str = "manifest"

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "source": self.url, "sha256": self.sha256, "size": self.size,
                "path": self.path, "sourceSha256": self.source_sha256, "extract": self.extract,
                "pinnedBy": self.pinned_by}


def file_specs(m: Manifest, locked: dict[str, dict] | None = None) -> list[FileSpec]:
    """Defaults first, then the manifest's own entries (which replace a default of the same name)."""
    own = {f.filename for f in m.files}
    specs = [FileSpec(d.entry, None, "default", d.checksum_url) for d in default_files(m)
             if d.entry.filename not in own]
    specs += [FileSpec(f, f.sha256, "manifest") for f in m.files]
    # Repo signing keys ship in the bundle so the hosts keep gpgcheck on.
    specs += [FileSpec(FileEntry(url=url, kind="gpgkey", name=f"RPM-GPG-KEY-{r.name}" + (f"-{i}" if i else "")),
                       None, "default") for r in m.repos for i, url in enumerate(r.gpgkeys)]
    names: dict[str, FileSpec] = {}
    for s in specs:
        key = f"{DEST_DIR[s.entry.kind]}/{s.entry.filename}"
        if key in names:
            raise ManifestError(f"{m.file}: spec.files: two entries would both be written to {key}; give one a "
                                "different `name`.")
        names[key] = s
    if locked:
        out = []
        for s in specs:
            pin = locked.get(s.entry.filename)
            if pin is None:
                raise FetchError(f"{m.file}.lock has no entry for file '{s.entry.filename}'; the manifest changed "
                                 "since the lock was written: run `bundler lock` again.")
            if s.sha256 and pin["sourceSha256"] != s.sha256:
                raise FetchError(f"file '{s.entry.filename}': the manifest's sha256 differs from the lock's; run "
                                 "`bundler lock` again.")
            out.append(FileSpec(s.entry, pin["sourceSha256"], "lock"))
        specs = out
    return specs


def _publisher_sha256(session: requests.Session, url: str, filename: str, label: str) -> str:
    policy = RetryPolicy.from_env()

    def once(_: int) -> bytes:
        r = send_once(session, "GET", url, policy=policy)
        if r.status_code != 200:
            r.close()
            raise FetchError(f"{label}: the checksum file {url} answered HTTP {r.status_code}. Pin the file's sha256 "
                             "in spec.files instead, or check the mirror.")
        return read_body(r, policy, url, 1 << 20)

    text = policy.call(once, what=f"{label}: the checksum file", url=url).decode("utf-8", "replace")
    for line in text.splitlines():
        m = _HEX64.search(line)
        if m and (filename in line or len(text.split()) <= 2):
            return m.group(1).lower()
    m = _HEX64.search(text)
    if not m:
        raise FetchError(f"{label}: {url} holds no sha256; pin the file's sha256 in spec.files instead.")
    return m.group(1).lower()


def _extract(archive: Path, member: str, cache: Cache, label: str) -> tuple[Path, str]:
    """Copy one member of a tar/zip into the cache (hashing it); return (path, sha256).

    The (archive, member) -> digest answer is remembered in the cache, so a warm build extracts nothing.
    """
    memo = cache.root / "extracted" / hashlib.sha256(f"{archive.name}:{member}".encode()).hexdigest()
    if memo.is_file():
        digest = memo.read_text().strip()
        hit = cache.get("sha256", digest)
        if hit:
            return hit, digest

    def matches(name: str) -> bool:
        name = name.lstrip("./")
        return name == member.lstrip("./") or name.endswith("/" + member.lstrip("./"))

    import tarfile  # here: only `extract:` entries open archives (a plan without them does not load these)
    import zipfile

    stored: tuple[Path, str, int] | None = None
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if matches(n)]
            if names:
                with z.open(names[0]) as src:
                    stored = store_stream(cache, src, "extract")
    else:
        try:
            with tarfile.open(archive, "r:*") as t:
                for ti in t:
                    found = t.extractfile(ti) if ti.isfile() and matches(ti.name) else None
                    if found is not None:
                        stored = store_stream(cache, found, "extract")
                        break
        except tarfile.TarError as e:
            raise FetchError(f"{label}: the downloaded file is not a tar or zip archive ({e}); remove `extract` "
                             "or fix the URL.") from None
    if stored is None:
        raise FetchError(f"{label}: the archive has no member '{member}'. Check `extract` (a path inside the "
                         "archive).")
    path, digest, _ = stored
    if not cache.writable:  # a read-only cache keeps no memo: the next build extracts again
        return path, digest
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo_tmp = memo.with_name(f"{memo.name}.{os.getpid()}.{threading.get_ident()}")
    memo_tmp.write_text(digest)
    os.replace(memo_tmp, memo)  # concurrent builds: a reader never sees a half-written memo
    return path, digest


def fetch_files(m: Manifest, specs: list[FileSpec], session: requests.Session, cache: Cache,
                stats: Stats | None = None) -> list[FileRecord]:
    """Download (or take from the cache) every file; sequential: they are few, and images/RPMs run in parallel."""
    out = []
    for s in specs:
        e = s.entry
        label = f"file '{e.filename}'"
        url = apply_mirrors(e.url, m.mirrors)
        expected = s.sha256
        pinned_by = s.origin
        if expected is None and s.checksum_url:
            expected = _publisher_sha256(session, apply_mirrors(s.checksum_url, m.mirrors),
                                         e.url.rsplit("/", 1)[-1], label)
            pinned_by = "publisher"
        if expected:
            path = fetch(session, Item(url, "sha256", expected, None, label), cache, stats=stats)
        else:
            path, expected = fetch_unpinned(session, url, cache, label=label)
            pinned_by = "first-fetch"
        bundled, digest = path, expected
        if e.extract:
            bundled, digest = _extract(path, e.extract, cache, label)
        out.append(FileRecord(
            name=e.filename, kind=e.kind, url=e.url, sha256=digest, size=bundled.stat().st_size,
            path=f"{DEST_DIR[e.kind]}/{e.filename}", cached=bundled, source_sha256=expected, extract=e.extract,
            pinned_by=pinned_by,
        ))
    return out
