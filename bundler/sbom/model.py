"""The bundle's inventory for SBOM documents: every RPM, image (and platform manifest), file and the installer,
taken from bundle.json plus the few bytes bundle.json does not hold (image indexes, the installer's files).

Both document writers (spdx.py, cyclonedx.py) render this one inventory, so they always list the same things
with the same digests. Everything is sorted and the only time is SOURCE_DATE_EPOCH's: the same bundle.json gives
the same inventory, hence the same document bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import BundlerError
from ..registry.reference import ReferenceError, parse_reference
from .purl import generic_purl, oci_purl, rpm_purl

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
INSTALLER = "airgap-bundler-installer"
INSTALLER_LICENSE = "Apache-2.0"  # the project's license (pyproject.toml)
_KIND_ORDER = {"rpm": 0, "image": 1, "file": 2, "installer": 3}


class SbomError(BundlerError):
    """The bundle lacks something its SBOM must describe (a damaged or foreign bundle)."""


class NoBundle(SbomError):
    """BUNDLE does not exist (exit 2, like `bundler verify`; not a bundle, or a damaged one, is 1)."""

    exit_code = 2


@dataclass(frozen=True)
class FileHash:
    """A small file hashed for the SBOM (the installer's files): SPDX requires SHA-1 for files."""

    sha1: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Component:
    """One thing the bundle ships. `ref` is unique in the document and stable across builds."""

    ref: str
    kind: str  # rpm | image | platform (a manifest of a multi-arch image) | file | installer | installer-file
    name: str
    sha256: str
    version: str | None = None
    size: int | None = None
    purl: str | None = None
    license: str | None = None
    source: str | None = None  # where the builder downloaded it
    path: str | None = None  # inside the bundle
    platform: str | None = None
    sha1: str | None = None
    file_kind: str | None = None  # bundle.json files[].kind: binary, archive, manifest, gpgkey, rpm
    properties: tuple[tuple[str, str], ...] = ()
    children: tuple[Component, ...] = ()


@dataclass(frozen=True)
class Inventory:
    name: str
    version: str
    target: str  # e.g. el9/x86_64
    builder: str  # builder version
    created: int  # SOURCE_DATE_EPOCH
    properties: tuple[tuple[str, str], ...]
    components: tuple[Component, ...]
    digest: str = field(default="")  # sha256 of all but `created`: the documents' namespace and serial number

    @property
    def uuid(self) -> str:
        """A UUID (version 5 layout) made from the content digest: same bundle, same document identity."""
        import uuid

        return str(uuid.UUID(bytes=bytes.fromhex(self.digest[:32]), version=5))


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _sha256(value: object, what: str) -> str:
    """A sha256 hex digest from bundle.json, or a clear error (an SBOM entry without its digest is useless)."""
    if not isinstance(value, str) or not _SHA256.match(value):
        raise SbomError(f"bundle.json: {what} has sha256 {value!r}, not 64 hex digits. The bundle is damaged or "
                        "was not written by `bundler build`; run `bundler verify` on it.")
    return value


def _hex(digest: str, what: str) -> str:
    algo, _, value = (digest or "").partition(":")
    if algo != "sha256":
        raise SbomError(f"bundle.json: {what} has digest {digest!r}, not sha256:<64 hex>. The bundle is damaged or "
                        "was not written by `bundler build`; run `bundler verify` on it.")
    return _sha256(value, what)


def _evr(p: Mapping[str, Any]) -> str:
    epoch = str(p.get("epoch") or "0")
    return f"{epoch + ':' if epoch != '0' else ''}{p['version']}-{p['release']}"


def _rpm(p: Mapping[str, Any], distro: str) -> Component:
    try:
        purl = rpm_purl(str(p.get("repo") or "unknown"), p["name"], p["version"], p["release"], p["arch"],
                        p.get("epoch"), distro)
        sha256 = _sha256(p["sha256"], f"package {p['name']}")
    except KeyError as e:
        raise SbomError(f"bundle.json: package {p.get('name', '?')} has no {e.args[0]!r}. The bundle is damaged "
                        "or was not written by `bundler build`.") from None
    return Component(ref=purl, kind="rpm", name=p["name"], version=_evr(p), sha256=sha256, size=p.get("size"),
                     purl=purl, license=p.get("license") or None, source=p.get("source"), path=p.get("path"),
                     platform=p["arch"], properties=(("repo", str(p.get("repo") or "")),))


def _platform(plat: Mapping[str, Any]) -> str:
    return "/".join(str(plat[k]) for k in ("os", "architecture", "variant") if plat.get(k))


def _image(i: Mapping[str, Any], blob: Callable[[str], bytes | None]) -> Component:
    ref_text, digest = str(i.get("ref") or ""), str(i.get("digest") or "")
    try:
        ref = parse_reference(ref_text)
        repo, tag = ref.name, ref.tag
    except ReferenceError:
        repo, tag = ref_text, None
    platforms = list(i.get("platforms") or [])
    single = platforms[0] if len(platforms) == 1 else None
    os_, arch, variant = ((single or "").split("/") + [None, None, None])[:3]
    media_type = str(i.get("mediaType") or "")
    props = [("mediaType", media_type), ("ref", ref_text), ("platforms", ",".join(platforms))]
    children: list[Component] = []
    data = blob(digest) if media_type in INDEX_TYPES else None
    if media_type in INDEX_TYPES and data is None:
        # not shipped (a delta bundle that relies on the site's copy): the index is still listed by its digest
        props.append(("platformManifests", "not in this bundle"))
    elif data is not None:
        try:
            descriptors = list(json.loads(data).get("manifests") or [])
        except (ValueError, AttributeError, TypeError):
            raise SbomError(f"image {ref_text}: its index {digest} in images/blobs/sha256 is not an image index. "
                            "The bundle is damaged; run `bundler verify` on it and copy it again.") from None
        for desc in descriptors:
            plat = desc.get("platform") or {}
            if plat.get("os") in (None, "unknown"):  # attestations and other non-runnable entries
                continue
            name = _platform(plat)
            cdigest = str(desc.get("digest") or "")
            children.append(Component(
                ref=f"image:{ref_text}@{cdigest}", kind="platform", name=repo, version=cdigest,
                sha256=_hex(cdigest, f"image {ref_text} platform {name}"), size=desc.get("size"),
                purl=oci_purl(repo, cdigest, tag, plat.get("architecture"), plat.get("os"), plat.get("variant")),
                platform=name, properties=(("mediaType", str(desc.get("mediaType") or "")),)))
        children.sort(key=lambda c: (c.platform or "", c.ref))
    return Component(
        ref=f"image:{ref_text}", kind="image", name=repo, version=tag or digest, sha256=_hex(digest, f"image "
        f"{ref_text}"), size=i.get("size"), purl=oci_purl(repo, digest, tag, arch, os_, variant), platform=single,
        properties=tuple(props), children=tuple(children))


def _file(f: Mapping[str, Any]) -> Component:
    props = [("sourceSha256", str(f["sourceSha256"]))] if f.get("extract") and f.get("sourceSha256") else []
    if f.get("extract"):
        props.append(("extract", str(f["extract"])))
    sha256 = _sha256(f.get("sha256"), f"file {f.get('name')}")
    return Component(ref=f"file:{f.get('path')}", kind="file", name=str(f.get("name")), sha256=sha256,
                     size=f.get("size"), purl=generic_purl(str(f.get("name")), sha256, f.get("source")),
                     source=f.get("source"), path=f.get("path"), file_kind=f.get("kind"), properties=tuple(props))


def _installer(version: str, files: Mapping[str, FileHash]) -> Component:
    """The installer as one component whose digest covers its files (sha256 of their `sha256sum` lines)."""
    if "install.py" not in files:
        raise SbomError("the bundle has no install.py: it is incomplete or not written by `bundler build`.")
    lines = "".join(f"{files[p].sha256}  {p}\n" for p in sorted(files))
    parts = tuple(Component(ref=f"installer:{p}", kind="installer-file", name=p, sha256=h.sha256, sha1=h.sha1,
                            size=h.size, path=p, license=INSTALLER_LICENSE) for p, h in sorted(files.items()))
    return Component(ref="installer", kind="installer", name=INSTALLER, version=version,
                     sha256=hashlib.sha256(lines.encode()).hexdigest(), size=sum(h.size for h in files.values()),
                     license=INSTALLER_LICENSE, path="install.py", children=parts)


def collect(bom: Mapping[str, Any], blob: Callable[[str], bytes | None], installer: Mapping[str, FileHash],
            created: int) -> Inventory:
    """The inventory of a bundle from its bundle.json, its image index blobs (by digest) and installer files."""
    target = bom.get("target") or {}
    distro = str(target.get("os") or "")
    builder = str((bom.get("builder") or {}).get("version") or "")
    comps = [_rpm(p, distro) for p in bom.get("packages") or []]
    comps += [_image(i, blob) for i in bom.get("images") or []]
    comps += [_file(f) for f in bom.get("files") or []]
    comps.append(_installer(builder, installer))
    comps.sort(key=lambda c: (_KIND_ORDER.get(c.kind, 9), c.name, c.version or "", c.ref))
    kube = (bom.get("kubernetes") or {}).get("version")
    props = tuple((k, str(v)) for k, v in (("kubernetes", kube), ("runtime", bom.get("runtime")),
                                           ("cni", bom.get("cni")), ("install", bom.get("install"))) if v)
    inv = Inventory(name=str(bom.get("name") or "bundle"), version=str(bom.get("version") or ""),
                    target=f"{distro}/{target.get('arch') or ''}", builder=builder, created=created,
                    properties=props, components=tuple(comps))
    content = {k: v for k, v in dataclasses.asdict(inv).items() if k != "created"}  # identity: content only
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    return dataclasses.replace(inv, digest=hashlib.sha256(canonical).hexdigest())


def walk(components: tuple[Component, ...]) -> list[Component]:
    """Every component, children after their parent."""
    out: list[Component] = []
    for c in components:
        out.append(c)
        out.extend(walk(c.children))
    return out
