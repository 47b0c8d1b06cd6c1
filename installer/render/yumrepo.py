"""yum .repo files for the bundle repo and the OS media (local file:// or the first host's HTTP)."""

REPO_DIR = "/etc/yum.repos.d"
BUNDLE_REPO_FILE = REPO_DIR + "/airgap-bundle.repo"
MEDIA_REPO_FILE = REPO_DIR + "/airgap-media.repo"


def repo_section(repo_id, name, baseurl, gpgkeys=(), module_hotfixes=False, exclude=""):
    lines = ["[%s]" % repo_id, "name=%s" % name, "baseurl=%s" % baseurl, "enabled=1"]
    if gpgkeys:
        lines += ["gpgcheck=1", "gpgkey=%s" % "\n       ".join(gpgkeys)]
    else:
        lines += ["gpgcheck=0", "# no GPG keys were shipped for this repository"]
    if module_hotfixes:
        # bundle packages must win over modular filtering of the media (EL8+)
        lines.append("module_hotfixes=1")
    if exclude:
        # version pins (installer/pins.py): `yum update` cannot move these; the installer installs them with
        # --disableexcludes
        lines.append("exclude=%s" % exclude)
    return "\n".join(lines) + "\n"


def bundle_repo(baseurl, gpgkeys=(), el_major=9, exclude=""):
    return ("# Written by airgap-installer.\n" +
            repo_section("airgap-bundle", "air-gapped bundle", baseurl, gpgkeys, module_hotfixes=el_major >= 8,
                         exclude=exclude))


def media_repo(sections):
    """sections: [(repo_id, name, baseurl, gpgkeys)]"""
    return "# Written by airgap-installer.\n" + "\n".join(
        repo_section(rid, name, url, keys) for rid, name, url, keys in sections)


def media_subdirs(el_major, found=None):
    """The repositories on an EL install DVD: one at the root on EL7, BaseOS + AppStream on EL8+.

    `found` (the subdirectories that hold repodata, when the media could be looked at) wins over the default.
    """
    if found:
        return [("airgap-media-" + (sub.lower() or "os"), "OS media " + (sub or "packages"), sub) for sub in found]
    if el_major <= 7:
        return [("airgap-media", "OS media", "")]
    return [("airgap-media-baseos", "OS media BaseOS", "BaseOS"),
            ("airgap-media-appstream", "OS media AppStream", "AppStream")]
