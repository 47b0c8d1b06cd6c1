"""One doctor run: the cluster record, connections (a host that does not answer is a finding, not a stop),
the layers in runbook order, then the report (and the support bundle)."""

import concurrent.futures
import os

from installer import record as rec
from installer.bundle import Bundle
from installer.doctor import cluster, nodes, pods, services
from installer.doctor.env import Env
from installer.doctor.findings import Report
from installer.errors import InstallerError
from installer.ssh import SSH, Local


def load(args, say):
    """(bundle dir, record, record path) of the installed cluster; a clear error without a record."""
    from installer.runner import default_bundle_dir
    bundle_dir = os.path.abspath(args.bundle or default_bundle_dir())
    data, path = rec.find(args.root, bundle_dir)
    if data is None:
        raise InstallerError("doctor needs the cluster record of an installed cluster (%s on this host, or %s "
                             "beside install.py), and there is none" % (rec.SERVE_RECORD, rec.BUNDLE_RECORD),
                             hint="Run doctor on the host that installed the cluster, from the installed bundle")
    if data.get("state") != "installed":
        say("note: the cluster record %s says the cluster is %r; checking it anyway" % (path, data.get("state")))
    return bundle_dir, data, path


def connect(runner, hosts):
    """{label: connection} of the hosts that answer, {label: why} of those that do not (up to --parallel at
    once)."""
    for h in hosts:
        if h.local and os.geteuid() != 0 and runner.root in ("/", None):
            raise InstallerError("doctor must run as root on this host (it reads certificates, journals and "
                                 "iptables)", hint="Run: sudo ./install.py doctor")

    def one(h):
        log = runner.out.logger(h.label)
        conn = Local(h.label, runner.root, log) if h.local else SSH(h, log)
        try:
            conn.check("true", "checking the connection")
        except InstallerError as e:
            return h.label, None, str(e)
        return h.label, conn, None

    conns, down = {}, {}
    if not hosts:
        return conns, down
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(runner.parallel, len(hosts))) as pool:
        for label, conn, why in pool.map(one, hosts):
            if conn is None:
                down[label] = why
            else:
                conns[label] = conn
    return conns, down


def run(args, say):
    from installer import cli
    from installer.output import Output
    from installer.runner import Runner
    bundle_dir, data, path = load(args, say)
    bundle = Bundle.load(bundle_dir)
    inventory = rec.inventory_from(data, path)
    out = Output(root=args.root, read_only=True, quiet=True)
    runner = Runner(bundle, inventory, cli.options_of(args, data), out, root=args.root, previous_record=data,
                    skip_verify=True, parallel=args.parallel)
    ctx = runner.ctx
    ctx.skipped = cli.skip_list(args, runner)
    say("doctor: %s (Kubernetes %s, %d host(s)), cluster record %s" % (
        bundle.name, bundle.k8s_version, len(inventory.hosts), path))
    conns, down = connect(runner, ctx.reachable_hosts)
    env = Env(ctx, conns, down, data, parallel=args.parallel)
    report = Report({"name": bundle.name, "kubernetes": bundle.k8s_version, "record": path,
                     "hosts": [h.label for h in ctx.all_hosts], "skipped": sorted(ctx.skipped)})
    state = {}
    report.extend(cluster.check(env, state))
    report.checked.append("cluster")
    report.extend(nodes.check(env, state))
    report.checked.append("nodes")
    if args.pod:
        report.extend(pods.check(env, state, args.pod))
        report.checked.append("pods")
    if args.service or args.dns:
        report.extend(services.check(env, state, args.service, args.dns))
        report.checked.append("services")
    report.commands = len(env.ran)
    for c in list(conns.values()):
        c.close()
    return env, report, out
