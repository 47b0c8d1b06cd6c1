"""etcdctl (and etcdutl) for backup and restore, taken from the bundle's own etcd image.

Why from the image's layers rather than `crictl exec` into the etcd pod: a restore runs while etcd is stopped
(there is no pod to exec into), and the binaries must be exactly the etcd version the cluster runs; the
bundle carries that image already (kubeadm's image list), so nothing new is shipped. The layers are read on
the host running install.py (the bundle is there), the binaries put on each control plane under the
installer's state directory (reset removes them). etcd's images are static Go binaries on a distroless base:
they run on any EL host of the same architecture.
"""

import hashlib
import json
import os
import tarfile

from installer.errors import InstallerError
from installer.journal import STATE_DIR
from installer.ssh import quote

BIN_DIR = STATE_DIR + "/bin"
TOOLS = ("etcdctl", "etcdutl")
IN_IMAGE = ("usr/local/bin/", "usr/bin/", "bin/")
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x"}


def etcd_image(bundle):
    ref = bundle.find_image("etcd")
    if ref is None:
        raise InstallerError("the bundle has no etcd image, where etcdctl comes from",
                             hint="Use the bundle the cluster was installed from (kubeadm's images include etcd)")
    return ref


def _manifest(layout, ref, arch):
    desc = next((d for r, d in layout.images() if r == ref), None)
    if desc is None:
        raise InstallerError("the bundle's image store has no %s" % ref, hint="The bundle is damaged: unpack it again")
    man = json.loads(layout.read_blob(desc["digest"]).decode("utf-8"))
    if "manifests" in man:  # an index: the child for this architecture
        want = GOARCH.get(arch, arch)
        child = next((m for m in man["manifests"] if (m.get("platform") or {}).get("architecture") == want), None)
        if child is None:
            raise InstallerError("the bundle's %s has no linux/%s image" % (ref, want))
        man = json.loads(layout.read_blob(child["digest"]).decode("utf-8"))
    return man


def extract(bundle, dest_dir):
    """{tool: local path} of etcdctl/etcdutl found in the etcd image's layers (the topmost layer wins), written
    into dest_dir. Raises when there is no etcdctl."""
    from installer.registry_push import Layout
    ref = etcd_image(bundle)
    layout = Layout(bundle.path("images"))
    found = {}
    for layer in reversed(_manifest(layout, ref, bundle.arch).get("layers", [])):
        path = layout.blob_path(layer["digest"])
        try:
            with tarfile.open(path, "r:*") as tar:
                for m in tar:
                    name = m.name[2:] if m.name.startswith("./") else m.name
                    for prefix in IN_IMAGE:
                        tool = name[len(prefix):] if name.startswith(prefix) else None
                        if tool in TOOLS and tool not in found and m.isfile():
                            out = os.path.join(dest_dir, tool)
                            src = tar.extractfile(m)
                            with open(out, "wb") as f:
                                f.write(src.read())
                            os.chmod(out, 0o755)
                            found[tool] = out
        except (tarfile.TarError, IOError, OSError) as e:
            raise InstallerError("cannot read layer %s of %s: %s" % (layer["digest"], ref, e),
                                 hint="The bundle is damaged (unpack it again), or the layer is compressed with "
                                      "something Python's tarfile cannot read (zstd)") from None
        if len(found) == len(TOOLS):
            break
    if "etcdctl" not in found:
        raise InstallerError("no etcdctl in the bundle's etcd image %s (looked in %s)" % (ref, ", ".join(IN_IMAGE)),
                             hint="Backups and restores use the etcdctl of the etcd image the cluster runs")
    return found


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def install(conn, tools):
    """Put the extracted tools on a host (BIN_DIR), unless the same file is there. {tool: the path to run}."""
    out = {}
    for tool, local in sorted(tools.items()):
        dest = "%s/%s" % (BIN_DIR, tool)
        res = conn.run("sha256sum %s 2>/dev/null" % quote(conn.path(dest)), check=False)
        if not (res.ok and res.stdout.split()[:1] == [_sha256(local)]):
            conn.check("mkdir -p %s && chmod 700 %s" % (quote(conn.path(BIN_DIR)), quote(conn.path(BIN_DIR))),
                       "making %s" % BIN_DIR)
            conn.put(local, dest, 0o755)
        out[tool] = conn.path(dest)
    return out
