"""Reading a yum repository's metadata: repomd.xml, then checksum-verified primary/filelists/modules."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from ..errors import FetchError
from ..fetch import smallget
from ..fetch.cache import ALGOS, Cache
from ..fetch.http import apply_mirrors
from ..fetch.retry import RetryPolicy, Transient
from ..manifest.model import Repo

if TYPE_CHECKING:  # requests is imported when first needed: a warm plan's repomd.xml checks go without it
    import requests

NS = {"repo": "http://linux.duke.edu/metadata/repo"}
MAX_REPOMD = 16 << 20  # real ones are a few KiB


@dataclass(frozen=True)
class MetadataFile:
    type: str
    href: str
    algo: str
    digest: str
    size: int | None


@dataclass
class RepoMetadata:
    """One repo's metadata as local, decompressed files (paths into the cache)."""

    repo: Repo
    url: str  # baseurl after mirrors
    revision: str
    files: dict[str, MetadataFile]
    local: dict[str, Path]  # type -> decompressed file, filled lazily by RepoReader.get
    digest: str = ""  # sha256 of repomd.xml as fetched: it pins every metadata file (the plan cache's key)

    def has(self, mdtype: str) -> bool:
        return mdtype in self.files


def _algo(name: str) -> str:
    name = name.lower()
    return "sha1" if name == "sha" else name


def parse_repomd(text: bytes, source: str) -> tuple[str, dict[str, MetadataFile]]:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise FetchError(f"{source}: repomd.xml is not valid XML ({e}). Is the baseurl a yum repository?") from None
    revision = root.findtext("repo:revision", default="", namespaces=NS)
    files: dict[str, MetadataFile] = {}
    for data in root.findall("repo:data", NS):
        mdtype = data.get("type", "")
        loc = data.find("repo:location", NS)
        csum = data.find("repo:checksum", NS)
        if loc is None or csum is None or not loc.get("href"):
            continue
        algo = _algo(csum.get("type", "sha256"))
        if algo not in ALGOS:
            continue
        size = data.findtext("repo:size", default=None, namespaces=NS)
        files[mdtype] = MetadataFile(mdtype, loc.get("href", ""), algo, (csum.text or "").strip().lower(),
                                     int(size) if size else None)
    if "primary" not in files:
        raise FetchError(f"{source}: repomd.xml lists no primary metadata; this is not a usable yum repository.")
    return revision, files


def _decompress(src: Path, dest: Path) -> None:
    """gz / xz / bz2 / zst by magic bytes (names lie on some mirrors); plain XML is copied."""
    with open(src, "rb") as f:
        magic = f.read(6)
    opener: Callable[..., Any]
    if magic[:2] == b"\x1f\x8b":
        opener = gzip.open
    elif magic[:6] == b"\xfd7zXZ\x00":
        opener = lzma.open
    elif magic[:3] == b"BZh":
        opener = bz2.open
    elif magic[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        def opener(p: Path, mode: str = "rb") -> Any:
            return zstandard.ZstdDecompressor().stream_reader(open(p, "rb"), closefd=True)
    else:
        def opener(p: Path, mode: str = "rb") -> Any:
            return open(p, "rb")
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}-{threading.get_ident()}")  # one per writer
    with opener(src, "rb") as fin, open(tmp, "wb") as fout:
        while True:
            chunk = fin.read(1 << 20)
            if not chunk:
                break
            fout.write(chunk)
    os.replace(tmp, dest)


