"""./install.py backup [-o DIR] [--keep N] (installer.backup)."""

import os
import uuid

COMMAND = "backup"
DESCRIPTION = ("Back up the installed cluster: an etcd snapshot taken with the etcdctl of the bundle's etcd image, "
               "the control plane's /etc/kubernetes/pki, the kubeadm configuration, every host's installer journal "
               "and the cluster record, in one archive (mode 0600, sha256 file beside it) on this host (-o DIR, "
               "default /var/backups/airgap-bundler) and a copy on the control plane (/var/lib/airgap-installer/"
               "backups). --keep N keeps the N newest at both ends. Restore with ./install.py restore ARCHIVE.")
PLAN = True
CHECKS_BUNDLE = False
LOCKS = True


def add_arguments(parser, dry_run):
    parser.add_argument("-o", "--output", metavar="DIR", default=None,
                        help="where the archive goes on this host (default /var/backups/airgap-bundler)")
    parser.add_argument("--keep", type=int, metavar="N", default=None,
                        help="keep only the N newest backups here and on the control plane")
    parser.add_argument("--skip-unreachable", metavar="NAME[,NAME]", default="",
                        help="hosts that are down: not contacted (their journals are not in the archive)")
    parser.add_argument("--bundle", metavar="DIR", default=None,
                        help="the installed bundle (default: next to install.py); its etcd image gives etcdctl")


def run(args):
    from installer import backup_archive as archive
    from installer.backup import DEFAULT_DIR, TakeBackup
    from installer.bundle import Bundle
    from installer.cli import resolve_recorded, skip_list
    from installer.errors import InstallerError
    from installer.operations import Operation
    from installer.output import Output
    from installer.record import ClusterRecord
    from installer.runner import Runner

    if args.keep is not None and args.keep < 1:
        raise InstallerError("--keep %d: keep at least 1 backup" % args.keep, hint="--keep 7 keeps the 7 newest")
    out = Output(root=args.root, read_only=args.plan)
    bundle_dir, inventory, opts, data = resolve_recorded(args, out.say)
    runner = Runner(Bundle.load(bundle_dir), inventory, opts, out, root=args.root, skip_verify=True,
                    previous_record=data, parallel=args.parallel)
    ctx = runner.ctx
    ctx.skipped = skip_list(args, runner)
    directory = os.path.abspath(args.output) if args.output else os.path.join(args.root, DEFAULT_DIR.lstrip("/"))
    unique = uuid.uuid4().hex[:12]
    ctx.backup = {"dir": directory, "keep": args.keep, "id": unique,
                  "name": archive.archive_name((data.get("bundle") or {}).get("name"), unique[:6])}
    op = Operation("backup", [TakeBackup()], dry_run=args.plan, media=False, check_bundle=False)
    if args.plan:
        changed = runner.execute(op)
        out.say("plan backup: %d step(s)" % sum(len(v) for v in changed.values()))
        return 0
    record = ClusterRecord(data)
    runner.execute_recorded(op, record, lambda r: r.start("backup", ctx, operation_id=runner.operation_id))
    runner.finish_record(record)
    out.say("backup: %s (sha256 %s)" % (ctx.backup["path"], ctx.backup["sha256"]))
    return 0
