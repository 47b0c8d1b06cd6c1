"""The Phase contract (after k0sctl's phase/ package).

A phase names the hosts it applies to, the files and directories whose current state it compares
against, and decides *purely from facts* what would change (plan). Running a phase applies that plan; a
phase whose plan is empty on every host reports "no changes".
"""


class Phase(object):
    name = "phase"
    title = "phase"
    parallel = True

    def hosts(self, ctx):
        return list(ctx.nodes)

    def watched_files(self, ctx, host):
        return []

    def watched_dirs(self, ctx, host):
        return []

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
    missing = [p for p in ports if p not in facts.get("fw_ports", [])]
    if not missing:
        return []
    add = " ".join("--add-port=%s" % p for p in missing)
    remove = " ".join("--remove-port=%s" % p for p in missing)
    return [Command("firewall-cmd --permanent %s && firewall-cmd --reload" % add,
                    title="%s: open %s in firewalld" % (title, " ".join(missing)),
                    undo="firewall-cmd --permanent %s; firewall-cmd --reload" % remove)]
