"""./install.py node prepare|apply|finish: add-node split so that each new host runs its own part locally (for
fleets driven by Ansible or any other tool, beyond one SSH fan-out from the serving host).

    serving host:  ./install.py node prepare --hosts A[,B]    writes the join file (installer.joinfile)
    each new host: ./install.py node apply --join FILE        preflight and the node phases, locally
    serving host:  ./install.py node finish --join FILE       deletes the token, records the joined hosts

`node apply` runs the phases add-node runs on a new host (preflight with the reachability of repo, registry and
API; repositories pointing at the serving host's repo server; host preparation; runtime with the registry's CA;
packages; join with the file's token) over a Local connection, contacting no other host. It is idempotent (a
re-run changes nothing) and `plan node apply` shows what it would change. Workers only: control planes join with
add-node, one at a time.
"""

import os
import time

from installer import joinfile
from installer import record as rec
from installer.errors import InstallerError

COMMAND = "node"
DESCRIPTION = ("One new host's part of add-node, run on that host: on the serving host `node prepare --hosts "
               "A[,B]` writes a join file (cluster record, a short-lived join token, CA hash, serving address); "
               "on each new host, from a copy of the bundle or only install.py and installer/, `node apply --join "
               "FILE` runs preflight and the node phases locally (idempotent; `plan node apply` shows what would "
               "change); `node finish --join FILE` on the serving host deletes the token and records the hosts "
               "that joined. installer/ansible/site.yml drives this across an inventory.")
PLAN = True
CHECKS_BUNDLE = False  # node apply may run without the bundle; prepare and finish check it themselves
LOCKS = True
ACTIONS = ("prepare", "apply", "finish")
DEFAULT_TTL = "2h"


def add_arguments(parser, dry_run):
    parser.add_argument("action", choices=ACTIONS, help="prepare (serving host), apply (new host), finish "
                                                        "(serving host)")
    parser.add_argument("--join", metavar="FILE", default=joinfile.default_path(),
                        help="the join file: written by prepare (0600; it holds a token), read by apply and finish "
                             "(default %s)" % joinfile.default_path())
    g = parser.add_argument_group("prepare")
    g.add_argument("--hosts", metavar="ADDR[,ADDR]", default="", help="the new worker hosts")
    g.add_argument("--ttl", default=DEFAULT_TTL, help="how long the join token lives (default %s)" % DEFAULT_TTL)
    g.add_argument("--ssh-user", default="root", help="how the serving host reaches the new hosts later (reset, "
                                                      "remove-node): SSH login (default root)")
    g.add_argument("--ssh-key", metavar="FILE", help="... SSH private key")
    g.add_argument("--ssh-port", type=int, default=22)
    g = parser.add_argument_group("apply")
    g.add_argument("--address", metavar="ADDR", help="this host's address in the join file (default: the one of "
                                                     "this host's addresses listed there)")
    g = parser.add_argument_group("finish")
    g.add_argument("--wait", type=int, metavar="SECONDS", default=300,
                   help="wait at most this long for the new nodes to be Ready (default 300)")
    g.add_argument("--skip-unreachable", metavar="NAME[,NAME]", default="",
                   help="existing hosts that are down: not contacted (their /etc/hosts lacks the new names)")
    parser.add_argument("--bundle", metavar="DIR", default=None,
                        help="the installed bundle (default: next to install.py)")


def run(args):
    from installer.output import Output
    out = Output(root=args.root, read_only=bool(args.plan))
    return {"prepare": prepare, "apply": apply, "finish": finish}[args.action](args, out)


# -- prepare (serving host) -----------------------------------------------------------------------------------
def _new_hosts(entries):
    """The new workers as an inventory; entries: [{"address", "user", "port", "key"}] (how the serving host
    reaches them later: reset, remove-node)."""
    from installer import inventory as inv
    hosts = [inv.Host(e["address"], inv.ROLE_WORKER, user=e.get("user") or "root", port=e.get("port") or 22,
                      key=e.get("key")) for e in entries]
    for h in hosts:
        inv._check_address(h.address, "--hosts")
    return inv.Inventory(hosts, "node prepare --hosts", needs_control_plane=False)


