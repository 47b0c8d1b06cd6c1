"""./install.py [install|plan|status|reset] [options]: argument parsing (one parser per command, so each
command's --help shows its own options and refuses the others) and the top-level error handler."""

import argparse
import os
import sys

from installer import __version__
from installer import commands as extra_commands
from installer import inventory as inv
from installer import record as rec
from installer.bundle import Bundle
from installer.context import Options, upstream_dns_list
from installer.errors import InstallerError
from installer.lock import LOCK
from installer.lock import abort as abort_lock
from installer.output import Output
from installer.runner import DEFAULT_PARALLEL, Runner, default_bundle_dir
from installer.verify_bundle import verify as verify_bundle

BUILTIN = ("install", "plan", "status", "reset", "add-node", "remove-node")
DAY2 = ("add-node", "remove-node")  # `plan add-node ...` is their dry run


def all_commands():
    """The built-in commands, then one per module in installer/commands/ (installer.commands)."""
    return BUILTIN + tuple(extra_commands.available())


def plannable():
    """Commands whose dry run is `./install.py plan COMMAND ...`."""
    return DAY2 + tuple(w for w, m in extra_commands.available().items() if getattr(m, "PLAN", False))


COMMANDS = BUILTIN  # kept for callers that only mean the built-in ones
#: Commands that act on the bundle check it first, before the inventory is read or any host is contacted.
#: status only reads the hosts' state, so it still works from a damaged copy.
CHECKED_COMMANDS = ("install", "plan", "reset", "add-node")
DESCRIPTIONS = {
    "install": "Install a Kubernetes cluster from this air-gapped bundle (also resumes an interrupted install). "
               "Other commands: plan (dry run), status, reset, add-node, remove-node; see ./install.py COMMAND "
               "--help. After an install the cluster is remembered (%s on this host and cluster.json beside "
               "install.py): later commands need no host options." % rec.SERVE_RECORD,
    "plan": "Dry run of install: connect, run the preflight checks and list what install would change on each "
            "host. Changes nothing (not even python3 on this host). Hosts and options default to the cluster "
            "record of an earlier install.",
    "status": "Show each host's OS, installer phases done and service states, and the cluster's nodes. Reads "
              "only; hosts default to the cluster record of an earlier install.",
    "add-node": "Join new hosts to the installed cluster from the installed bundle (the one in the cluster "
                "record): preflight and the node phases run on the new hosts only; existing hosts only learn "
                "the new names (/etc/hosts) and the serving host its new time clients. A failed add-node resets "
                "the new hosts only. `./install.py plan add-node ...` shows what it would change.",
    "remove-node": "Take a node out of the installed cluster: cordon, drain, remove its etcd member (control "
                   "planes; also when the host is dead), reset the host if it answers, delete the Node. Refuses "
                   "the serving host, the last control plane and a removal that breaks etcd quorum. Every step "
                   "checks its state first: a re-run resumes. `./install.py plan remove-node NAME` shows what "
                   "is left to do.",
    "reset": "Undo everything the installer did (kubeadm reset, restore changed files, remove installed "
             "packages and binaries) on every host of the cluster record, or on the hosts given.",
}


def _hosts(p):
    g = p.add_argument_group("hosts (default: the cluster record of an earlier install)")
    g.add_argument("-i", "--inventory", metavar="FILE", help="ansible-style INI inventory (see docs/installer.md)")
    g.add_argument("--control-plane", metavar="ADDR[,ADDR]", help="control-plane host(s), the first one is inited")
    g.add_argument("--workers", metavar="ADDR[,ADDR]", default="", help="worker hosts")
    g.add_argument("--ssh-user", default="root", help="SSH login (sudo is used when not root; default root)")
    g.add_argument("--ssh-key", metavar="FILE", help="SSH private key")
    g.add_argument("--ssh-port", type=int, default=22)
    g.add_argument("--serve-address", metavar="ADDR",
                   help="this host's cluster address when it is not in the inventory")
    g.add_argument("--bundle", metavar="DIR", default=None, help="the unpacked bundle (default: next to install.py)")


