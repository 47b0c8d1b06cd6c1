"""The image list of a bundle: kubeadm's control-plane images, the CNI manifest's images, and spec.images.

KUBEADM_IMAGES reproduces `kubeadm config images list --kubernetes-version vX.Y.Z` (kubeadm's
cmd/kubeadm/app/constants/constants.go: PauseVersion, SupportedEtcdVersion/DefaultEtcdVersion, CoreDNSVersion,
DefaultImageRepository). Rows are (first patch, registry, pause, etcd, coredns) and apply from that patch on.
Where a kubeadm of the same release is on PATH, it is asked instead (`check_kubeadm_table` reports differences).
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Iterable, Sequence

from ..errors import ManifestError

K8S = "registry.k8s.io"
GCR = "k8s.gcr.io"

# minor -> rows (first patch, registry, pause, etcd, coredns), from kubeadm's constants.go per release and the
# cherry-picks into release branches (etcd versions per minor are kubeadm's SupportedEtcdVersion map, which
# patch releases update). Evidence for the patch rows:
#   changelog-confirmed: registry.k8s.io in 1.23.15 (#113393); etcd 3.5.5 in 1.23.14 (#113100); etcd 3.5.10 in
#     1.28.6 (#121805); etcd 3.5.12 in 1.28.8 (#123069) and 1.29.3 (#123188); CoreDNS v1.11.3 in 1.30.5
#     (#126797); etcd 3.5.24 in 1.33.6 (#135018).
#   from merge dates (the next patch release after the cherry-pick merged): registry.k8s.io in 1.24.9
#     (#113395, the December 2022 patches); etcd 3.5.5 in 1.24.8 (#113099) and 1.25.4 (#113197); etcd 3.5.10
#     in 1.26.13 (#121803) and 1.27.10; etcd 3.5.12 in 1.27.11 (#123198); etcd 3.5.15 in 1.28.14 / 1.29.9 /
#     1.30.5 (#126399, #126397, #126395, merged 2024-09-04); CoreDNS v1.11.3 in 1.31.1 (#126796); etcd
#     3.5.24 in 1.32.10 (#135019).
# Not established: further etcd bumps of 2023 (3.5.6/3.5.7/3.5.9) in 1.23-1.27 patches. That is why a kubeadm
# binary, when one is at hand, overrides this table, and why install.py compares `kubeadm config images
# list` on the first control-plane host with the bundle before it runs kubeadm init.
KUBEADM_IMAGES: dict[tuple[int, int], tuple[tuple[int, str, str, str, str], ...]] = {
    (1, 23): ((0, GCR, "3.6", "3.5.1-0", "v1.8.6"), (14, GCR, "3.6", "3.5.5-0", "v1.8.6"),
              (15, K8S, "3.6", "3.5.5-0", "v1.8.6")),
    (1, 24): ((0, GCR, "3.7", "3.5.3-0", "v1.8.6"), (8, GCR, "3.7", "3.5.5-0", "v1.8.6"),
              (9, K8S, "3.7", "3.5.5-0", "v1.8.6")),
    (1, 25): ((0, K8S, "3.8", "3.5.4-0", "v1.9.3"), (4, K8S, "3.8", "3.5.5-0", "v1.9.3")),
    (1, 26): ((0, K8S, "3.9", "3.5.6-0", "v1.9.3"), (13, K8S, "3.9", "3.5.10-0", "v1.9.3")),
    (1, 27): ((0, K8S, "3.9", "3.5.7-0", "v1.10.1"), (10, K8S, "3.9", "3.5.10-0", "v1.10.1"),
              (11, K8S, "3.9", "3.5.12-0", "v1.10.1")),
    (1, 28): ((0, K8S, "3.9", "3.5.9-0", "v1.10.1"), (6, K8S, "3.9", "3.5.10-0", "v1.10.1"),
              (8, K8S, "3.9", "3.5.12-0", "v1.10.1"), (14, K8S, "3.9", "3.5.15-0", "v1.10.1")),
    (1, 29): ((0, K8S, "3.9", "3.5.10-0", "v1.11.1"), (3, K8S, "3.9", "3.5.12-0", "v1.11.1"),
              (9, K8S, "3.9", "3.5.15-0", "v1.11.1")),
    (1, 30): ((0, K8S, "3.9", "3.5.12-0", "v1.11.1"), (5, K8S, "3.9", "3.5.15-0", "v1.11.3")),
    (1, 31): ((0, K8S, "3.10", "3.5.15-0", "v1.11.1"), (1, K8S, "3.10", "3.5.15-0", "v1.11.3")),
    (1, 32): ((0, K8S, "3.10", "3.5.16-0", "v1.11.3"), (10, K8S, "3.10", "3.5.24-0", "v1.11.3")),
    (1, 33): ((0, K8S, "3.10", "3.5.21-0", "v1.12.0"), (6, K8S, "3.10", "3.5.24-0", "v1.12.0")),
    (1, 34): ((0, K8S, "3.10.1", "3.6.4-0", "v1.12.1"),),
}
log = logging.getLogger("bundler")

CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")
_IMAGE_LINE = re.compile(r"""^\s*-?\s*["']?image["']?\s*:\s*["']?([^\s"'#]+)""", re.MULTILINE)


def _parse_version(version: str) -> tuple[int, int, int]:
    m = _VERSION.match(version.strip())
    if not m:
        raise ManifestError(
            f"spec.kubernetes.version {version!r}: write a full release version such as 1.30.4 (kubeadm's image "
            "list depends on the patch release)."
        )
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def table_knows(version: str) -> bool:
    """Does the built-in table cover this release's minor?"""
    major, minor, _ = _parse_version(version)
    return (major, minor) in KUBEADM_IMAGES


def kubeadm_images(version: str) -> list[str]:
    """What `kubeadm config images list --kubernetes-version v<version>` prints, from the table."""
    major, minor, patch = _parse_version(version)
    rows = KUBEADM_IMAGES.get((major, minor))
    if rows is None:
        known = ", ".join(f"{a}.{b}" for a, b in sorted(KUBEADM_IMAGES))
        raise ManifestError(
            f"spec.kubernetes.version {version}: the built-in table knows the kubeadm images of {known} only, and "
            "no kubeadm of that release could be asked. Build on a Linux machine of the target's architecture (the "
            f"build then asks the kubeadm the bundle ships), or put kubeadm v{major}.{minor}.{patch} on this "
            "machine's PATH."
        )
    _, registry, pause, etcd, coredns = [r for r in rows if r[0] <= patch][-1]
    tag = f"v{major}.{minor}.{patch}"
    return [f"{registry}/{name}:{tag}" for name in CONTROL_PLANE] + [
        f"{registry}/pause:{pause}",
        f"{registry}/etcd:{etcd}",
        f"{registry}/coredns/coredns:{coredns}",
    ]


def kubeadm_images_from_binary(version: str, kubeadm: str = "kubeadm", timeout: float = 60) -> list[str] | None:
    """Ask a kubeadm on PATH (no network needed with an explicit version); None when there is none, or when it
    is another release: kubeadm prints its own CoreDNS tag and etcd map whatever version it is asked about, so
    only the release the hosts will run gives their list."""
    import subprocess  # here: a plan that asks no kubeadm does not load it

    path = shutil.which(kubeadm)
    if path is None:
        return None
    want = "v" + ".".join(str(n) for n in _parse_version(version))
    try:
        own = subprocess.run([path, "version", "-o", "short"], capture_output=True, text=True, timeout=timeout)
        if own.returncode != 0 or own.stdout.strip() != want:
            log.info("kubeadm on PATH (%s) is %s, not %s: using the built-in image table", path,
                     own.stdout.strip() or "of unknown version", want)
            return None
        out = subprocess.run([path, "config", "images", "list", "--kubernetes-version", want],
                             capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("kubeadm on PATH (%s) could not be asked (%s): using the built-in image table", path, e)
        return None
    if out.returncode != 0:
        return None
    return [line.strip() for line in out.stdout.splitlines() if line.strip() and "/" in line]


def check_kubeadm_table(version: str, kubeadm: str = "kubeadm") -> list[str]:
    """Differences between the table and a local kubeadm ('table: X' / 'kubeadm: Y'); [] if equal or no kubeadm."""
    actual = kubeadm_images_from_binary(version, kubeadm)
    if actual is None:
        return []
    table = kubeadm_images(version)
    return [f"table: {i}" for i in table if i not in actual] + [f"kubeadm: {i}" for i in actual if i not in table]


def _walk_images(node: object, out: list[str]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "image" and isinstance(v, str):
                out.append(v)
            else:
                _walk_images(v, out)
    elif isinstance(node, list):
        for v in node:
            _walk_images(v, out)


def cni_images(manifest_yaml: str) -> list[str]:
    """Every `image:` value in a CNI manifest (multi-document YAML), in order, without duplicates.

    Parsed as YAML so block scalars and comments cannot fool it; text that is not valid YAML (templated
    manifests) falls back to a line scan.
    """
    import yaml  # here: a plan without a CNI manifest does not import PyYAML

    found: list[str] = []
    try:
        for doc in yaml.safe_load_all(manifest_yaml):
            _walk_images(doc, found)
    except yaml.YAMLError:
        found = _IMAGE_LINE.findall(manifest_yaml)
    return list(dict.fromkeys(i for i in found if i))


SHIPPED, ON_PATH, TABLE = "the shipped kubeadm", "kubeadm on PATH", "the built-in table"


def kubeadm_image_list(version: str, shipped: list[str] | None = None) -> tuple[list[str], str]:
    """(kubeadm's images for version, where the list came from): the kubeadm the bundle ships (asked by
    images/shipped_kubeadm.py), else a kubeadm of the same release on PATH, else the table."""
    actual, source = shipped, SHIPPED
    if not actual:
        actual, source = kubeadm_images_from_binary(version), ON_PATH
    if not actual:
        return kubeadm_images(version), TABLE
    try:
        table = kubeadm_images(version)
    except ManifestError:
        table = []
    if table and set(table) != set(actual):
        log.warning("%s lists other images for %s than the built-in table (%s); using kubeadm's list",
                    source, version, ", ".join(sorted(set(table) ^ set(actual))))
    return actual, source


def image_list(
    kubernetes_version: str | None,
    cni_manifests: Iterable[str] = (),
    extra: Sequence[str] = (),
    shipped: list[str] | None = None,
) -> tuple[list[str], str | None]:
    """(the bundle's image references, where kubeadm's part came from): kubeadm's (if a version is set), the CNI
    manifests', then spec.images."""
    out: list[str] = []
    source = None
    if kubernetes_version:
        out, source = kubeadm_image_list(kubernetes_version, shipped)
    for text in cni_manifests:
        out = out + cni_images(text)
    return list(dict.fromkeys([*out, *extra])), source
