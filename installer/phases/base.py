"""The Phase contract (after k0sctl's phase/ package: title, prepare, should-run, run, dry-run, after,
cleanup).

A phase names the hosts it applies to, the files and directories whose current state it compares
against, and decides *purely from facts* what would change (plan). Running a phase applies that plan; a
phase whose plan is empty on every host reports "no changes". A *check* phase (kind "check") changes
nothing: the runner calls its check(ctx) instead of run(), and in a dry run only when `check_in_plan`.

The runner calls, for one operation: prepare(ctx) of every phase (before facts are gathered), then per
phase run() on its hosts (or dry_run()) followed by after(ctx), and finally cleanup(ctx) of every phase,
also when the operation failed.
"""

RESUME_HINT = "Fix the cause and run ./install.py again: completed work is not redone"


class Phase(object):
    name = "phase"
    title = "phase"
    kind = "change"       # or "check": reads the hosts and raises or reports, changes nothing
    check_in_plan = True  # a check phase also runs in a dry run (False: it needs the changes made first)
    parallel = True       # run on its hosts at once (False: one host after the other, stop at the first failure)
    journaled = True      # the runner marks the phase running/done/failed in each host's journal
    resume_hint = RESUME_HINT

    @property
    def is_check(self):
        return self.kind == "check"

    def hosts(self, ctx):
        return list(ctx.nodes)

    def watched_files(self, ctx, host):
        return []

    def watched_dirs(self, ctx, host):
        return []

    # -- hooks ----------------------------------------------------------------------------------------
    def prepare(self, ctx):
        """Once per operation, after connecting and before facts are gathered (read what the plan needs)."""

    def after(self, ctx):
        """After the phase ran on all its hosts (not in a dry run)."""

    def cleanup(self, ctx):
        """At the end of the operation, also after a failure."""

    def check(self, ctx):
        """A check phase's work: raise InstallerError naming every problem; return [(host label or None,
        text)] to tell the operator."""
        return []

    # -- changes --------------------------------------------------------------------------------------
    def should_run(self, ctx, host, facts):
        return True

    def plan(self, ctx, host, facts):
        """List of installer.changes.Change this phase would make on `host`; [] when nothing to do."""
        return []

    def dry_run(self, ctx, host, facts, conn=None):
        """What run() would change. With a connection, a change's read-only `unless` check is asked too,
        so the plan shows exactly what a run would do."""
        if not self.should_run(ctx, host, facts):
            return []
        out = []
        for c in self.plan(ctx, host, facts):
            unless = getattr(c, "unless", None)
            if conn is not None and unless and conn.run(unless, check=False).ok:
                continue
            out.append(c.describe())
        return out

    def run(self, ctx, host, conn, facts, journal, report=None):
        """Apply the plan; returns the descriptions of the changes that actually changed something."""
        if not self.should_run(ctx, host, facts):
            return []
        done = []
        for change in self.plan(ctx, host, facts):
            if change.apply(conn, journal):
                done.append(change.describe())
                if report:
                    report(change.describe())
        return done


def firewall_change(facts, ports, mode, title):
    """Open `ports` (['6443/tcp', ...]) in firewalld when it is running and the operator kept it on."""
    from installer.changes import Command
    if mode != "on" or not facts.service("firewalld").get("active"):
        return []
    missing = [p for p in ports if p not in facts.fw_ports]
    if not missing:
        return []
    add = " ".join("--add-port=%s" % p for p in missing)
    remove = " ".join("--remove-port=%s" % p for p in missing)
    return [Command("firewall-cmd --permanent %s && firewall-cmd --reload" % add,
                    title="%s: open %s in firewalld" % (title, " ".join(missing)),
                    undo="firewall-cmd --permanent %s; firewall-cmd --reload" % remove)]
