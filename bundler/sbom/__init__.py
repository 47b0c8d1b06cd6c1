"""SBOM documents of a bundle: SPDX 2.3 and CycloneDX 1.6 JSON, generated from bundle.json.

`bundler build` writes both into the bundle (sbom/, listed in SHA256SUMS like any file); `bundler sbom`
generates the same bytes again from any bundle, tarball or directory. model.py gathers the inventory, spdx.py
and cyclonedx.py render it, purl.py and licenses.py name packages and licenses, source.py reads bundles.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .model import Inventory

#: format name -> path of its document inside the bundle
PATHS = {"spdx": "sbom/bundle.spdx.json", "cyclonedx": "sbom/bundle.cdx.json"}


def render(inv: Inventory, fmt: str) -> bytes:
    """The document of one format as the bytes the bundle carries (sorted input, fixed layout: reproducible)."""
    doc: dict[str, Any]
    if fmt == "spdx":
        from .spdx import to_spdx

        doc = to_spdx(inv)
    elif fmt == "cyclonedx":
        from .cyclonedx import to_cyclonedx

        doc = to_cyclonedx(inv)
    else:
        raise ValueError(f"unknown SBOM format {fmt!r}")
    return (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def write_into(top: Path, created: int) -> list[str]:
    """Write every document into the unpacked bundle at top (after bundle.json and the installer are in place),
    dated `created` (SOURCE_DATE_EPOCH, as the tarball's entries); return their relative paths."""
    from .source import tree_inventory

    inv = tree_inventory(top, created)
    for fmt, rel in PATHS.items():
        dest = top / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(render(inv, fmt))
        dest.chmod(0o644)
    return sorted(PATHS.values())