def _install_options(p, hidden=False):
    def h(text):
        return argparse.SUPPRESS if hidden else text
    m = p if hidden else p.add_argument_group("media and bundle")
    m.add_argument("--iso", metavar="FILE", help=h("the OS install DVD image"))
    m.add_argument("--media", metavar="DIR", help=h("a directory with the OS DVD content"))
    m.add_argument("--key", metavar="FILE", help=h("public GPG key: verify SHA256SUMS.asc before anything else"))
    c = p if hidden else p.add_argument_group("cluster (default: as recorded by an earlier install)")
    c.add_argument("--pod-subnet", metavar="CIDR", help=h("pod network (default: the CNI's own)"))
    c.add_argument("--control-plane-endpoint", metavar="HOST:PORT",
                   help=h("API endpoint (a load balancer for several control planes)"))
    c.add_argument("--selinux", choices=("enforcing", "permissive"), help=h("default: enforcing"))
    c.add_argument("--firewalld", choices=("on", "off"),
                   help=h("on: open the needed ports (default); off: stop firewalld"))
    c.add_argument("--timezone", metavar="TZ", help=h("set the hosts' time zone"))
    c.add_argument("--upstream-dns", metavar="IP[,IP]",
                   help=h("where CoreDNS forwards names outside the cluster (default: the nameservers in the "
                          "hosts' /etc/resolv.conf; without any, CoreDNS answers cluster names only)"))
    c.add_argument("--force", action="store_true", help=h("install over an existing Kubernetes"))
    c.add_argument("--verify-timeout", type=int, metavar="SECONDS", help=h("default: 600"))
    r = p if hidden else p.add_argument_group("your own registry (instead of the bundled one; see docs/installer.md)")
    r.add_argument("--registry", metavar="HOST[:PORT][/PREFIX]",
                   help=h("use this registry (Harbor, distribution; HTTPS): the images it lacks are pushed under "
                          "PREFIX (e.g. a Harbor project) and every host pulls from it"))
    r.add_argument("--registry-ca", metavar="FILE", help=h("its CA certificate, PEM (default: the system trust)"))
    r.add_argument("--registry-credentials", metavar="FILE",
                   help=h("user:password or a Docker config.json, to push (never printed or recorded)"))


def _new_hosts(p):
    g = p.add_argument_group("the new hosts (the cluster itself comes from the cluster record)")
    g.add_argument("--control-plane", metavar="ADDR", help="a new control-plane host (one at a time)")
    g.add_argument("--workers", metavar="ADDR[,ADDR]", default="", help="new worker hosts")
    g.add_argument("--ssh-user", default="root", help="SSH login of the new hosts (default root)")
    g.add_argument("--ssh-key", metavar="FILE", help="SSH private key for the new hosts")
    g.add_argument("--ssh-port", type=int, default=22)
    g.add_argument("--bundle", metavar="DIR", default=None, help="the installed bundle (default: next to install.py)")
    g.add_argument("--skip-unreachable", metavar="NAME[,NAME]", default="",
                   help="existing hosts that are down: not contacted (only hosts the operation does not change)")


