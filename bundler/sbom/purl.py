"""Package URLs (github.com/package-url/purl-spec) for what a bundle ships: RPMs, OCI images, plain files.

The purl is what SBOM consumers (vulnerability scanners, license tools) match on, so each part is encoded as the
spec says: name and version percent-encoded, qualifiers sorted by key with percent-encoded values.
"""

from __future__ import annotations

from urllib.parse import quote


def _enc(text: str) -> str:
    """Percent-encode all but the unreserved characters and ':' (never encoded in the canonical form the
    reference implementation, packageurl-python, writes: `@sha256:...`); `+` and `/` are escaped."""
    return quote(text, safe=":")


def _qualifiers(pairs: dict[str, str | None]) -> str:
    items = sorted((k, v) for k, v in pairs.items() if v)
    return ("?" + "&".join(f"{k}={quote(str(v), safe='/:')}" for k, v in items)) if items else ""


def rpm_purl(vendor: str, name: str, version: str, release: str, arch: str, epoch: int | str | None,
             distro: str | None) -> str:
    """pkg:rpm/VENDOR/NAME@VERSION-RELEASE?arch=..&distro=..&epoch=.. (epoch only when not 0)."""
    epoch_q = str(epoch) if epoch not in (None, "", 0, "0") else None
    return (f"pkg:rpm/{_enc(vendor.lower())}/{_enc(name)}@{_enc(f'{version}-{release}')}"
            + _qualifiers({"arch": arch, "epoch": epoch_q, "distro": distro}))


def oci_purl(repository_url: str, digest: str, tag: str | None = None, arch: str | None = None,
             os: str | None = None, variant: str | None = None) -> str:
    """pkg:oci/NAME@sha256:...?arch=..&repository_url=HOST/PATH&tag=..: the name is the last path segment."""
    name = repository_url.rsplit("/", 1)[-1].lower()
    return (f"pkg:oci/{_enc(name)}@{_enc(digest)}"
            + _qualifiers({"arch": arch, "os": os, "variant": variant, "repository_url": repository_url,
                           "tag": tag}))


def generic_purl(name: str, sha256: str, download_url: str | None = None) -> str:
    """pkg:generic/NAME?checksum=sha256:..&download_url=..: a binary or archive known by its bytes and origin."""
    return f"pkg:generic/{_enc(name)}" + _qualifiers({"checksum": f"sha256:{sha256}", "download_url": download_url})
