"""add-node: join new hosts to the installed cluster from the installed bundle, touching the existing hosts
only where the new ones must be known there (the /etc/hosts block; the serving host's time-server clients).

The existing cluster comes from the cluster record; the bundle must be the installed one (bundle.json sha256).
Preflight runs on the new hosts only; the node phases (repos, host preparation, runtime, packages, join, helm)
run on the new hosts only; on failure the new hosts are reset (and nothing else), so a re-run starts clean.
"""

from installer import operations
from installer import record as rec
from installer.changes import Service, WriteFile
from installer.constants import REGISTRY_PORT, REPO_PORT
from installer.errors import InstallerError
from installer.inventory import Inventory
from installer.journal import Journal
from installer.phases.base import Phase
from installer.phases.helm import Helm
from installer.phases.host_prep import CHRONY_CONF, HostPrep
from installer.phases.join import JoinControlPlanes, JoinWorkers
from installer.phases.media_repo import MediaRepo
from installer.phases.packages import RequestedPackages
from installer.phases.preflight import Preflight
from installer.phases.registry import read_ca
from installer.phases.runtime import Runtime
from installer.phases.verify import Verify
from installer.record import ClusterRecord


def check_bundle_matches(data, path, bundle_dir):
    """Refuse a bundle other than the installed one (version skew between nodes)."""
    have = rec.bundle_sha256(bundle_dir)
    want = (data.get("bundle") or {}).get("sha256")
    if want is None:
        raise InstallerError("the cluster record %s does not say which bundle.json was installed (it was written "
                             "by an older installer)" % path,
                             hint="Run ./install.py (install) once with this bundle on the existing hosts: it "
                                  "finds nothing to change and records the bundle; then add the node")
    if have != want:
        b = data.get("bundle") or {}
        raise InstallerError(
            "this bundle (%s, bundle.json sha256 %s) is not the one installed on the cluster (%s %s, bundle.json "
            "sha256 %s, recorded in %s)" % (bundle_dir, (have or "missing")[:16], b.get("name"), b.get("version"),
                                            want[:16], path),
            hint="Run add-node from the installed bundle (%s); nodes of one cluster come from one bundle"
                 % b.get("dir", "its directory"))


def merge(data, path, new_inventory):
    """(inventory of the recorded cluster plus the new hosts, [labels of the new hosts]); refuses a host that is
    already in the cluster (by address or node name)."""
    recorded = rec.inventory_from(data, path)
    names = rec.recorded_names(data)
    have_addr = dict((h.address, h.label) for h in recorded.hosts)
    have_name = dict((names.get(h.address) or h.name or h.alias, h.address) for h in recorded.hosts)
    problems = []
    for h in new_inventory.hosts:
        if h.address in have_addr:
            problems.append("%s is already in the cluster (as %s)" % (h.address, have_addr[h.address]))
        elif h.name and h.name in have_name:
            problems.append("the node name %s is already used by %s" % (h.name, have_name[h.name]))
    if problems:
        raise InstallerError("add-node: %s" % "; ".join(problems),
                             hint="Give only hosts that are not in the cluster record %s (./install.py status "
                                  "lists the cluster)" % path)
    hosts = list(recorded.hosts) + list(new_inventory.hosts)
    return Inventory(hosts, source="cluster record %s + %s" % (path, new_inventory.source)), \
        [h.label for h in new_inventory.hosts]


class OnNewHosts(Phase):
    """An install phase restricted to the hosts being added (same name, so the journal and reset agree)."""

    def __init__(self, phase):
        self.inner = phase
        self.name = phase.name
        self.title = phase.title
        self.kind = phase.kind
        self.parallel = phase.parallel
        self.journaled = phase.journaled
        self.resume_hint = phase.resume_hint

    def hosts(self, ctx):
        return [h for h in self.inner.hosts(ctx) if ctx.is_new(h)]

    def __getattr__(self, attr):  # everything else is the inner phase's
        return getattr(self.inner, attr)

    def watched_files(self, ctx, host):
        return self.inner.watched_files(ctx, host)

    def watched_dirs(self, ctx, host):
        return self.inner.watched_dirs(ctx, host)

    def prepare(self, ctx):
        self.inner.prepare(ctx)

    def after(self, ctx):
        self.inner.after(ctx)

    def cleanup(self, ctx):
        self.inner.cleanup(ctx)

    def should_run(self, ctx, host, facts):
        return self.inner.should_run(ctx, host, facts)

    def plan(self, ctx, host, facts):
        return self.inner.plan(ctx, host, facts)

    def dry_run(self, ctx, host, facts, conn=None):
        return self.inner.dry_run(ctx, host, facts, conn)

    def run(self, ctx, host, conn, facts, journal, report=None):
        return self.inner.run(ctx, host, conn, facts, journal, report)


