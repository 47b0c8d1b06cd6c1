"""What the site holds, measured on the serving host (never taken from a record): the RPMs of the served
repositories, the blobs in the bundled registry's storage, the installed bundle's files/. `export-state` writes
it for `bundler build --delta-from`; installer/delta.py looks omitted items up in the same places.

Where each lives (the serving host runs install.py, so these are local paths under --root):
  RPMs   C.SERVE_ROOT/<repo dir>/**.rpm: the bundle repo copy (C.REPO_COPY) and any repo staged beside it;
         the OS media (C.MEDIA_DIR) is not ours and is never read
  blobs  reg_render.STORAGE/docker/registry/v2/blobs/sha256/<2 hex>/<hex>/data (installer.registry_layout)
  files  <the installed bundle's directory, from the cluster record>/files/
"""

import os
import socket
import time

from installer import constants as C
from installer.bundle_rules import sha256_file
from installer.render import registry as reg_render

STATE_VERSION = 1
STATE_KIND = "airgap-bundler site state"
_HEX = set("0123456789abcdef")


def local(root, path):
    return os.path.join(root, path.lstrip("/"))




def served_rpms(root="/"):
    """Paths of the RPMs in the served repositories (sorted), the OS media left out."""
    serve = local(root, C.SERVE_ROOT)
    media = os.path.basename(C.MEDIA_DIR)
    out = []
    if not os.path.isdir(serve):
        return out
    for name in sorted(os.listdir(serve)):
        top = os.path.join(serve, name)
        if name == media or os.path.islink(top) or not os.path.isdir(top):
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for f in sorted(filenames):
                p = os.path.join(dirpath, f)
                if f.endswith(".rpm") and os.path.isfile(p) and not os.path.islink(p):
                    out.append(p)
    return out


def blob_dir(root="/"):
    return os.path.join(local(root, reg_render.STORAGE), "docker", "registry", "v2", "blobs", "sha256")


def blob_path(root, hexd):
    return os.path.join(blob_dir(root), hexd[:2], hexd, "data")


def registry_blobs(root="/"):
    """{hex digest: path of its data} of every blob in the registry storage (by name; not read)."""
    d = blob_dir(root)
    out = {}
    if not os.path.isdir(d):
        return out
    for two in sorted(os.listdir(d)):
        sub = os.path.join(d, two)
        if len(two) != 2 or not os.path.isdir(sub):
            continue
        for hexd in sorted(os.listdir(sub)):
            p = os.path.join(sub, hexd, "data")
            if len(hexd) == 64 and hexd.startswith(two) and set(hexd) <= _HEX and os.path.isfile(p):
                out[hexd] = p
    return out


def bundle_files(bundle_dir):
    """{'files/NAME': path} of the installed bundle's files/ (regular files only)."""
    out = {}
    top = os.path.join(bundle_dir or "", "files")
    if not bundle_dir or not os.path.isdir(top):
        return out
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for f in sorted(filenames):
            p = os.path.join(dirpath, f)
            if os.path.isfile(p) and not os.path.islink(p):
                out[os.path.relpath(p, bundle_dir).replace(os.sep, "/")] = p
    return out


def recorded_bundles(record):
    """The bundle ids the cluster record names: the installed one (and earlier ones, if kept)."""
    out = []
    for b in [(record or {}).get("bundle")] + list((record or {}).get("previousBundles") or []):
        if isinstance(b, dict) and b.get("sha256"):
            out.append({"name": b.get("name"), "version": b.get("version"), "sha256": b.get("sha256")})
    return out


def measure(root, record, progress=None):
    """The state document (see docs/bundle-format.md, "Site state"). Blobs whose content does not match their
    name are left out and named in `problems` (a delta must not count on them)."""
    say = progress or (lambda msg: None)
    bundle = (record or {}).get("bundle") or {}
    rpms, blobs, files, problems = [], [], [], []
    paths = served_rpms(root)
    say("hashing %d RPM(s) of the served repositories" % len(paths))
    for p in paths:
        rpms.append({"path": "/" + os.path.relpath(p, root).replace(os.sep, "/") if root != "/" else p,
                     "size": os.path.getsize(p), "sha256": sha256_file(p)})
    found = registry_blobs(root)
    say("hashing %d blob(s) in the registry storage" % len(found))
    for hexd, p in sorted(found.items()):
        got = sha256_file(p)
        if got != hexd:
            problems.append("registry blob sha256:%s has content sha256:%s (damaged): left out" % (hexd, got))
            continue
        blobs.append({"digest": "sha256:" + hexd, "size": os.path.getsize(p)})
    for rel, p in sorted(bundle_files(bundle.get("dir")).items()):
        files.append({"path": rel, "size": os.path.getsize(p), "sha256": sha256_file(p)})
    return {
        "stateVersion": STATE_VERSION,
        "kind": STATE_KIND,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": socket.gethostname(),
        "bundles": recorded_bundles(record),
        "bundleDir": bundle.get("dir"),
        "target": {"os": bundle.get("os"), "arch": bundle.get("arch")} if bundle.get("os") else None,
        "kubernetes": (record or {}).get("kubernetes"),
        "rpms": rpms,
        "blobs": blobs,
        "files": files,
        "problems": problems,
    }
