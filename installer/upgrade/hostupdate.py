"""Optional host updates inside a node's drained window (upgrade --with-runtime / --with-os-updates), and the
reboot they may need.

* --with-runtime: the container runtime packages the bundle ships (containerd.io, docker-ce, ...) to exactly the
  bundle's versions, past the pins (installer.pins.install_flags) and relocked, then the runtime restarted;
* --with-os-updates: `yum update` from the OS media and bundle repositories only (airgap-*), the pins' excludes
  intact (and the pinned names excluded on the command line too: the media may carry runc or containerd);
* then a reboot when the host needs one: `needs-restarting -r` where it exists (exit 1: needed), else a kernel
  newer than the running one. The reboot command is ctx.reboot_command (injectable: a container cannot reboot),
  and the host must come back with a new boot id and an active kubelet (bounded waits). The host running this
  installer is never rebooted by it: it is named at the end, to reboot by hand.
"""

import re
import time

from installer import pins
from installer.changes import PKG_TOOL, Callback, Command
from installer.errors import InstallerError
from installer.ssh import quote

REBOOT_COMMAND = "systemctl reboot"
REBOOT_WAIT = 900  # seconds for a rebooted host to answer again with its kubelet active
ONLY_OUR_REPOS = "--disablerepo='*' --enablerepo='airgap-*'"
RUNTIME_SERVICES = {"containerd.io": "containerd", "docker-ce": "docker"}
BOOT_ID = "cat /proc/sys/kernel/random/boot_id"
# what the reboot decision reads: the running kernel, the installed ones, needs-restarting's verdict if it exists
REBOOT_FACTS = ("echo \"running $(uname -r)\"; rpm -q kernel kernel-core --qf 'kernel %{VERSION}-%{RELEASE}.%{ARCH}\\n'"
                " 2>/dev/null | grep '^kernel '; if command -v needs-restarting >/dev/null 2>&1; then "
                "needs-restarting -r >/dev/null 2>&1; echo \"needs-restarting $?\"; fi; true")


def _newest(versions):
    """The highest of 'VERSION-RELEASE' strings (numeric fields compared as numbers)."""
    return max(versions, key=lambda v: [int(x) for x in re.findall(r"\d+", v)])


def runtime_versions(bundle):
    """[(name, VERSION[-RELEASE])] of the runtime packages the bundle ships (the highest when it ships several)."""
    found = {}
    for p in bundle.packages:
        if p.get("name") in pins.RUNTIME and p.get("version"):
            evr = "%s-%s" % (p["version"], p["release"]) if p.get("release") else str(p["version"])
            found.setdefault(p["name"], []).append(evr)
    return [(n, _newest(found[n])) for n in pins.RUNTIME if n in found]


def runtime_change(bundle):
    """None when the bundle ships no runtime package; else the install + relock + restart, skipped when every
    package is at the bundle's version already."""
    shipped = runtime_versions(bundle)
    if not shipped:
        return None
    specs = ["%s-%s" % nv for nv in shipped]
    services = [RUNTIME_SERVICES[n] for n, _ in shipped if n in RUNTIME_SERVICES]
    install = "%s -y %s %s install %s" % (PKG_TOOL, ONLY_OUR_REPOS, pins.install_flags(),
                                          " ".join(quote(s) for s in specs))
    restart = "systemctl restart %s" % " ".join(services) if services else "true"
    return Command(" && ".join([install] + pins.relock_commands(specs) + [restart]),
                   title="update the runtime to %s (restart %s)" % (", ".join(specs), ", ".join(services) or "-"),
                   unless="rpm -q %s >/dev/null 2>&1" % " ".join(quote(s) for s in specs), timeout=1800)


def os_update_change():
    """yum update from our repositories only, excludes intact; skipped when check-update finds nothing (exit 0)."""
    excludes = " ".join("-x %s" % quote(n) for n in pins.PINNED)
    return Command("%s -y %s update %s" % (PKG_TOOL, ONLY_OUR_REPOS, excludes),
                   title="update the OS packages from the media and bundle repositories (pins excluded)",
                   unless="%s -q %s check-update %s >/dev/null 2>&1" % (PKG_TOOL, ONLY_OUR_REPOS, excludes),
                   timeout=3600)


def needs_reboot(facts_output):
    """(reboot needed?, why) from REBOOT_FACTS' output. needs-restarting -r decides where it exists and answers
    0 or 1 (EL7's older yum-utils has no -r: another code); else the newest installed kernel against uname -r."""
    running, kernels, verdict = None, [], None
    for line in facts_output.splitlines():
        key, _, value = line.strip().partition(" ")
        if key == "running":
            running = value.strip()
        elif key == "kernel":
            kernels.append(value.strip())
        elif key == "needs-restarting":
            verdict = value.strip()
    if verdict in ("0", "1"):
        return verdict == "1", "needs-restarting -r says %s" % ("a reboot is needed" if verdict == "1" else "none")
    if not kernels or not running:
        return False, "no installed kernel package to compare with the running one"
    newest = _newest(kernels)
    key = [int(x) for x in re.findall(r"\d+", newest)]
    if key > [int(x) for x in re.findall(r"\d+", running)] and newest != running:
        return True, "kernel %s is installed, %s runs" % (newest, running)
    return False, "the running kernel %s is the newest" % running


def wait_rebooted(conn, label, old_boot, timeout=REBOOT_WAIT, sleep=time.sleep, clock=time.time):
    """Until the host answers with a boot id other than `old_boot` and an active kubelet (bounded)."""
    deadline = clock() + timeout
    seen = "no answer"
    while clock() < deadline:
        res = conn.run("%s && systemctl is-active kubelet" % BOOT_ID, check=False, timeout=30)
        words = res.stdout.split()
        if words and words[0] != old_boot:
            seen = "back (boot id %s), kubelet %s" % (words[0], words[1] if len(words) > 1 else "?")
            if res.ok and words[1:] == ["active"]:
                return
        sleep(5)
    raise InstallerError("%s did not come back from the reboot with an active kubelet within %d s (%s)"
                         % (label, timeout, seen),
                         hint="Check the host's console; once it is up run ./install.py upgrade again (it resumes)")


def reboot_if_needed(ctx, host, conn):
    """The Callback's work: False when no reboot is needed (or this installer runs there: noted for later)."""
    res = conn.run(REBOOT_FACTS, check=False, timeout=120)
    needed, why = needs_reboot(res.stdout)
    if not needed:
        return False
    if host.local or conn.is_local:
        ctx.upgrade_reboot_later.append("%s (%s)" % (host.label, why))
        return False
    old = conn.run(BOOT_ID, check=False, timeout=30).stdout.strip()
    conn.run(getattr(ctx, "reboot_command", None) or REBOOT_COMMAND, check=False, timeout=60)  # the link drops
    wait_rebooted(conn, host.label, old, getattr(ctx, "reboot_wait", REBOOT_WAIT),
                  sleep=getattr(ctx, "reboot_sleep", time.sleep))
    return True


def window_changes(ctx, host):
    """The optional updates for one node's drained window, in order (runtime, OS), as ctx asks."""
    out = []
    if getattr(ctx, "with_runtime", False):
        change = runtime_change(ctx.bundle)
        if change is not None:
            out.append(change)
    if getattr(ctx, "with_os_updates", False):
        out.append(os_update_change())
    return out


def reboot_change(ctx, host):
    return Callback("reboot %s if needed (needs-restarting -r, else a newer kernel), wait for it and its kubelet"
                    % host.label, lambda conn, j: reboot_if_needed(ctx, host, conn))