class NewHostsPreflight(Preflight):
    """Preflight on the new hosts only (the cluster's hosts are known good); names are checked against the
    whole cluster. Also reads the registry CA for the runtime phase."""

    def hosts(self, ctx):
        return [h for h in ctx.all_hosts if ctx.is_new(h)]

    def prepare(self, ctx):
        read_ca(ctx)

    def check_all(self, ctx, facts_by_label):
        """The install's checks, then: each new host reaches the bundle repo, the registry and the API."""
        notes = Preflight.check_all(self, ctx, facts_by_label)
        problems = []
        for h in self.hosts(ctx):
            conn = ctx.connections.get(h.label)
            if conn is None:
                continue
            for what, addr, port in reach_targets(ctx):
                if not conn.run(tcp_probe(addr, port), check=False).ok:
                    problems.append("%s cannot reach %s at %s:%d" % (h.label, what, addr, port))
        if problems:
            raise InstallerError("preflight found %d problem(s): %s" % (len(problems), "; ".join(problems)),
                                 phase="preflight", hint="Nothing was changed on any host. Open the network path "
                                                         "(firewalls, routes) and run add-node again")
        return notes

    def check_cluster(self, ctx, facts_by_label):
        errors, notes = [], []
        names = {}
        for h in ctx.nodes:
            name = ctx.node_name(h)
            if name in names and (ctx.is_new(h) or ctx.is_new(names[name][1])):
                errors.append("hosts %s and %s have the same host name %r; give the new host a unique 'name'"
                              % (names[name][0], h.label, name))
            names[name] = (h.label, h)
            if ctx.is_new(h) and name in ("localhost", "localhost.localdomain"):
                errors.append("host %s is called %r; give it a real 'name'" % (h.label, name))
        times = [(h.label, facts_by_label[h.label].time) for h in ctx.all_hosts
                 if facts_by_label.get(h.label) and facts_by_label[h.label].time
                 and (ctx.is_new(h) or ctx.is_serve_host(h))]
        if len(times) > 1:
            skew = max(t[1] for t in times) - min(t[1] for t in times)
            if skew > 24 * 3600 and not ctx.options.force:
                errors.append("the clocks of the new host(s) and the serving host differ by %d s; set the time "
                              "first (or pass --force)" % skew)
        return errors, notes


def reach_targets(ctx):
    """(what, address, port) a new node must reach: the repo and registry on the serving host, the API."""
    host, _, port = ctx.api_endpoint.rpartition(":")
    reg_host, reg_port = ctx.serve_address, REGISTRY_PORT
    if ctx.own_registry is not None:  # --registry: your own registry, port 443 unless given
        name, _, p = ctx.registry.rpartition(":") if not ctx.registry.endswith("]") else ("", "", "")
        reg_host, reg_port = (name, int(p)) if p.isdigit() and name else (ctx.registry, 443)
        reg_host = reg_host.strip("[]")
    return [("the bundle repository", ctx.serve_address, REPO_PORT),
            ("the image registry", reg_host, reg_port),
            ("the Kubernetes API", host.strip("[]"), int(port))]


def tcp_probe(addr, port, seconds=5):
    """A TCP connect from the host (bash's /dev/tcp: no extra tool needed on a minimal EL host)."""
    return "timeout %d bash -c 'exec 3<>/dev/tcp/%s/%d' 2>/dev/null" % (seconds, addr, port)


