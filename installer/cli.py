"""./install.py [install|plan|status|reset] [options]: argument parsing and the top-level error handler."""

import argparse
import os
import sys

from installer import __version__
from installer import inventory as inv
from installer.bundle import Bundle
from installer.context import Options
from installer.errors import InstallerError
from installer.output import Output
from installer.runner import Runner, default_bundle_dir
from installer.verify_bundle import verify as verify_bundle

COMMANDS = ("install", "plan", "status", "reset")
#: Commands that act on the bundle check it first, before the inventory is read or any host is contacted.
#: status only reads the hosts' state, so it still works from a damaged copy.
CHECKED_COMMANDS = ("install", "plan", "reset")


def build_parser():
    p = argparse.ArgumentParser(
        prog="install.py",
        description="Install a Kubernetes cluster from this air-gapped bundle. Commands: install (default; "
                    "also resumes), plan (dry run: what would change on each host), status, reset.")
    p.add_argument("command", nargs="?", default="install", choices=COMMANDS)
    g = p.add_argument_group("hosts")
    g.add_argument("-i", "--inventory", metavar="FILE", help="ansible-style INI inventory (see docs/installer.md)")
    g.add_argument("--control-plane", metavar="ADDR[,ADDR]", help="control-plane host(s), the first one is inited")
    g.add_argument("--workers", metavar="ADDR[,ADDR]", default="", help="worker hosts")
    g.add_argument("--ssh-user", default="root", help="SSH login (sudo is used when not root; default root)")
    g.add_argument("--ssh-key", metavar="FILE", help="SSH private key")
    g.add_argument("--ssh-port", type=int, default=22)
    g.add_argument("--serve-address", metavar="ADDR",
                   help="this host's cluster address when it is not in the inventory")
    m = p.add_argument_group("media and bundle")
    m.add_argument("--iso", metavar="FILE", help="the OS install DVD image")
    m.add_argument("--media", metavar="DIR", help="a directory with the OS DVD content")
    m.add_argument("--bundle", metavar="DIR", default=None, help="the unpacked bundle (default: next to install.py)")
    m.add_argument("--key", metavar="FILE", help="public GPG key: verify SHA256SUMS.asc before anything else")
    c = p.add_argument_group("cluster")
    c.add_argument("--pod-subnet", metavar="CIDR")
    c.add_argument("--control-plane-endpoint", metavar="HOST:PORT",
                   help="API endpoint (a load balancer for several control planes)")
    c.add_argument("--selinux", choices=("enforcing", "permissive"), default="enforcing")
    c.add_argument("--firewalld", choices=("on", "off"), default="on",
                   help="on: open the needed ports (default); off: stop firewalld")
    c.add_argument("--timezone", metavar="TZ")
    c.add_argument("--force", action="store_true", help="install over an existing Kubernetes")
    c.add_argument("--verify-timeout", type=int, default=600, metavar="SECONDS")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask before reset")
    p.add_argument("--root", default="/", help=argparse.SUPPRESS)  # tests: redirect local paths
    p.add_argument("--skip-bundle-check", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--version", action="version", version="airgap-installer %s" % __version__)
    return p


def load_inventory(args):
    if args.inventory and args.control_plane:
        raise InstallerError("give either -i INVENTORY or --control-plane/--workers, not both")
    if args.inventory:
        defaults = {"user": args.ssh_user, "port": str(args.ssh_port)}
        if args.ssh_key:
            defaults["key"] = args.ssh_key
        return inv.load(args.inventory, defaults)
    if not args.control_plane:
        raise InstallerError("no hosts given", hint="Pass --control-plane ADDRESS [--workers A,B] or -i inventory.ini")
    return inv.from_flags(args.control_plane, args.workers, args.ssh_user, args.ssh_port, args.ssh_key)


def check_bundle_first(args, bundle_dir):
    """For the commands that act on the bundle: the files checked, before anything else reads it or any host is
    contacted (raises, naming every bad path). None when this command does not check."""
    if args.command not in CHECKED_COMMANDS or args.skip_bundle_check:
        return None
    key = getattr(args, "key", None)
    sys.stdout.write("checking the bundle in %s against SHA256SUMS%s ...\n"
                     % (os.path.abspath(bundle_dir), " and its signature" if key else ""))
    sys.stdout.flush()
    return verify_bundle(bundle_dir, key)


def main(argv=None):
    args = build_parser().parse_args(argv)
    out = None
    try:
        bundle_dir = args.bundle or default_bundle_dir()
        checked = check_bundle_first(args, bundle_dir)
        inventory = load_inventory(args)
        bundle = Bundle.load(bundle_dir)
        opts = Options(force=args.force, selinux=args.selinux, firewalld=args.firewalld, timezone=args.timezone,
                       iso=args.iso, media=args.media, pod_subnet=args.pod_subnet,
                       control_plane_endpoint=args.control_plane_endpoint, serve_address=args.serve_address,
                       verify_timeout=args.verify_timeout)
        out = Output(root=args.root)
        if checked is not None:
            out.say("bundle OK (%d files): %s for %s/%s, Kubernetes %s, %s, %s" % (
                checked, bundle.name, bundle.os, bundle.arch, bundle.k8s_version, bundle.runtime, bundle.cni))
        runner = Runner(bundle, inventory, opts, out, root=args.root, gpg_key=args.key,
                        skip_verify=args.skip_bundle_check or checked is not None)
        if args.command == "plan":
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
        if out is not None and not e.log:
            e.log = os.path.join(out.shown_dir, "install.log")
        sys.stderr.write("error: %s\n" % e)
        return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; run ./install.py again to resume\n")
        return 130


def _confirm(prompt):
    try:
        return input(prompt).strip().lower() in ("y", "yes")
    except EOFError:
        return False