def _recorded_runner(args, out, new_inventory, notes):
    """(runner, record) on the serving host: the recorded cluster plus the new hosts, bundle checked."""
    from installer import addnode
    from installer.bundle import Bundle
    from installer.cli import resolve_recorded
    from installer.runner import Runner
    from installer.verify_bundle import verify
    bundle_dir, _, opts, data = resolve_recorded(args, notes.append)
    if not args.skip_bundle_check:
        n = verify(bundle_dir)
        notes.append("bundle OK (%d files)" % n)
    path = rec.find(args.root, bundle_dir)[1]
    addnode.check_bundle_matches(data, path, bundle_dir)
    merged, labels = addnode.merge(data, path, new_inventory)
    runner = Runner(Bundle.load(bundle_dir), merged, opts, out, root=args.root, skip_verify=True,
                    previous_record=data, parallel=args.parallel)
    runner.ctx.new_hosts = set(labels)
    for n in notes:
        out.say(n)
    return runner, data


def prepare(args, out):
    from installer.inventory import _split_addresses
    from installer.lock import HostLock
    from installer.operations import Operation
    from installer.phases.join import CA_HASH_CMD
    from installer.phases.registry import read_ca
    addresses = _split_addresses(args.hosts)
    if not addresses:
        raise InstallerError("node prepare: no new host given", hint="Pass --hosts A[,B] (the new workers)")
    ttl = joinfile.duration_seconds(args.ttl)
    runner, data = _recorded_runner(args, out, _new_hosts(
        [{"address": a, "user": args.ssh_user, "port": args.ssh_port, "key": args.ssh_key} for a in addresses]), [])
    ctx = runner.ctx
    # only the first control plane (the token) and the serving host (the registry CA, media) are contacted
    ctx.skipped = set(h.label for h in ctx.all_hosts if h is not ctx.first_cp and not ctx.is_serve_host(h))
    lock = None if args.plan else HostLock("node prepare", args.root)
    if lock is not None:
        runner.operation_id = lock.acquire()
    try:
        runner.prepare(Operation("node prepare", [], dry_run=args.plan, check_bundle=False))
        read_ca(ctx)
        if ctx.ca_pem is None:
            from installer.constants import CA_CERT
            raise InstallerError("the registry CA %s is missing on the serving host" % CA_CERT,
                                 hint="Finish the install first (./install.py), then prepare nodes")
        path = os.path.abspath(args.join)
        if path.startswith(runner.bundle.root.rstrip("/") + "/"):
            raise InstallerError("--join %s is inside the bundle directory, whose SHA256SUMS check refuses files it "
                                 "does not list" % path, hint="Write it elsewhere, e.g. --join %s"
                                                              % joinfile.default_path())
        if args.plan:
            out.say("plan node prepare: would create a join token (ttl %s) on %s and write %s for %s"
                    % (args.ttl, ctx.first_cp.label, path, ", ".join(addresses)))
            return 0
        cp = ctx.connections[ctx.first_cp.label]
        _supersede(cp, path, out)
        token = cp.check("kubeadm token create --ttl %s" % args.ttl, "creating a join token").stdout.strip()
        token = token.splitlines()[-1].strip()
        ca_hash = "sha256:" + cp.check(CA_HASH_CMD, "reading the CA hash").stdout.strip()
        now = time.time()
        content = {
            "kind": joinfile.KIND, "version": joinfile.VERSION, "created": joinfile.iso(now),
            "expires": joinfile.iso(now + ttl), "ttl": args.ttl, "record": data, "bundle": runner.bundle.data,
            "bundleSha256": rec.bundle_sha256(runner.bundle.root), "token": token, "caCertHash": ca_hash,
            "registryCA": ctx.ca_pem, "media": ctx.media, "gpgkeys": runner.bundle.gpgkeys(),
            "serveAddress": ctx.serve_address, "apiEndpoint": ctx.api_endpoint,
            "hosts": [{"address": h.address, "role": h.role, "user": h.user, "port": h.port, "key": h.key}
                      for h in ctx.nodes if ctx.is_new(h)]}
        try:
            joinfile.write(path, content)
        except InstallerError:
            cp.run("kubeadm token delete %s" % token.split(".")[0], check=False)
            raise
        _history(runner, data, "node prepare %s" % ",".join(addresses),
                 "ok (token %s until %s)" % (token.split(".")[0], content["expires"]))
    finally:
        if lock is not None:
            lock.release()
    out.say("node prepare: wrote %s (0600; holds a join token valid until %s). Copy it with install.py and "
            "installer/ (or the bundle) to each new host and run there: ./install.py node apply --join %s; then "
            "here: ./install.py node finish --join %s" % (path, content["expires"], os.path.basename(path), path))
    return 0