class RepoReader:
    """Fetches repo metadata through the shared cache (metadata files are content-addressed too)."""

    def __init__(self, session: requests.Session | None, cache: Cache, mirrors: dict[str, str],
                 policy: RetryPolicy | None = None):
        self._session = session  # None: made on first use (a warm plan may need none)
        self._session_lock = threading.Lock()
        self.cache = cache
        self.mirrors = mirrors
        self.policy = policy or RetryPolicy.from_env()

    @property
    def session(self) -> requests.Session:
        with self._session_lock:
            if self._session is None:
                from ..fetch.http import make_session

                self._session = make_session()
            return self._session

    def repomd(self, repo: Repo) -> RepoMetadata:
        """repomd.xml under the shared retry policy; a body that does not parse is fetched once more."""
        url = apply_mirrors(repo.baseurl, self.mirrors)
        source = f"repo '{repo.name}' ({url})"
        md_url = urljoin(url, "repodata/repomd.xml")

        def once(_: int) -> tuple[str, dict[str, MetadataFile], str]:
            text = self._get_bytes(md_url, source)
            try:
                return (*parse_repomd(text, source), hashlib.sha256(text).hexdigest())
            except FetchError as e:
                if md_url.startswith("file://"):
                    raise
                raise Transient("is not a valid repomd.xml", corrupt=True, final=FetchError(
                    f"{e} {md_url} was fetched twice with the same result: if the baseurl is right, the mirror or "
                    "a proxy corrupts it; try another mirror.")) from None

        revision, files, digest = self.policy.call(once, what=source, url=md_url)
        return RepoMetadata(repo, url, revision, files, {}, digest)

    def _get_bytes(self, url: str, source: str) -> bytes:
        """One attempt; transport failures and 429/5xx raise Transient for the policy to retry."""
        if url.startswith("file://"):
            path = Path(url[len("file://"):])
            try:
                return path.read_bytes()
            except OSError as e:
                raise FetchError(f"{source}: cannot read {path} ({e.strerror}). Check spec.repos baseurl.") from None
        status, body = 0, b""
        if smallget.eligible(url):  # the standard library's client: no requests import on a warm plan
            try:
                status, body = smallget.get_small(url, self.policy, MAX_REPOMD)
            except smallget.Fallback:
                status = 0
        if not status:
            from ..fetch.download import read_body, send_once

            r = send_once(self.session, "GET", url, stream=True, policy=self.policy)
            status = r.status_code
            if status != 200:
                r.close()
            else:
                body = read_body(r, self.policy, url, MAX_REPOMD)
        if status == 200:
            return body
        if status in (404, 403, 401):
            raise FetchError(
                f"{source}: {url} answered HTTP {status}. Check the repo's baseurl in the manifest "
                "(it must be the directory that holds repodata/) and any mirror mapping for its host."
            )
        raise FetchError(f"{source}: {url} answered HTTP {status}. Check the baseurl or the mirror.")

    def unpacked(self, md: RepoMetadata, mdtype: str) -> Path:
        """Where the decompressed file lives (or would): the name the solver's .solv cache is keyed by."""
        mf = md.files[mdtype]
        return self.cache.root / "unpacked" / f"{mf.algo}-{mf.digest}.xml"

    def parseable(self, md: RepoMetadata, mdtype: str) -> Path:
        """A file libsolv can parse: the decompressed XML if there is one, else the verified download itself when
        it is gzip'd (libsolv reads that as is: no decompressed copy is written), else `get`."""
        out = self.unpacked(md, mdtype)
        if out.exists():
            return out
        from ..fetch.download import Item, fetch

        mf = md.files[mdtype]
        url = urljoin(md.url, mf.href)
        blob = fetch(self.session, Item(url, mf.algo, mf.digest, mf.size, f"repo '{md.repo.name}' {mdtype} metadata"),
                     self.cache, policy=self.policy)
        with open(blob, "rb") as f:
            if f.read(2) == b"\x1f\x8b":
                return blob
        return self.get(md, mdtype)

    def get(self, md: RepoMetadata, mdtype: str) -> Path:
        """Download (verified, cached) and decompress one metadata file; return the decompressed path."""
        if mdtype in md.local:
            return md.local[mdtype]
        from ..fetch.download import Item, fetch

        mf = md.files[mdtype]
        url = urljoin(md.url, mf.href)
        label = f"repo '{md.repo.name}' {mdtype} metadata"
        blob = fetch(self.session, Item(url, mf.algo, mf.digest, mf.size, label), self.cache, policy=self.policy)
        out = self.unpacked(md, mdtype)
        if not out.exists():
            if not self.cache.writable:  # a read-only cache: this build's own copy, outside it
                out = self.cache.scratch() / out.name
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                _decompress(blob, out)
            except (OSError, EOFError, lzma.LZMAError) as e:
                raise FetchError(f"{label}: {url} cannot be decompressed ({e}); the mirror may be corrupt.") from None
        md.local[mdtype] = out
        return out


def read_repomds(reader: RepoReader, repos: Sequence[Repo]) -> dict[str, RepoMetadata]:
    """Every repo's repomd.xml at once: one round trip of wall time for all repos, not one each (a warm plan is
    mostly these requests), each on its own connection. The first failure, in manifest order, is raised."""
    if len(repos) < 2:
        return {r.name: reader.repomd(r) for r in repos}
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(8, len(repos)), thread_name_prefix="repomd") as pool:
        return dict(zip((r.name for r in repos), pool.map(reader.repomd, repos)))
