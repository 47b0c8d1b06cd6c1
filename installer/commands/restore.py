"""./install.py restore ARCHIVE (installer.restore)."""

import os
import shutil

COMMAND = "restore"
DESCRIPTION = ("Restore a backup written by ./install.py backup: the archive must match its .sha256 file (a "
               "changed or damaged one is refused before anything else), the cluster's CA must be the backup's "
               "(--new-cluster: a rebuilt cluster, the backup's PKI is put back too) and the backup's etcd members "
               "the cluster record's control planes. Then on every control plane: stop the control-plane pods, "
               "etcd snapshot restore into a new data directory with the member's name and peer URL, swap it in "
               "(the old one kept), start the pods, wait until etcd and the API answer. Journaled: a re-run "
               "resumes. `./install.py plan restore ARCHIVE` runs the checks and lists the steps.")
PLAN = True
CHECKS_BUNDLE = False
LOCKS = True


def add_arguments(parser, dry_run):
    parser.add_argument("archive", metavar="ARCHIVE", nargs="?",
                        help="an airgap-backup-*.tar.gz (its .sha256 beside it)")
    parser.add_argument("--new-cluster", action="store_true",
                        help="the hosts' CA differs from the backup's (a rebuilt cluster): restore anyway and put "
                             "the backup's /etc/kubernetes/pki back")
    parser.add_argument("--bundle", metavar="DIR", default=None,
                        help="the installed bundle (default: next to install.py); its etcd image gives etcdctl")
    if not dry_run:
        parser.add_argument("-y", "--yes", action="store_true", help="do not ask before restoring")


def run(args):
    from installer import backup_archive as archive
    from installer.bundle import Bundle
    from installer.cli import _confirm, resolve_recorded
    from installer.operations import Operation
    from installer.output import Output
    from installer.record import ClusterRecord
    from installer.restore import prepare_local, restore_phases
    from installer.runner import Runner

    from installer.errors import InstallerError
    if not args.archive:
        raise InstallerError("restore needs the backup archive",
                             hint="./install.py restore /var/backups/airgap-bundler/airgap-backup-....tar.gz")
    path = os.path.abspath(args.archive)
    sha = archive.verify(path)  # before anything else: a tampered archive changes nothing, contacts nobody
    members = archive.read(path)
    meta = archive.meta_of(members, path)
    out = Output(root=args.root, read_only=args.plan)
    out.say("backup %s: sha256 OK, taken %s on %s, etcd members %s" % (
        path, meta.get("created"), (meta.get("takenOn") or {}).get("node"),
        ", ".join(m["name"] for m in meta.get("members") or [])))
    bundle_dir, inventory, opts, data = resolve_recorded(args, out.say)
    bundle = Bundle.load(bundle_dir)
    runner = Runner(bundle, inventory, opts, out, root=args.root, skip_verify=True, previous_record=data,
                    parallel=args.parallel)
    ctx = runner.ctx
    ctx.restore = {"path": path, "sha256": sha, "meta": meta, "new_cluster": args.new_cluster}
    from installer.errors import env_seconds
    ctx.pod_stop_timeout = env_seconds("AIRGAP_POD_STOP_TIMEOUT", 120)
    ctx.pod_start_timeout = env_seconds("AIRGAP_POD_START_TIMEOUT", 300)
    op = Operation("restore", restore_phases(), dry_run=args.plan, media=False, check_bundle=False)
    if args.plan:
        changed = runner.execute(op)
        total = sum(len(v) for v in changed.values())
        out.say("plan restore: %d step(s)" % total if total else "plan restore: nothing left to do")
        return 0
    if not args.yes and not _confirm("restore stops the control plane on %d host(s) and replaces etcd's data with "
                                     "the backup's. Continue? [y/N] " % len(inventory.control_planes)):
        return 1
    tmp = prepare_local(ctx, members, bundle)
    try:
        record = ClusterRecord(data)
        changed = runner.execute_recorded(
            op, record, lambda r: r.start("restore %s" % os.path.basename(path), ctx, operation_id=runner.operation_id))
        runner.finish_record(record)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = sum(len(v) for v in changed.values())
    out.say("restore: %s restored on %d control plane(s); %d step(s)" % (
        os.path.basename(path), len(inventory.control_planes), total))
    return 0
