"""reset: undo what the journal says the installer did, leaving the host as it was found."""

from installer.changes import PKG_TOOL
from installer.journal import STATE_DIR
from installer.phases.base import Phase
from installer.ssh import quote


class Reset(Phase):
    """The reset operation's one phase: undo the journal on every host (in parallel). It is not journaled:
    it removes the journal."""

    name = "reset"
    title = "reset"
    journaled = False
    resume_hint = "Fix the cause and run ./install.py reset again"

    def hosts(self, ctx):
        return ctx.all_hosts

    def run(self, ctx, host, conn, facts, journal, report=None):
        reset_host(conn, journal, report or (lambda text: None))
        return []


def reset_steps(journal, has_kubeadm=True):
    """The shell commands reset runs, in order (pure: computed from the journal)."""
    d = journal.data
    steps = []
    if has_kubeadm and (d["phases"].get("kubeadm_init") or d["phases"].get("join")):
        steps.append(("kubeadm reset", "kubeadm reset -f"))
    for cmd in reversed(d.get("undo", [])):
        if cmd == "kubeadm reset -f" and steps and steps[0][1] == cmd:
            continue
        steps.append(("undo", cmd))
    if d.get("packages"):
        steps.append(("remove packages", "%s -y --disablerepo='*' remove %s" % (PKG_TOOL, " ".join(
            quote(p) for p in d["packages"]))))
    return steps


def reset_host(conn, journal, say):
    d = journal.data
    if not d["phases"] and not d["files"] and not d["moved"]:
        say("nothing to reset (the installer has not changed this host)")
        return
    has_kubeadm = conn.run("command -v kubeadm", check=False).ok
    for title, cmd in reset_steps(journal, has_kubeadm):
        res = conn.run(cmd, check=False)
        say("%s: %s%s" % (title, cmd, "" if res.ok else " (exit %d, continuing)" % res.rc))
    restore_files(conn, journal, say)
    conn.run("systemctl daemon-reload; sysctl --system >/dev/null 2>&1; swapon -a", check=False)
    for service in d.get("restart", []):
        res = conn.run("systemctl try-restart %s" % quote(service), check=False)
        say("restart %s with its original configuration%s" % (service, "" if res.ok else " (failed, continuing)"))
    conn.run("rm -rf %s %s" % (quote(conn.path(STATE_DIR)), quote(conn.path("/etc/kubernetes/airgap"))), check=False)
    say("host restored")


def restore_files(conn, journal, say):
    """Put back every backed-up file, delete every file the installer created, return moved files."""
    d = journal.data
    for path, entry in sorted(d["files"].items(), reverse=True):
        if entry.get("backup"):
            conn.check("cp -a %s %s" % (quote(conn.path(entry["backup"])), quote(conn.path(path))),
                       "restoring %s" % path)
            say("restored %s" % path)
        elif entry.get("created"):
            conn.run("rm -f %s" % quote(conn.path(path)), check=False)
            say("removed %s" % path)
    for path, backup in sorted(d["moved"].items()):
        conn.check("mv -f %s %s" % (quote(conn.path(backup)), quote(conn.path(path))), "restoring %s" % path)
        say("restored %s" % path)
