"""Find the OS install media (--iso FILE, --media DIR, or the optical drive) and tell its EL version.

ISO 9660 images and optical drives are identified by the volume label in the primary volume descriptor
(sector 16), read with plain file I/O, so nothing is mounted before preflight says the media matches.
"""

import os
import re

from installer.errors import InstallerError

PVD_OFFSET = 16 * 2048
OPTICAL_DEVICES = ("/dev/sr0", "/dev/cdrom")


def iso_label(path):
    """Volume identifier of an ISO 9660 image or device, or None if it is not one."""
    try:
        with open(path, "rb") as f:
            f.seek(PVD_OFFSET)
            pvd = f.read(2048)
    except (IOError, OSError):
        return None
    if len(pvd) < 72 or pvd[1:6] != b"CD001":
        return None
    return pvd[40:72].decode("ascii", "replace").strip()


def major_from_label(label):
    """'Rocky-9-4-x86_64-dvd' -> 9, 'CentOS 7 x86_64' -> 7, 'RHEL-8.10 BaseOS' -> 8."""
    m = re.search(r"(?:^|[^0-9])(10|[5-9])(?:[^0-9]|$)", label or "")
    return int(m.group(1)) if m else None


def treeinfo_version(directory):
    """Version from .treeinfo ([general]/[release] version=9.4), or .discinfo's second line."""
    p = os.path.join(directory, ".treeinfo")
    if os.path.exists(p):
        with open(p) as f:
            section = None
            for line in f:
                line = line.strip()
                if line.startswith("["):
                    section = line.strip("[]")
                elif "=" in line and section in ("general", "release"):
                    k, v = [x.strip() for x in line.split("=", 1)]
                    if k == "version":
                        return v
    p = os.path.join(directory, ".discinfo")
    if os.path.exists(p):
        with open(p) as f:
            lines = f.read().splitlines()
        if len(lines) > 1:
            m = re.search(r"(\d+(\.\d+)?)", lines[1])
            if m:
                return m.group(1)
    return None


def describe(iso=None, media_dir=None, devices=OPTICAL_DEVICES, root="/"):
    """{'kind', 'path', 'label', 'major'} for the media the operator gave (or the optical drive)."""
    if iso:
        if not os.path.isfile(iso):
            raise InstallerError("the ISO file %s does not exist" % iso, phase="preflight",
                                 hint="Pass --iso with the path of the OS DVD image")
        label = iso_label(iso)
        if label is None:
            raise InstallerError("%s is not an ISO 9660 image" % iso, phase="preflight",
                                 hint="Pass the OS install DVD image (the 'dvd' ISO, not 'boot' or 'minimal')")
        return {"kind": "iso", "path": os.path.abspath(iso), "label": label, "major": major_from_label(label)}
    if media_dir:
        if not os.path.isdir(media_dir):
            raise InstallerError("the media directory %s does not exist" % media_dir, phase="preflight",
                                 hint="Pass --media with the directory where the OS DVD is copied or mounted")
        has_repo = any(os.path.exists(os.path.join(media_dir, sub, "repodata", "repomd.xml"))
                       for sub in ("", "BaseOS"))
        if not has_repo:
            raise InstallerError("%s has no yum repository (no repodata/ or BaseOS/repodata/)" % media_dir,
                                 phase="preflight", hint="Point --media at the top of the OS DVD content")
        ver = treeinfo_version(media_dir)
        repos = [sub for sub in ("", "BaseOS", "AppStream")
                 if os.path.exists(os.path.join(media_dir, sub, "repodata", "repomd.xml"))]
        return {"kind": "dir", "path": os.path.abspath(media_dir), "label": ver, "repos": repos,
                "major": int(ver.split(".")[0]) if ver and ver.split(".")[0].isdigit() else None}
    for dev in devices:
        real = os.path.join(root, dev.lstrip("/")) if root not in ("/", None) else dev
        if os.path.exists(real):
            label = iso_label(real)
            if label:
                return {"kind": "optical", "path": dev, "label": label, "major": major_from_label(label)}
    raise InstallerError("no OS install media found: no --iso, no --media and no disc in %s"
                         % " or ".join(devices), phase="preflight",
                         hint="Insert the OS DVD, or pass --iso /path/to/dvd.iso or --media /path/to/dvd-content; "
                              "nothing was changed on any host")
