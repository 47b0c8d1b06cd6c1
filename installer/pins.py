"""Version pins: `yum update` must never move Kubernetes or the container runtime on a cluster host.

Three layers, the first two always, the third where the host has it:
  * the bundle repo excludes the pinned packages (render/yumrepo.py `exclude=`), so a plain `yum update` or
    `yum install` cannot see other versions of them in our repo;
  * the installer itself installs them with install_flags(): `--disableexcludes=all` (our repo's exclude and any
    the site keeps in yum.conf) and `--disableplugin=versionlock` (a versionlock entry must not block the version
    the bundle ships; dnf only warns when the plugin is absent, yum ignores it);
  * versionlock entries (yum-plugin-versionlock on EL7, python3-dnf-plugin-versionlock on EL8+): detected from
    the plugin's configuration file, never required. Written after the install (lock_change), moved to the new
    versions after an upgrade (relock_commands), removed by reset (the change's undo).
`status` compares the installed versions with the cluster record / bundle (drift_lines).
"""

from installer.changes import PKG_TOOL, Command
from installer.ssh import quote

KUBE = ("kubelet", "kubeadm", "kubectl", "cri-tools", "kubernetes-cni")
RUNTIME = ("containerd.io", "docker-ce", "docker-ce-cli", "runc")
PINNED = KUBE + RUNTIME
KUBE_RELEASE = ("kubelet", "kubeadm", "kubectl")  # exactly the cluster's Kubernetes version
# the plugin's configuration, per package manager: its presence (enabled=1) is how the plugin is detected
VERSIONLOCK_CONFS = ("/etc/yum/pluginconf.d/versionlock.conf", "/etc/dnf/plugins/versionlock.conf")
INSTALL_FLAGS = "--disableexcludes=all --disableplugin=versionlock"


def pinned_names(bundle):
    """The names the bundle repo excludes: the Kubernetes packages, and the runtime packages it ships."""
    shipped = bundle.package_names()
    return [n for n in KUBE] + [n for n in RUNTIME if n in shipped]


def exclude_value(bundle):
    """The bundle repo's `exclude=` value."""
    return " ".join(pinned_names(bundle))


def is_pinned(name):
    return name in PINNED


def install_flags():
    """Flags for yum/dnf install of pinned packages (the bundle repo hides them from everything else)."""
    return INSTALL_FLAGS


def has_versionlock(facts):
    """Is a versionlock plugin installed and enabled? (its conf file, gathered as a watched file)"""
    for path in VERSIONLOCK_CONFS:
        text = facts.file(path)
        if text is None:
            continue
        enabled = "1"
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() == "enabled":
                enabled = value.strip()
        if enabled.lower() in ("1", "yes", "true", "on"):
            return True
    return False


def name_of(nevra):
    """'kubelet-1.30.4-150500.1.1.x86_64' (or 'kubelet-0:1.30.4-...') -> 'kubelet'."""
    return nevra.rsplit("-", 2)[0]


def _guarded(cmd):
    """Run cmd only where `versionlock` is a command of the package manager (the plugin is there)."""
    return "if %s -q versionlock list >/dev/null 2>&1; then %s; fi" % (PKG_TOOL, cmd)


def delete_command(names):
    """Remove the versionlock entries of these package names (yum exits 1 when none matched: not an error)."""
    return _guarded("%s -q versionlock delete %s >/dev/null 2>&1 || true"
                    % (PKG_TOOL, " ".join(quote(n) for n in sorted(set(names)))))


def lock_change(names):
    """The install's change: lock the installed versions of `names`; reset's undo deletes exactly those entries.
    Skipped (unless) when every name already has an entry."""
    names = sorted(set(names))
    probe = " && ".join("echo \"$L\" | grep -Eq %s" % quote("(^|:)%s-[0-9]" % n.replace(".", "\\.")) for n in names)
    unless = "L=$(%s -q versionlock list 2>/dev/null) && %s" % (PKG_TOOL, probe)
    return Command(_guarded("%s -q versionlock add %s" % (PKG_TOOL, " ".join(quote(n) for n in names))),
                   title="versionlock %s at the installed versions" % " ".join(names),
                   undo=delete_command(names), unless=unless)


def relock_commands(nevras, facts=None):
    """After an upgrade installed new versions (NEVRAs as the bundle names them): move their versionlock entries
    to exactly those versions. [] when the host's facts show no plugin; without facts, each command checks for
    the plugin itself and does nothing on a host without it."""
    nevras = sorted(set(nevras))
    if not nevras or (facts is not None and not has_versionlock(facts)):
        return []
    return [delete_command([name_of(n) for n in nevras]),
            _guarded("%s -q versionlock add %s" % (PKG_TOOL, " ".join(quote(n) for n in nevras)))]


def follow_installed(names):
    """Move the versionlock entries that exist for `names` to the versions installed now: installing a kube release
    can pull a newer dependency along (kubeadm 1.31 requires cri-tools >= 1.31), and its entry must not stay at the
    old version. An entry already at the installed VERSION-RELEASE is left alone (each dnf call costs seconds), a
    name without an entry gets none; nothing happens without the plugin. [] or one command."""
    steps = []
    for n in sorted(set(names)):
        entry = "echo \"$L\" | grep -E %s" % quote("(^|:)%s-[0-9]" % n.replace(".", "\\."))
        steps.append("if %s >/dev/null && ! %s | grep -Fq \"$(rpm -q --qf '%%{VERSION}-%%{RELEASE}' %s).\"; then "
                     "%s -q versionlock delete %s >/dev/null 2>&1 || true; %s -q versionlock add %s >/dev/null; fi"
                     % (entry, entry, quote(n), PKG_TOOL, quote(n), PKG_TOOL, quote(n)))
    if not steps:
        return []
    return [_guarded("L=$(%s -q versionlock list 2>/dev/null); %s" % (PKG_TOOL, "; ".join(steps)))]


def expected_versions(bundle, record=None):
    """{name: set of acceptable versions}: kubeadm/kubelet/kubectl exactly the cluster's Kubernetes version (the
    record's, after an upgrade, else the bundle's target), the other pinned packages any version the bundle ships."""
    k8s = str((record or {}).get("kubernetes") or bundle.k8s_version).lstrip("v")
    out = {}
    for p in bundle.packages:
        if p.get("name") in PINNED and p.get("name") not in KUBE_RELEASE:
            out.setdefault(p["name"], set()).add(str(p.get("version")))
    for n in KUBE_RELEASE:
        out[n] = set([k8s])
    return out


def drift_lines(bundle, facts, record=None):
    """One line per pinned package installed on the host: 'kubelet 1.30.4 installed, bundle says 1.30.4: ok', or
    the drift named. Returns (lines, drifted names)."""
    want = expected_versions(bundle, record)
    lines, drifted = [], []
    for name in PINNED:
        have = facts.rpm(name)
        if not have or name not in want:
            continue
        version = have.rsplit("-", 1)[0]
        says = " or ".join(sorted(want[name]))
        if version in want[name]:
            lines.append("%s %s installed, bundle says %s: ok" % (name, version, says))
        else:
            drifted.append(name)
            fix = "yum install %s %s-%s" % (install_flags(), name, sorted(want[name])[-1])
            lines.append("%s %s installed, bundle says %s: DRIFT (moved outside the installer; put it back with "
                         "`%s`)" % (name, version, says, fix))
    return lines, drifted