def _supersede(cp, path, out):
    """A join file already at `path` (an earlier prepare that was not finished): its token is deleted first, so a
    re-run leaves one live token."""
    if not os.path.exists(path):
        return
    try:
        old = joinfile.load(path)
    except InstallerError as e:
        raise InstallerError("%s; node prepare does not overwrite a file it cannot read" % e.message,
                             hint="Remove it or give another --join FILE") from None
    res = cp.run("kubeadm token delete %s" % joinfile.token_id(old), check=False)
    out.say("the earlier join file %s is replaced; its token %s %s" % (
        path, joinfile.token_id(old), "is deleted" if res.ok else "could not be deleted (it expires at %s)"
        % old["expires"]))


def _history(runner, data, operation, result):
    """One history entry in the record (the inventory unchanged)."""
    record = rec.ClusterRecord(data)
    record.start(operation, runner.ctx, operation_id=runner.operation_id)
    record.data["inventory"] = data.get("inventory")
    record.finish(result)
    runner.write_record(record)


# -- apply (new host) ------------------------------------------------------------------------------------------
def _bundle_class():
    from installer.bundle import Bundle

    class JoinBundle(Bundle):
        """bundle.json from the join file; the repo's key names too (the new host may have no copy of repo/)."""

        def __init__(self, root, data, gpgkeys):
            Bundle.__init__(self, root, data)
            self._gpgkeys = list(gpgkeys)

        def gpgkeys(self):
            return list(self._gpgkeys)

    return JoinBundle


def JoinBundle(root, data, gpgkeys):  # noqa: N802 - a class, built lazily (command modules import cheaply)
    return _bundle_class()(root, data, gpgkeys)


def _my_address(join, given):
    addresses = [h["address"] for h in join["hosts"]]
    if given:
        if given not in addresses:
            raise InstallerError("--address %s is not one of the join file's hosts (%s)" % (given, ", ".join(
                addresses)), hint="Give the address node prepare was given for this host")
        return given
    from installer.runner import local_addresses
    mine = [a for a in addresses if a in local_addresses()]
    if len(mine) != 1:
        raise InstallerError("this host has %s of the join file's addresses (%s)" % (
            "none" if not mine else "several", ", ".join(addresses)),
            hint="Run node apply on one of those hosts, or pass --address ADDR")
    return mine[0]


def apply(args, out):
    from installer.cli import default_bundle_dir, options_of
    from installer.inventory import Host, Inventory
    from installer.nodeapply import node_apply_phases
    from installer.operations import Operation
    from installer.runner import Runner
    path = os.path.abspath(args.join)
    join = joinfile.load(path)
    bundle_dir = os.path.abspath(args.bundle or default_bundle_dir())
    have = rec.bundle_sha256(bundle_dir)
    if have is not None and have != join["bundleSha256"]:
        raise InstallerError("the bundle in %s (bundle.json sha256 %s) is not the installed one the join file %s "
                             "names (%s)" % (bundle_dir, have[:16], path, join["bundleSha256"][:16]),
                             hint="Run node apply with only install.py and installer/, or from the installed "
                                  "bundle; nodes of one cluster come from one bundle")
    me = _my_address(join, args.address)
    data = join["record"]
    entry = [h for h in join["hosts"] if h["address"] == me][0]
    recorded = rec.inventory_from(data, path)
    host = Host(me, entry.get("role") or "worker", user=entry.get("user"), port=entry.get("port"),
                key=entry.get("key"))
    inventory = Inventory(list(recorded.hosts) + [host], source="join file %s" % path)
    opts = options_of(args, data)
    opts.serve_address = join["serveAddress"]
    bundle = JoinBundle(bundle_dir, join["bundle"], join.get("gpgkeys") or [])
    if have is None and bundle.install_mode == "binaries":
        raise InstallerError("this bundle installs the runtime and Kubernetes from its own binaries (files/), and %s "
                             "has no copy of the bundle" % bundle_dir,
                             hint="Copy the installed bundle to this host and run node apply from it (--bundle DIR)")
    runner = Runner(bundle, inventory, opts, out, root=args.root, skip_verify=True, local_addrs={me},
                    previous_record=data, parallel=1)
    ctx = runner.ctx
    serve = [h for h in inventory.hosts if h.address == join["serveAddress"] and h is not host]
    ctx.serve_host = serve[0] if serve else Host(join["serveAddress"], "serve", name=(
        data.get("serveHost") or {}).get("name"))
    ctx.new_hosts = set([host.label])
    ctx.skipped = set(h.label for h in ctx.all_hosts if h is not host)
    ctx.ca_pem = join["registryCA"]
    ctx.media = join.get("media")
    ctx.join_file = join
    out.say("node apply: joining %s to the cluster of %s (join file %s, token valid until %s)"
            % (me, join["serveAddress"], path, join["expires"]))
    changed = runner.execute(Operation("node apply", node_apply_phases(), dry_run=args.plan, media=False,
                                       check_bundle=False)).get(host.label, [])
    if args.plan:
        out.say("plan node apply: %d change(s)" % len(changed) if changed else "plan node apply: no changes")
        return 0
    out.say("node apply: %s joined as %s; %d change(s); logs in %s. Then, on the serving host: ./install.py node "
            "finish --join FILE" % (me, ctx.node_name(host), len(changed), out.shown_dir))
    return 0


