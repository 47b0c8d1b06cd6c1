"""`bundler build --delta-from BASE`: ship only the content the site does not already hold.

BASE is what the site holds, measured: the JSON `install.py export-state` writes there (RPM, image blob and file
digests), or an older bundle (tarball or directory, verified first) whose content the site installed. The
comparison is by content digest only, never by name or tag: an image whose tag stayed but whose digest changed
is shipped, and of an image only the blobs the base lacks are. The staging tree is assembled whole (complete
repodata, index.json and bundle.json for the target); then the omitted files are taken out of it, listed in
bundle.json's `delta` section with their digests, and still listed in SHA256SUMS, so the bundle completed on
site (installer/delta.py) is exactly the whole bundle and verifies as one (rule R9 in installer/bundle_rules.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BundlerError
from .rules import bundle_rules

STATE_VERSION = 1  # installer/commands/export_state.py writes this stateVersion
DELTA_VERSION = 1
SUFFIX = "-delta"  # the tarball and its top directory: NAME-VERSION-OS-ARCH-delta.tar.gz
PACKAGES, BLOBS, FILES = "repo/Packages/", "images/blobs/sha256/", "files/"


@dataclass
class Base:
    """What the site holds, by content digest (sha256 hex)."""

    kind: str  # "state" (export-state JSON) or "bundle" (an older bundle)
    source: Path
    sha256: str  # of the state file, or of the base bundle's SHA256SUMS
    bundles: list[dict] = field(default_factory=list)  # name, version, sha256 of bundle.json
    rpms: set[str] = field(default_factory=set)
    blobs: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)
    target: dict | None = None
    summary: dict = field(default_factory=dict)  # what the last omit() left out: counts and bytes per kind


def _bad_base(path: Path, why: str) -> BundlerError:
    return BundlerError(f"--delta-from {path}: {why}. Give the JSON written by `./install.py export-state` on the "
                        "site's serving host, or the bundle the site installed (its tarball or unpacked directory).")


def load_base(path: Path) -> Base:
    """The base of a delta: an export-state JSON, or a bundle (verified first: a damaged base would make the
    delta omit content the site may not have)."""
    path = Path(path)
    if not path.exists():
        raise _bad_base(path, "no such file or directory")
    if not path.is_file() and not path.is_dir():  # a FIFO or a device: reading it could block forever
        raise _bad_base(path, "not a regular file or a directory")
    if path.is_file():
        with open(path, "rb") as f:
            head = f.read(1)
        if head in (b"{", b" ", b"\n", b"\t", b"\r"):
            return _from_state(path)
    return _from_bundle(path)


def _from_state(path: Path) -> Base:
    data = path.read_bytes()
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise _bad_base(path, f"not valid JSON ({e})") from None
    except RecursionError:
        raise _bad_base(path, "not valid JSON (nested too deeply)") from None
    if not isinstance(doc, dict) or doc.get("stateVersion") != STATE_VERSION:
        raise _bad_base(path, f"stateVersion is {doc.get('stateVersion') if isinstance(doc, dict) else None!r}, "
                              f"this bundler reads {STATE_VERSION}")
    bundles, target = doc.get("bundles") or [], doc.get("target")
    if not isinstance(bundles, list) or not all(isinstance(b, dict) for b in bundles):
        raise _bad_base(path, "bundles is not a list of {name, version, sha256}")
    if target is not None and not isinstance(target, dict):
        raise _bad_base(path, "target is not {os, arch}")
    try:
        base = Base("state", path, hashlib.sha256(data).hexdigest(), list(doc.get("bundles") or []),
                    {_hex(e["sha256"]) for e in doc.get("rpms") or []},
                    {_hex(e["digest"]) for e in doc.get("blobs") or []},
                    {_hex(e["sha256"]) for e in doc.get("files") or []}, doc.get("target"))
    except (KeyError, TypeError, ValueError) as e:
        raise _bad_base(path, f"malformed entry ({e!r}): every rpms[] and files[] entry has a sha256, every "
                              "blobs[] entry a digest") from None
    return base


def _hex(digest: str) -> str:
    hexd = str(digest).lower().split(":", 1)[-1]
    if len(hexd) != 64 or any(c not in "0123456789abcdef" for c in hexd):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return hexd


def _from_bundle(path: Path) -> Base:
    from .dirscan import find_top_dir
    from .report import Report
    from .tarscan import check_against_sums, scan_tar
    from .verify import verify

    if path.is_dir():
        report = verify(path)
        top = find_top_dir(path)
        sums_bytes, bom = _read(top / "SHA256SUMS"), _read(top / "bundle.json")
    else:  # one pass over the tarball: hashed, checked, and its SHA256SUMS and bundle.json kept
        report = Report(bundle=path)
        scan = scan_tar(path, report, None)
        if not scan.unreadable:
            check_against_sums(scan, report)
        sums_bytes, bom = scan.sums, scan.bundle_json
    if not report.ok or sums_bytes is None or bom is None:
        raise _bad_base(path, "the bundle fails its check (" + "; ".join(str(p) for p in report.problems[:5]) + ")")
    sums = bundle_rules().parse_sums(sums_bytes.decode("utf-8", "replace"))
    try:
        doc = json.loads(bom)
    except (ValueError, RecursionError) as e:
        raise _bad_base(path, f"its bundle.json is not valid JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("target") or {}, dict):
        raise _bad_base(path, "its bundle.json is not an object with a target {os, arch}")
    base = Base("bundle", path, hashlib.sha256(sums_bytes).hexdigest(), target=doc.get("target"))
    base.bundles = [{"name": doc.get("name"), "version": doc.get("version"),
                     "sha256": hashlib.sha256(bom).hexdigest()}]
    for rel, digest in sums.items():
        rel = bundle_rules().strip_dot(rel)
        for prefix, into in ((PACKAGES, base.rpms), (BLOBS, base.blobs), (FILES, base.files)):
            if rel.startswith(prefix):
                into.add(digest)
    return base


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _entry(rel: str, digest: str, source: tuple[str, object] | None) -> dict:
    entry = {"path": rel, "sha256": digest}
    kind, obj = source or ("", None)
    if kind == "package" and isinstance(obj, dict):
        entry["nevra"] = obj["nevra"]
    elif kind == "file":
        entry["name"] = getattr(obj, "name", rel.rsplit("/", 1)[-1])
    elif rel.startswith(BLOBS):
        entry["digest"] = f"sha256:{digest}"
    return entry


def omit(staging: Path, expected: dict[str, str], sources: dict[str, tuple[str, object]],
         base: Base, stem: str) -> dict[str, str]:
    """Take what the base holds out of the assembled staging tree and record it in bundle.json's `delta`
    section (and INSTALL.md). Returns {path: sha256} of the omitted files (SHA256SUMS still lists them)."""
    omitted: dict[str, str] = {}
    section: dict[str, list[dict]] = {"packages": [], "blobs": [], "files": []}
    for rel in sorted(expected):
        digest = expected[rel]
        if rel.startswith(PACKAGES) and digest in base.rpms:
            kind = "packages"
        elif rel.startswith(BLOBS) and digest in base.blobs:
            kind = "blobs"
        elif rel.startswith(FILES) and digest in base.files:
            kind = "files"
        else:
            continue
        section[kind].append(_entry(rel, digest, sources.get(rel)))
        omitted[rel] = digest
    sizes = {rel: (staging / rel).stat().st_size for rel in omitted}
    for rel in omitted:
        (staging / rel).unlink()
    bom_path = staging / "bundle.json"
    bom = json.loads(bom_path.read_text(encoding="utf-8"))
    bom["delta"] = {
        "deltaVersion": DELTA_VERSION,
        "base": {"kind": base.kind, "source": base.source.name, "sha256": base.sha256, "bundles": base.bundles},
        "omitted": section,
        "omittedBytes": sum(sizes.values()),
    }
    bom_path.write_text(json.dumps(bom, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    _install_md(staging / "INSTALL.md", stem, base)
    base.summary = {kind: {"count": len(entries), "bytes": sum(sizes[e["path"]] for e in entries)}
                    for kind, entries in section.items()}
    return omitted


def _install_md(path: Path, stem: str, base: Base) -> None:
    """The operator guide names the delta tarball and says where the rest comes from."""
    if not path.is_file():
        return
    names = ", ".join(f"{b.get('name')} {b.get('version')}" for b in base.bundles) or "its base"
    text = path.read_text(encoding="utf-8").replace(stem, stem + SUFFIX)
    text += (f"\nThis is a DELTA bundle: it leaves out the RPMs, image blobs and files the site already holds (from "
             f"{names}; listed in bundle.json `delta`). Unpack it on the serving host of that site and run "
             "`./install.py complete-delta` (install, plan, add-node and the other commands do it on their own): "
             "it checks that the site holds every omitted item, names what is missing (exit 2) before any change, "
             "and copies the rest in.\n")
    path.write_text(text, encoding="utf-8")


def check_target(base: Base, os_: str, arch: str) -> None:
    """A base for another OS or architecture shares nothing worth omitting: refuse it before any download."""
    t = base.target or {}
    if t and (t.get("os"), t.get("arch")) != (os_, arch):
        raise _bad_base(base.source, f"it describes a {t.get('os')}/{t.get('arch')} site, this manifest targets "
                                     f"{os_}/{arch}")
