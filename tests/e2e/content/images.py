"""Images for the rig's registry: tiny but valid, so containerd inside a node pulls AND unpacks them.

Each image has one gzip tar layer holding a directory entry and one file (`etc/airgap-e2e-image`
naming the image; the etcd image also the etcdctl TEST DOUBLE as usr/local/bin/etcdctl, where the installer
finds etcdctl in the real image), an image config whose rootfs.diff_ids are the sha256 of the uncompressed tar,
and an OCI manifest (tests.images.helpers.single). `ctr images pull` checks every digest and unpacks
with the overlayfs snapshotter; the content tests check the same with skopeo + umoci on this machine.
"""

from __future__ import annotations

import gzip
import io
import tarfile

from tests.upstream.stack import Stack, k8s_images

from .repos import DOUBLES, K8S_VERSION


def e2e_image_layers(ref: str) -> list[tuple[bytes, bytes]]:
    """[(gzip layer, uncompressed tar)] of the image standing in for `ref`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        d = tarfile.TarInfo("etc")
        d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 0
        tar.addfile(d)
        data = f"airgap-bundler e2e stand-in for {ref} (no program: the kubelet double runs no containers)\n".encode()
        f = tarfile.TarInfo("etc/airgap-e2e-image")
        f.size, f.mode, f.mtime = len(data), 0o644, 0
        tar.addfile(f, io.BytesIO(data))
        if "/etcd:" in ref:  # where the installer finds etcdctl, as in registry.k8s.io/etcd
            for name in ("usr", "usr/local", "usr/local/bin"):
                d = tarfile.TarInfo(name)
                d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 0
                tar.addfile(d)
            tool = (DOUBLES / "etcdctl.py").read_bytes()
            f = tarfile.TarInfo("usr/local/bin/etcdctl")
            f.size, f.mode, f.mtime = len(tool), 0o755, 0
            tar.addfile(f, io.BytesIO(tool))
    raw = buf.getvalue()
    return [(gzip.compress(raw, mtime=0), raw)]


def push_e2e_images(stack: Stack, version: str = K8S_VERSION, cni: str = "calico",
                    extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Push kubeadm's images for `version`, the CNI's and `extra` into the stack's registry, multi-arch
    (amd64 + arm64 OCI indexes) as the real ones are: the builder must store the target's child."""
    out = {}
    for ref in dict.fromkeys([*k8s_images(version, cni), *extra]):
        out[ref] = stack.push(ref, layers=e2e_image_layers(ref), arm64_layers=e2e_image_layers(f"{ref} (arm64)"))
    return out