class ClusterHosts(Phase):
    """The existing hosts learn the new ones: the /etc/hosts block everywhere, and on the serving host the
    time server's allowed clients. Nothing else on them changes."""

    name = "cluster_hosts"
    title = "existing hosts: names (and time clients) of the new hosts"

    def hosts(self, ctx):
        return [h for h in ctx.all_hosts if not ctx.is_new(h)]

    def watched_files(self, ctx, host):
        return ["/etc/hosts", CHRONY_CONF]

    def plan(self, ctx, host, facts):
        keep = []
        chrony = False
        for c in HostPrep().plan(ctx, host, facts):
            if isinstance(c, WriteFile) and c.path == "/etc/hosts":
                keep.append(c)
            elif isinstance(c, WriteFile) and c.path == CHRONY_CONF and ctx.is_serve_host(host):
                keep.append(c)
                chrony = True
            elif chrony and isinstance(c, Service) and c.name == "chronyd":
                keep.append(c)
        return keep


class VerifyNew(Verify):
    """The new nodes Ready (and the cluster's pods Running); hosts skipped as unreachable are not asked."""

    def expected_names(self, ctx):
        return [ctx.node_name(h) for h in ctx.nodes if ctx.is_new(h)]


def add_node_phases():
    return [NewHostsPreflight(), OnNewHosts(MediaRepo()), ClusterHosts(), OnNewHosts(HostPrep()),
            OnNewHosts(Runtime()), OnNewHosts(RequestedPackages()), OnNewHosts(JoinControlPlanes()),
            OnNewHosts(JoinWorkers()), OnNewHosts(Helm()), VerifyNew()]


def run(runner, new_labels, dry_run=False):
    """Join the hosts `new_labels` (already in the inventory, which is the recorded cluster plus them). On
    failure the new hosts are reset and the record keeps the cluster as it was."""
    ctx = runner.ctx
    ctx.new_hosts = set(new_labels)
    refuse = [lb for lb in sorted(ctx.skipped) if lb in ctx.new_hosts or lb in (
        ctx.serve_host.label, ctx.first_cp.label)]
    if refuse:
        raise InstallerError("--skip-unreachable %s: add-node needs that host (the new hosts, the serving "
                             "host and the first control plane take part)" % ", ".join(refuse),
                             hint="Skip only hosts the operation does not change; nothing was changed")
    op = operations.add_node(dry_run)
    if dry_run:
        changed = runner.execute(op)
        total = sum(len(v) for v in changed.values())
        runner.out.say("plan add-node: %d change(s)" % total if total else "plan add-node: no changes")
        return total
    previous = runner.previous_record or {}
    record = ClusterRecord(previous)

    def start(r):
        r.start("add-node %s" % ",".join(new_labels), ctx, operation_id=runner.operation_id)
        r.data["inventory"] = previous.get("inventory")  # the new hosts count once they joined

    def failed(e):
        runner.out.say("add-node failed: resetting the new host(s) %s only" % ", ".join(new_labels))
        runner.reset_new_hosts(new_labels)
        e.hint = ("The new host(s) were reset; the cluster is as before. %s"
                  % (e.hint or "Fix the cause and run the same add-node again"))
        return "failed (new hosts reset): %s" % e.message

    changed = runner.execute_recorded(op, record, start, on_failure=failed)
    record.set_inventory(ctx)
    runner.finish_record(record)
    total = sum(len(v) for v in changed.values())
    for label, items in sorted(changed.items()):
        runner.out.say("%d change(s)" % len(items) if items else "no changes", host=label)
    runner.out.say("add-node: %s joined; %d change(s); logs in %s" % (", ".join(new_labels), total,
                                                                    runner.out.shown_dir))
    return total


def reset_new_hosts(runner, labels):
    """After a failed add-node: the new hosts as found (reset journal), their Node objects deleted."""
    from installer.constants import KUBECTL
    from installer.reset import reset_host
    from installer.ssh import quote
    ctx = runner.ctx
    cp = ctx.connections.get(ctx.first_cp.label)
    for h in ctx.nodes:
        if h.label not in labels or h.label not in ctx.connections:
            continue
        journal = ctx.journals.get(h.label) or Journal.load(ctx.connections[h.label])
        try:
            reset_host(ctx.connections[h.label], journal, lambda text, lb=h.label: runner.out.say(
                "reset: %s" % text, host=lb))
        except InstallerError as e:
            runner.out.say("reset failed (%s); run ./install.py reset on it by hand" % e.message, host=h.label)
        if cp is not None:
            cp.run("%s delete node %s --ignore-not-found" % (KUBECTL, quote(ctx.node_name(h))), check=False)