# -- finish (serving host) ---------------------------------------------------------------------------------------
def finish(args, out):
    from installer.cli import skip_list
    from installer.nodeapply import finish_phases
    from installer.operations import Operation
    path = os.path.abspath(args.join)
    join = joinfile.load(path)
    hosts = [h["address"] for h in join["hosts"]]
    pending = _pending(args, hosts)
    if not pending:
        out.say("node finish: %s already in the cluster record" % ", ".join(hosts))
    entries = [h for h in join["hosts"] if h["address"] in pending]
    runner, data = _recorded_runner(args, out, _new_hosts(entries), [])
    ctx = runner.ctx
    ctx.skipped = set(ctx.new_hosts) | skip_list(args, runner)
    if ctx.first_cp.label in ctx.skipped or ctx.serve_host.label in ctx.skipped:
        raise InstallerError("--skip-unreachable: node finish needs the serving host and the first control plane",
                             hint="Skip only hosts the operation does not change; nothing was changed")
    ctx.finish_wait = 0 if args.plan else max(0, args.wait)
    ctx.finish_token = None if args.plan else joinfile.token_id(join)
    op = Operation("node finish", finish_phases(), dry_run=args.plan, media=False, check_bundle=False)
    if args.plan:
        changed = runner.execute(op)
        total = sum(len(v) for v in changed.values())
        out.say("plan node finish: would delete the join token %s and the join file %s; %d change(s)"
                % (joinfile.token_id(join), path, total))
        return 0
    record = rec.ClusterRecord(data)

    def start(r):
        r.start("node finish %s" % ",".join(hosts), ctx, operation_id=runner.operation_id)
        r.data["inventory"] = data.get("inventory")

    runner.execute_recorded(op, record, start)
    record.set_inventory(ctx)
    runner.finish_record(record)
    joined = ", ".join("%s (%s)" % (ctx.node_name(h), h.address) for h in ctx.nodes if ctx.is_new(h))
    left = getattr(ctx, "finish_left", [])
    if left:
        out.say("node finish: %s recorded; %s not yet: the join token %s and %s are kept (until %s) for them: run "
                "node apply on them, then node finish again" % (joined, ", ".join(left), joinfile.token_id(join),
                                                                 path, join["expires"]))
        return 0
    try:
        os.unlink(path)
    except OSError as e:
        out.say("note: could not remove the join file %s (%s); its token is deleted" % (path, e.strerror))
    out.say("node finish: %s recorded; join token %s deleted; join file removed" % (
        joined or "no new host", joinfile.token_id(join)))
    return 0


def data_hosts(args):
    from installer.cli import default_bundle_dir
    data, _ = rec.find(args.root, os.path.abspath(args.bundle or default_bundle_dir()))
    return ((data or {}).get("inventory") or {}).get("hosts") or []


def _pending(args, hosts):
    recorded = set(h["address"] for h in data_hosts(args))
    return [a for a in hosts if a not in recorded]