def build_parser(command="install"):
    dry = command.startswith("plan-")
    base = command[5:] if dry else command
    prog = "install.py" if command == "install" else "install.py %s" % (
        "plan " + base if dry else command)
    extra = extra_commands.get(base)
    if extra is not None:
        p = argparse.ArgumentParser(prog=prog, description=extra.DESCRIPTION)
        extra.add_arguments(p, dry)
        _common(p, command, locks=getattr(extra, "LOCKS", True) and not dry)
        return p
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTIONS[base])
    if command == "install":
        p.usage = "%%(prog)s [%s] [options]" % "|".join(all_commands())
    if base == "remove-node":
        p.add_argument("node", metavar="NAME", help="the node (its name, or its address in the cluster record)")
        p.add_argument("--drain-timeout", type=_positive, metavar="SECONDS", default=300,
                       help="give up draining after this long (default 300)")
        p.add_argument("--ignore-pdb", "--force", dest="ignore_pdb", action="store_true",
                       help="drain even when PodDisruptionBudgets allowing no disruption cover pods on the node "
                            "(their pods are deleted, not evicted); without it remove-node refuses them")
        p.add_argument("--skip-unreachable", metavar="NAME[,NAME]", default="",
                       help="other hosts that are down: not contacted")
        p.add_argument("--bundle", metavar="DIR", default=None,
                       help="the installed bundle (default: next to install.py)")
        if not dry:
            p.add_argument("-y", "--yes", action="store_true", help="do not ask before removing")
        _common(p, command)
        return p
    if base in DAY2:
        _new_hosts(p)
        _common(p, command)
        return p
    _hosts(p)
    if command == "status":
        p.add_argument("--skip-unreachable", metavar="NAME[,NAME]", default="",
                       help="hosts that are down: not contacted (status also goes on without a host that does not "
                            "answer, and says so)")
    if command in ("install", "plan"):
        _install_options(p)
    elif command == "reset":
        # reset is often typed as the install command line with "reset": those options are accepted and unused
        _install_options(p, hidden=True)
        p.add_argument("-y", "--yes", action="store_true", help="do not ask before reset")
    _common(p, command)
    return p


