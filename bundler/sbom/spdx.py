"""The inventory as an SPDX 2.3 JSON document (spdx.github.io/spdx-spec/v2.3).

Shipped artifacts (RPMs, images, files) are packages with filesAnalyzed=false, their sha256 and purl; a
multi-arch image CONTAINS one package per platform manifest; the installer is the one package whose files are
analysed (SPDX wants SHA-1 for files, and the package verification code over them). RPM licenses that are not
SPDX expressions become LicenseRef-s carrying the original text.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from .licenses import spdx_expression
from .model import Component, Inventory, walk

NOASSERTION = "NOASSERTION"
_PURPOSE = {"rpm": "INSTALL", "image": "CONTAINER", "platform": "CONTAINER", "installer": "APPLICATION"}
_FILE_PURPOSE = {"binary": "APPLICATION", "archive": "ARCHIVE", "rpm": "INSTALL"}
_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")
# SPDX 2.3 (appendix, download location) accepts a URL only with a DNS name ending in a 2-5 letter label
_SPDX_HOST = re.compile(r"^[a-z0-9]+([.-][a-z0-9]+)*\.[a-z]{2,5}$", re.IGNORECASE)


def timestamp(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Ids:
    """SPDXRef-<kind>-<readable name>, made unique (SPDX ids allow only letters, digits, '.' and '-')."""

    def __init__(self) -> None:
        self.by_ref: dict[str, str] = {}
        self.used: set[str] = set()

    def __call__(self, c: Component) -> str:
        if c.ref not in self.by_ref:
            base = "SPDXRef-" + _UNSAFE.sub("-", f"{c.kind}-{c.name}-{c.version or ''}").strip("-")
            ident, n = base, 1
            while ident in self.used:
                n += 1
                ident = f"{base}-{n}"
            self.used.add(ident)
            self.by_ref[c.ref] = ident
        return self.by_ref[c.ref]


class _Licenses:
    """licenseDeclared values; free text becomes a LicenseRef listed in hasExtractedLicensingInfos."""

    def __init__(self) -> None:
        self.extracted: dict[str, str] = {}  # licenseId -> original text

    def __call__(self, text: str | None) -> str:
        if not text:
            return NOASSERTION
        expr = spdx_expression(text)
        if expr:
            return expr
        ident = "LicenseRef-" + (_UNSAFE.sub("-", text).strip("-")[:40] or "text") + "-" + \
            hashlib.sha256(text.encode()).hexdigest()[:8]
        self.extracted[ident] = text
        return ident


def _location(url: str | None) -> str | None:
    """`url` when SPDX accepts it as a downloadLocation; an IP address or a bare host name it does not."""
    if not url:
        return None
    parts = urlsplit(url)
    ok = parts.scheme in ("http", "https", "ftp", "sftp") and _SPDX_HOST.match(parts.hostname or "")
    return url if ok else None


def _comment(c: Component) -> str | None:
    parts = [f"platform {c.platform}"] if c.platform and c.kind in ("image", "platform") else []
    if c.source and not _location(c.source):
        parts.append(f"downloaded from {c.source}")
    parts += [f"{k} {v}" for k, v in c.properties if v]
    return "; ".join(parts) or None


def _package(c: Component, ident: str, license_of: _Licenses) -> dict[str, Any]:
    pkg: dict[str, Any] = {"SPDXID": ident, "name": c.name}
    if c.version:
        pkg["versionInfo"] = c.version
    if c.path and c.kind != "installer":
        pkg["packageFileName"] = c.path
    pkg["downloadLocation"] = _location(c.source) or NOASSERTION
    purpose = _FILE_PURPOSE.get(c.file_kind or "", "FILE") if c.kind == "file" else _PURPOSE.get(c.kind, "OTHER")
    pkg["primaryPackagePurpose"] = purpose
    if c.kind == "installer":
        sha1s = sorted(f.sha1 or "" for f in c.children)
        pkg["filesAnalyzed"] = True
        pkg["packageVerificationCode"] = {
            "packageVerificationCodeValue": hashlib.sha1("".join(sha1s).encode()).hexdigest()}
    else:
        pkg["filesAnalyzed"] = False
        pkg["checksums"] = [{"algorithm": "SHA256", "checksumValue": c.sha256}]
    pkg["licenseConcluded"] = NOASSERTION
    pkg["licenseDeclared"] = license_of(c.license)
    pkg["copyrightText"] = NOASSERTION
    if c.purl:
        pkg["externalRefs"] = [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                "referenceLocator": c.purl}]
    comment = _comment(c)
    if comment:
        pkg["comment"] = comment
    return pkg


def _file(c: Component, ident: str, license_of: _Licenses) -> dict[str, Any]:
    return {"SPDXID": ident, "fileName": f"./{c.path}",
            "checksums": [{"algorithm": "SHA1", "checksumValue": c.sha1},
                          {"algorithm": "SHA256", "checksumValue": c.sha256}],
            "licenseConcluded": NOASSERTION, "licenseInfoInFiles": [NOASSERTION],
            "copyrightText": NOASSERTION}


def to_spdx(inv: Inventory) -> dict[str, Any]:
    """The SPDX 2.3 document (a JSON-ready dict) of the inventory."""
    ids, license_of = _Ids(), _Licenses()
    doc_name = f"{inv.name}-{inv.version}-{inv.target.replace('/', '-')}"
    root = "SPDXRef-Bundle"
    packages: list[dict[str, Any]] = [{
        "SPDXID": root, "name": inv.name, "versionInfo": inv.version, "downloadLocation": NOASSERTION,
        "primaryPackagePurpose": "INSTALL", "filesAnalyzed": False, "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION, "copyrightText": NOASSERTION,
        "comment": "; ".join([f"target {inv.target}"] + [f"{k} {v}" for k, v in inv.properties]),
    }]
    files: list[dict[str, Any]] = []
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": root}]
    for c in inv.components:
        relationships.append({"spdxElementId": root, "relationshipType": "CONTAINS", "relatedSpdxElement": ids(c)})
    for c in walk(inv.components):
        if c.kind == "installer-file":
            files.append(_file(c, ids(c), license_of))
        else:
            packages.append(_package(c, ids(c), license_of))
        for child in c.children:
            relationships.append({"spdxElementId": ids(c), "relationshipType": "CONTAINS",
                                  "relatedSpdxElement": ids(child)})
    doc: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": doc_name,
        "documentNamespace": f"https://spdx.org/spdxdocs/airgap-bundler/{doc_name}-{inv.uuid}",
        "creationInfo": {"created": timestamp(inv.created), "creators": [f"Tool: airgap-bundler-{inv.builder}"]},
        "packages": packages,
        "files": files,
        "relationships": relationships,
    }
    if license_of.extracted:
        doc["hasExtractedLicensingInfos"] = [
            {"licenseId": k, "extractedText": v, "name": v} for k, v in sorted(license_of.extracted.items())]
    return doc
