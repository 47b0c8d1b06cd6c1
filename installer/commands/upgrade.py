"""./install.py upgrade (and `plan upgrade`): the cluster in the record to this (newer) bundle's Kubernetes."""

COMMAND = "upgrade"
DESCRIPTION = ("Upgrade the installed cluster (from the cluster record) to this newer bundle's Kubernetes, one "
               "minor at a time through the bundle's hops, in kubeadm's order: preflight first (no downgrade, no "
               "skipped minor, nodes Ready, etcd, certificates, disk, images, disruption budgets), the new repo "
               "staged beside the old one, missing images pushed and pre-pulled, `kubeadm upgrade apply` on the "
               "first control plane, `kubeadm upgrade node` on the others one at a time, then the workers in "
               "batches (--max-unavailable); each node cordoned (annotated), drained (optionally its runtime and OS "
               "packages updated and the host rebooted when needed) and uncordoned. A failed upgrade stops with the "
               "node named and left cordoned; running it again resumes from the cluster's state. "
               "`./install.py plan upgrade` lists what would change and changes nothing.")
PLAN = True
CHECKS_BUNDLE = True
LOCKS = True


def add_arguments(parser, dry_run):
    from installer.cli import _positive
    parser.add_argument("--max-unavailable", type=_positive, metavar="N", default=1,
                        help="workers upgraded (drained) at once (default 1)")
    parser.add_argument("--drain-timeout", type=_positive, metavar="SECONDS", default=300,
                        help="give up draining a node after this long (default 300)")
    parser.add_argument("--skip-unreachable", metavar="NAME[,NAME]", default="",
                        help="nodes that are down: not contacted, left at their version")
    parser.add_argument("--bundle", metavar="DIR", default=None,
                        help="the unpacked NEWER bundle (default: next to install.py)")
    parser.add_argument("--ignore-pdb", action="store_true",
                        help="go on when a PodDisruptionBudget would hold a drain: those pods are deleted instead "
                             "of evicted (the preflight names them)")
    parser.add_argument("--with-runtime", action="store_true",
                        help="in each node's drained window also update the container runtime to the bundle's "
                             "version (past the pins, relocked), then reboot if needed")
    parser.add_argument("--with-os-updates", action="store_true",
                        help="in each node's drained window also `yum update` from the OS media and bundle "
                             "repositories only (pins excluded), then reboot if needed")
    parser.add_argument("--reboot-command", metavar="CMD", default="systemctl reboot",
                        help="how a node that needs it is rebooted (default: systemctl reboot); the host running "
                             "install.py is never rebooted by it, only named")
    if not dry_run:
        parser.add_argument("-y", "--yes", action="store_true", help="do not ask before upgrading")


def run(args):
    from installer.bundle import Bundle
    from installer.cli import _confirm, resolve_recorded, skip_list
    from installer.output import Output
    from installer.runner import Runner
    from installer.upgrade import run as upgrade
    notes = []
    bundle_dir, inventory, opts, previous = resolve_recorded(args, notes.append)
    bundle = Bundle.load(bundle_dir)
    out = Output(root=args.root, read_only=args.plan)
    if args.bundle_checked is not None:
        out.say("bundle OK (%d files): %s, Kubernetes %s" % (args.bundle_checked, bundle.name, bundle.k8s_version))
    for n in notes:
        out.say(n)
    runner = Runner(bundle, inventory, opts, out, root=args.root, skip_verify=True, previous_record=previous,
                    parallel=args.parallel)
    runner.ctx.skipped = skip_list(args, runner)
    if not args.plan and not args.yes and not _confirm(
            "upgrade will drain and upgrade every node of the cluster to Kubernetes %s. Continue? [y/N] "
            % bundle.k8s_version):
        return 1
    runner.ctx.ignore_pdb = args.ignore_pdb
    runner.ctx.with_runtime = args.with_runtime
    runner.ctx.with_os_updates = args.with_os_updates
    runner.ctx.reboot_command = args.reboot_command
    upgrade.run(runner, args.max_unavailable, args.drain_timeout, dry_run=args.plan)
    out.say("logs in %s" % out.shown_dir)
    return 0
