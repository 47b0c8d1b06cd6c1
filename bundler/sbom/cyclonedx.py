"""The inventory as a CycloneDX 1.6 JSON BOM (cyclonedx.org/docs/1.6/json).

RPMs are libraries, images containers (a multi-arch image nests one container per platform manifest), files
and the installer's own files are files, the installer an application; every component has its SHA-256, its
purl where one exists, and its download URL as a distribution reference.
"""

from __future__ import annotations

from typing import Any

from .licenses import spdx_expression
from .model import Component, Inventory
from .spdx import timestamp

SPEC_VERSION = "1.6"
_TYPE = {"rpm": "library", "image": "container", "platform": "container", "file": "file", "installer": "application",
         "installer-file": "file"}
_PREFIX = "airgap-bundler:"


def _licenses(text: str | None) -> list[dict[str, Any]] | None:
    if not text:
        return None
    expr = spdx_expression(text)
    if expr and " " not in expr:
        return [{"license": {"id": expr}}]
    return [{"expression": expr}] if expr else [{"license": {"name": text}}]


def _component(c: Component) -> dict[str, Any]:
    out: dict[str, Any] = {"type": _TYPE.get(c.kind, "file"), "bom-ref": c.ref, "name": c.name}
    if c.version:
        out["version"] = c.version
    hashes = [{"alg": "SHA-256", "content": c.sha256}]
    if c.sha1:
        hashes.insert(0, {"alg": "SHA-1", "content": c.sha1})
    out["hashes"] = hashes
    licenses = _licenses(c.license)
    if licenses:
        out["licenses"] = licenses
    if c.purl:
        out["purl"] = c.purl
    if c.source:
        out["externalReferences"] = [{"type": "distribution", "url": c.source}]
    props = [("path", c.path), ("platform", c.platform), ("size", None if c.size is None else str(c.size)),
             ("kind", c.file_kind), *c.properties]
    out["properties"] = [{"name": _PREFIX + k, "value": v} for k, v in props if v]
    if c.children:
        out["components"] = [_component(child) for child in c.children]
    return out


def to_cyclonedx(inv: Inventory) -> dict[str, Any]:
    """The CycloneDX BOM (a JSON-ready dict) of the inventory."""
    root = f"bundle:{inv.name}@{inv.version}"
    return {
        "$schema": f"http://cyclonedx.org/schema/bom-{SPEC_VERSION}.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{inv.uuid}",
        "version": 1,
        "metadata": {
            "timestamp": timestamp(inv.created),
            "tools": {"components": [{"type": "application", "name": "airgap-bundler", "version": inv.builder}]},
            "component": {"type": "application", "bom-ref": root, "name": inv.name, "version": inv.version,
                          "properties": [{"name": _PREFIX + k, "value": v}
                                         for k, v in (("target", inv.target), *inv.properties)]},
        },
        "components": [_component(c) for c in inv.components],
        "dependencies": [{"ref": root, "dependsOn": [c.ref for c in inv.components]}],
    }
