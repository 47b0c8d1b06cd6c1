"""The upgrade path: from the cluster's version through the bundle's hops to its target (HOPS_CONTRACT).

bundle.json kubernetes: {"version": target, "upgradeFrom": "1.30", "hops": [{"version": "1.31.5", ...}]}; an
old bundle.json without hops/upgradeFrom has no hops and upgrades from the target's minor - 1.
"""

import re

from installer.errors import InstallerError

NOTHING_CHANGED = "Nothing was changed"


def parse(version):
    """'v1.30.4' / '1.30.4-150500.1.1' -> (1, 30, 4); None when it is not a version."""
    m = re.match(r"^v?(\d{1,9})\.(\d{1,9})\.(\d{1,9})", str(version or "").strip())
    return tuple(int(x) for x in m.groups()) if m else None


def text(v):
    return "%d.%d.%d" % tuple(v)


def minor(v):
    return "%d.%d" % tuple(v[:2])


def hops(bundle_data):
    """[(version tuple, hop dict)] of the bundle's hops, checked against the contract (ascending, one minor apart,
    the last one minor below the target)."""
    kube = bundle_data.get("kubernetes") or {}
    target = parse(kube.get("version"))
    if target is None:
        raise InstallerError("bundle.json: kubernetes.version %r is not a version" % kube.get("version"),
                             hint="The bundle is damaged or was not written by bundler build")
    out = []
    listed = kube.get("hops") or []
    if not isinstance(listed, list) or not all(isinstance(h, dict) for h in listed):
        raise InstallerError("bundle.json: kubernetes.hops is not a list of {version, images}",
                             hint="The bundle is damaged or was not written by bundler build")
    for h in listed:
        v = parse(h.get("version"))
        if v is None:
            raise InstallerError("bundle.json: kubernetes.hops has an entry without a version: %r" % (h,),
                                 hint="The bundle is damaged or was not written by bundler build")
        out.append((v, h))
    prev = None
    for v, _ in out + [(target, None)]:
        if prev is not None and (v[0] != prev[0] or v[1] != prev[1] + 1):
            raise InstallerError("bundle.json: kubernetes.hops %s then %s are not one minor apart"
                                 % (text(prev), text(v)),
                                 hint="Rebuild the bundle with upgradeThrough: one version per minor, ascending")
        prev = v
    return out


def chain(bundle_data):
    """The versions the bundle can upgrade to, in order: its hops, then its target."""
    kube = bundle_data.get("kubernetes") or {}
    return [v for v, _ in hops(bundle_data)] + [parse(kube.get("version"))]


def steps(current, bundle_data):
    """The versions to upgrade through from `current` (a tuple), in order ([] when the cluster is at the target).
    Refuses a downgrade and a skipped minor, naming the missing minor and the fix."""
    full = chain(bundle_data)
    target = full[-1]
    if current > target:
        raise InstallerError("this bundle carries Kubernetes %s, older than the cluster's %s: a downgrade is not "
                             "supported" % (text(target), text(current)),
                             hint="Use a bundle with Kubernetes %s or newer. %s" % (text(current), NOTHING_CHANGED))
    todo = [v for v in full if v > current]
    if todo and todo[0][:2] > (current[0], current[1] + 1):
        missing = "%d.%d" % (current[0], current[1] + 1)
        raise InstallerError("the cluster runs %s and this bundle goes to %s, but %s: this bundle has no %s hop (a "
                             "cluster upgrades one minor at a time)" % (text(current), text(target), missing, missing),
                             hint="Carry a bundle built with upgradeThrough: [%s.x] (or upgrade with a %s bundle "
                                  "first). %s" % (missing, missing, NOTHING_CHANGED))
    if todo and todo[0][:2] < current[:2]:
        raise InstallerError("cannot go from %s to %s" % (text(current), text(todo[0])), hint=NOTHING_CHANGED)
    return todo


def hop_images(bundle_data, version):
    """The images a step needs (the hop's list; for the target, the bundle's kube images of that version)."""
    for v, h in hops(bundle_data):
        if v == version:
            images = h.get("images") or []
            return [i for i in images if isinstance(i, str)] if isinstance(images, list) else []
    tag = "v" + text(version)
    images = bundle_data.get("images")
    refs = [i.get("ref") for i in (images if isinstance(images, list) else []) if isinstance(i, dict)]
    return [r for r in refs if isinstance(r, str) and r.endswith(":" + tag) and "/kube-" in r]


def package_specs(names, version):
    """yum specs NAME-VERSION for kubeadm/kubelet/kubectl at exactly `version`."""
    return ["%s-%s" % (n, text(version)) for n in names]