def _common(p, command, locks=None):
    p.add_argument("--parallel", type=_positive, metavar="N", default=DEFAULT_PARALLEL,
                   help="work on at most N hosts at once (default %d)" % DEFAULT_PARALLEL)
    if locks is None:
        locks = command not in ("status", "plan") and not command.startswith("plan-")
    if locks:
        p.add_argument("--abort", action="store_true",
                       help="release the lock left by an interrupted operation (%s) and stop" % LOCK)
    p.add_argument("--root", default="/", help=argparse.SUPPRESS)  # tests: redirect local paths
    p.add_argument("--skip-bundle-check", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--version", action="version", version="airgap-installer %s" % __version__)


def _positive(text):
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError("%r is not a number of hosts (1 or more)" % text)
    return n


def _takes_value(parser):
    return set(s for a in parser._actions if a.option_strings and a.nargs != 0 for s in a.option_strings)


def split_command(argv):
    """(command, the other arguments): the first word that names a command and is not an option's value
    (./install.py reset -y and ./install.py -y reset both work); no such word means install."""
    values = _takes_value(build_parser("install"))
    words = all_commands()
    prev = None
    for i, a in enumerate(argv):
        if a in words and not (prev in values and "=" not in prev):
            rest = argv[:i] + argv[i + 1:]
            if a == "plan":  # plan add-node ...: the day-2 command's dry run
                for j, b in enumerate(rest):
                    if b in plannable() and not (j and rest[j - 1] in values and "=" not in rest[j - 1]):
                        return "plan-" + b, rest[:j] + rest[j + 1:]
            return a, rest
        if a == "--":
            break
        prev = a
    return "install", list(argv)


def parse(argv):
    command, rest = split_command(list(argv))
    parser = build_parser(command)
    args, extra = parser.parse_known_args(rest)
    if extra:
        opts = [e for e in extra if e.startswith("-")] or extra
        if command == "status":
            parser.error("status does not take %s: it only reads the hosts and changes nothing. Its options: "
                         "the hosts (or none, to use the cluster record); see ./install.py status --help"
                         % " ".join(opts))
        parser.error("unrecognized arguments: %s (see ./install.py %s--help)"
                     % (" ".join(extra), "" if command == "install" else command + " "))
    args.plan = command.startswith("plan-")
    args.command = command[5:] if args.plan else command
    return args


def load_inventory(args):
    if args.inventory and args.control_plane:
        raise InstallerError("give either -i INVENTORY or --control-plane/--workers, not both")
    if args.inventory:
        defaults = {"user": args.ssh_user, "port": str(args.ssh_port)}
        if args.ssh_key:
            defaults["key"] = args.ssh_key
        return inv.load(args.inventory, defaults)
    if not args.control_plane:
        return None
    return inv.from_flags(args.control_plane, args.workers, args.ssh_user, args.ssh_port, args.ssh_key)


def check_bundle_first(args, bundle_dir):
    """For the commands that act on the bundle: the files checked, before anything else reads it or any host is
    contacted (raises, naming every bad path). None when this command does not check."""
    extra = extra_commands.get(args.command)
    checks = getattr(extra, "CHECKS_BUNDLE", False) if extra is not None else args.command in CHECKED_COMMANDS
    if not checks or args.skip_bundle_check:
        if checks:  # tests skip the check; a delta bundle is still checked against the site and completed
            from installer import delta
            delta.before_use(args.command, bundle_dir, args.root, dry_run=args.plan or args.command == "plan",
                             verified=False)
        return None
    key = getattr(args, "key", None)
    sys.stdout.write("checking the bundle in %s against SHA256SUMS%s ...\n"
                     % (os.path.abspath(bundle_dir), " and its signature" if key else ""))
    sys.stdout.flush()
    from installer import delta  # a delta bundle: checked against the site, completed from it (installer/delta.py)
    delta.clean_partial(bundle_dir)
    checked = verify_bundle(bundle_dir, key)
    delta.before_use(args.command, bundle_dir, args.root, dry_run=args.plan or args.command == "plan",
                     say=lambda msg: sys.stdout.write(msg + "\n"))
    return checked


def resolve(args, say):
    """Inventory, options and the previous cluster record: what is given wins, the record fills the rest."""
    bundle_dir = os.path.abspath(args.bundle or default_bundle_dir())
    given = load_inventory(args)
    status = args.command == "status"
    try:
        data, path = rec.find(args.root, bundle_dir)
    except InstallerError as e:
        data, path = (status and rec.in_cluster_fallback(args.root, e.message, say)) or (None, None)
        if data is None and given is None:
            raise
        if data is None:
            say("note: %s; the hosts given are used and the next install rewrites it" % e.message)
    else:
        if data is None and status and given is None:  # status falls back to the in-cluster copy
            data, path = rec.in_cluster_fallback(args.root, "no cluster record on this host (%s)"
                                                 % rec.SERVE_RECORD, say) or (None, None)
    if given is None:
        if data is None:
            raise InstallerError(
                "no hosts given, and no cluster record (%s on this host, or %s beside install.py) from an "
                "earlier install" % (rec.SERVE_RECORD, rec.BUNDLE_RECORD),
                hint="Pass --control-plane ADDRESS [--workers A,B] or -i inventory.ini")
        inventory = rec.inventory_from(data, path)
        say("using the cluster record %s (%s, %d host(s))" % (path, data.get("state", "?"), len(inventory.hosts)))
    else:
        inventory = given
        if data is not None:
            diff = rec.differences(rec.inventory_from(data, path), given)
            if diff:
                say("note: the hosts given differ from the cluster record %s: %s; the hosts given are used"
                    % (path, "; ".join(diff)))
    return bundle_dir, inventory, options_of(args, data), data


def options_of(args, data):
    """The options given on the command line; the cluster record's (then the defaults) for the others."""
    recorded = (data or {}).get("options") or {}
    values = {}
    for key, default in rec.OPTION_DEFAULTS.items():
        v = getattr(args, key, None)
        if v is None:
            v = recorded.get(key, default)
        values[key] = v
    opts = Options(force=getattr(args, "force", False),
                   registry_credentials=getattr(args, "registry_credentials", None), **values)
    upstream_dns_list(opts.upstream_dns)  # a clear error before anything else
    if not opts.registry and (opts.registry_ca or opts.registry_credentials):
        raise InstallerError("--registry-ca and --registry-credentials need --registry HOST[:PORT][/PREFIX]",
                             hint="Name your registry with --registry, or drop those options to use the bundled one")
    if opts.registry:
        from installer.extregistry import parse_target
        parse_target(opts.registry)  # a clear error before any host is contacted
        if opts.registry_ca:
            opts.registry_ca = os.path.abspath(opts.registry_ca)  # recorded: later commands run elsewhere
    return opts


def resolve_recorded(args, say):
    """Day-2 commands on the cluster as recorded (an installed one)."""
    bundle_dir = os.path.abspath(args.bundle or default_bundle_dir())
    data, path = rec.find(args.root, bundle_dir)
    if data is None:
        raise InstallerError("%s needs the cluster record of an installed cluster (%s on this host, or %s beside "
                             "install.py), and there is none" % (args.command, rec.SERVE_RECORD, rec.BUNDLE_RECORD),
                             hint="Run it on the host that installed the cluster, from the installed bundle")
    if data.get("state") != "installed":
        raise InstallerError("the cluster record %s says the cluster is %r, not installed" % (path, data.get("state")),
                             hint="Finish the install first (./install.py)")
    inventory = rec.inventory_from(data, path)
    say("using the cluster record %s (%d host(s))" % (path, len(inventory.hosts)))
    return bundle_dir, inventory, options_of(args, data), data


def resolve_add_node(args, say):
    """add-node: the cluster from the record (required), the bundle checked against it, the new hosts merged
    in. Returns (bundle dir, merged inventory, options, record, labels of the new hosts)."""
    from installer import addnode
    bundle_dir = os.path.abspath(args.bundle or default_bundle_dir())
    data, path = rec.find(args.root, bundle_dir)
    if data is None:
        raise InstallerError("add-node needs the cluster record of an installed cluster (%s on this host, or %s "
                             "beside install.py), and there is none" % (rec.SERVE_RECORD, rec.BUNDLE_RECORD),
                             hint="Run add-node on the host that installed the cluster, from the installed bundle")
    if data.get("state") != "installed":
        raise InstallerError("the cluster record %s says the cluster is %r, not installed" % (path, data.get("state")),
                             hint="Finish the install first (./install.py), then add nodes")
    addnode.check_bundle_matches(data, path, bundle_dir)
    cps = inv._split_addresses(args.control_plane)
    if len(cps) > 1 or (cps and inv._split_addresses(args.workers)):
        raise InstallerError("add-node adds control planes one at a time, and not together with workers",
                             hint="Run add-node --control-plane ADDR once per control plane, then the workers")
    if not cps and not inv._split_addresses(args.workers):
        raise InstallerError("add-node: no new host given", hint="Pass --workers A[,B] or --control-plane A")
    new = [inv.Host(a, inv.ROLE_CONTROL_PLANE, user=args.ssh_user, port=args.ssh_port, key=args.ssh_key) for a in cps]
    new += [inv.Host(a, inv.ROLE_WORKER, user=args.ssh_user, port=args.ssh_port, key=args.ssh_key)
            for a in inv._split_addresses(args.workers)]
    for h in new:
        inv._check_address(h.address, "--control-plane/--workers")
    given = inv.Inventory(new, "--control-plane/--workers", needs_control_plane=False)
    inventory, labels = addnode.merge(data, path, given)
    say("using the cluster record %s (%d host(s)); adding %s" % (path, len(inventory.hosts) - len(labels),
                                                               ", ".join(labels)))
    return bundle_dir, inventory, options_of(args, data), data, labels


def skip_list(args, runner):
    """--skip-unreachable NAME[,NAME]: the labels of those hosts (by node name, label or address)."""
    names = [n for n in inv._split_addresses(getattr(args, "skip_unreachable", "")) if n]
    out = set()
    for n in names:
        match = [h for h in runner.ctx.all_hosts
                 if n in (h.label, h.address, h.alias, h.name, runner.ctx.recorded_names.get(h.address))]
        if not match:
            raise InstallerError("--skip-unreachable %s: no such host in the cluster" % n,
                                 hint="Name a host of the cluster record (./install.py status lists them)")
        out.update(h.label for h in match)
    return out


def main(argv=None):
    rc = _main(argv)
    if rc == 0:
        from installer.output import discard_temp_logs
        discard_temp_logs()
    return rc


def _main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    out = None
    try:
        if getattr(args, "abort", False):
            return abort(args)
        notes = []
        checked = check_bundle_first(args, os.path.abspath(getattr(args, "bundle", None) or default_bundle_dir()))
        if extra_commands.get(args.command) is not None:
            args.bundle_checked = checked  # the number of files checked, or None
            return extra_commands.get(args.command).run(args)
        new_labels = None
        if args.command == "add-node":
            bundle_dir, inventory, opts, previous, new_labels = resolve_add_node(args, notes.append)
        elif args.command == "remove-node":
            bundle_dir, inventory, opts, previous = resolve_recorded(args, notes.append)
        else:
            bundle_dir, inventory, opts, previous = resolve(args, notes.append)
            if args.command in ("install", "plan"):
                new_labels = grown_cluster(args, bundle_dir, inventory, previous, notes.append)
        bundle = Bundle.load(bundle_dir)
        # plan and status change nothing on the serving host either: their log goes to a temporary directory
        out = Output(root=args.root, read_only=args.command in ("plan", "status") or bool(args.plan))
        if checked is not None:
            out.say("bundle OK (%d files): %s for %s/%s, Kubernetes %s, %s, %s" % (
                checked, bundle.name, bundle.os, bundle.arch, bundle.k8s_version, bundle.runtime, bundle.cni))
        for n in notes:
            out.say(n)
        runner = Runner(bundle, inventory, opts, out, root=args.root, gpg_key=getattr(args, "key", None),
                        skip_verify=args.skip_bundle_check or checked is not None, previous_record=previous,
                        parallel=args.parallel)
        runner.ctx.skipped = skip_list(args, runner)
        if args.command == "remove-node":
            if not args.plan and not args.yes and not _confirm(
                    "remove-node will drain %s and take it out of the cluster. Continue? [y/N] " % args.node):
                return 1
            runner.remove_node(args.node, args.drain_timeout, dry_run=args.plan, ignore_pdb=args.ignore_pdb)
        elif new_labels:
            runner.add_node(new_labels, dry_run=args.command == "plan" or args.plan)
        elif args.command == "plan":
            runner.plan()
        elif args.command == "status":
            runner.status()
        elif args.command == "reset":
            if not args.yes and not _confirm("reset will run kubeadm reset and undo the installer's changes on %d "
                                             "host(s). Continue? [y/N] " % len(runner.ctx.all_hosts)):
                return 1
            runner.reset()
        else:
            runner.install()
        return 0
    except InstallerError as e:
        if out is not None and not e.log and out.written:
            e.log = os.path.join(out.shown_dir, "install.log")
        text = "error: %s\n" % e
        try:
            sys.stderr.write(text)
        except UnicodeEncodeError:  # a lone surrogate from a damaged file's JSON escape, or a C locale
            sys.stderr.write(text.encode("ascii", "backslashreplace").decode("ascii"))
        return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; run ./install.py again to resume\n")
        return 130


def grown_cluster(args, bundle_dir, inventory, previous, say):
    """install (or plan) with an inventory that is the installed cluster plus new hosts: the labels of the new
    hosts (the command then adds them like add-node, without --force); None otherwise."""
    from installer import addnode
    if not previous or previous.get("state") != "installed" or load_inventory(args) is None:
        return None
    recorded = dict((h["address"], h["role"]) for h in previous["inventory"]["hosts"])
    given = dict((h.address, h.role) for h in inventory.hosts)
    if any(given.get(a) != r for a, r in recorded.items()) or len(given) == len(recorded):
        return None
    addnode.check_bundle_matches(previous, "the cluster record", bundle_dir)
    labels = [h.label for h in inventory.hosts if h.address not in recorded]
    say("the hosts given are the installed cluster plus %s: adding them (as ./install.py add-node does)"
        % ", ".join(labels))
    return labels


def abort(args):
    """--abort: release a stale host lock and mark the interrupted operation aborted in the record."""
    sys.stdout.write(abort_lock(args.root) + "\n")
    for path in rec.mark_aborted(args.root, os.path.abspath(getattr(args, "bundle", None) or default_bundle_dir())):
        sys.stdout.write("marked the interrupted operation aborted in %s\n" % path)
    return 0


def _confirm(prompt):
    try:
        return input(prompt).strip().lower() in ("y", "yes")
    except EOFError:
        return False
