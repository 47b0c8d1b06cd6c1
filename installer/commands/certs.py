"""./install.py certs check|renew|timer: certificate expiry of every host, renewal one control plane at a time,
and an optional monthly systemd timer (installer.certs, installer.certs_renew)."""

import json
import os
import sys

COMMAND = "certs"
DESCRIPTION = ("Certificates of the installed cluster. check: every host's kubeadm certificates, kubelet "
               "certificates, the cluster CA and the installer's registry CA and server certificate, with the days "
               "left (warning below 90; reads only). renew: kubeadm certs renew all on one control plane at a time, "
               "restarting its static pods one by one and waiting for each, then the registry's server certificate "
               "re-issued from the installer's CA and the registry restarted (resumable; `./install.py plan certs "
               "renew` shows what it would do). timer --enable|--disable: a monthly systemd timer on this host "
               "running `certs renew --within 90`.")
PLAN = True
CHECKS_BUNDLE = False
LOCKS = True


def add_arguments(parser, dry_run):
    parser.add_argument("action", nargs="?", choices=("renew",) if dry_run else ("check", "renew", "timer"),
                        help="check | renew | timer" if not dry_run else "renew")
    parser.add_argument("--within", type=int, metavar="DAYS", default=None,
                        help="renew: only hosts with a certificate to renew that has fewer than DAYS left")
    parser.add_argument("--warn-days", type=int, metavar="DAYS", default=90,
                        help="check: warn below this many days left (default 90)")
    parser.add_argument("--json", action="store_true", help="check: the rows as JSON (for machines)")
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--enable", action="store_true", help="timer: install and start the monthly timer")
    g.add_argument("--disable", action="store_true", help="timer: stop and remove it")
    parser.add_argument("--skip-unreachable", metavar="NAME[,NAME]", default="",
                        help="hosts that are down: not contacted")
    parser.add_argument("--bundle", metavar="DIR", default=None,
                        help="the installed bundle (default: next to install.py)")
    if not dry_run:
        parser.add_argument("-y", "--yes", action="store_true", help="do not ask before renewing")


def run(args):
    from installer.bundle import Bundle
    from installer.certs_renew import CertsCheck, RenewControlPlane, RenewRegistry, Timer
    from installer.cli import _confirm, resolve_recorded, skip_list
    from installer.errors import InstallerError
    from installer.operations import Operation
    from installer.output import Output
    from installer.record import ClusterRecord
    from installer.runner import Runner

    action = args.action
    if action is None:
        raise InstallerError("certs needs an action: check, renew or timer", hint="./install.py certs check")
    read_only = action == "check" or args.plan
    if action == "timer" and not (args.enable or args.disable):
        raise InstallerError("certs timer needs --enable or --disable", hint="./install.py certs timer --enable")
    out = Output(root=args.root, read_only=read_only, quiet=bool(args.json and action == "check"))
    bundle_dir, inventory, opts, data = resolve_recorded(args, out.say)
    runner = Runner(Bundle.load(bundle_dir), inventory, opts, out, root=args.root, skip_verify=True,
                    previous_record=data, parallel=args.parallel)
    ctx = runner.ctx
    ctx.skipped = skip_list(args, runner)
    ctx.certs_warn_days = args.warn_days
    ctx.certs_within = args.within
    from installer.errors import env_seconds
    ctx.pod_stop_timeout = env_seconds("AIRGAP_POD_STOP_TIMEOUT", 120)
    ctx.pod_start_timeout = env_seconds("AIRGAP_POD_START_TIMEOUT", 300)
    if action == "check":
        ctx.certs_json = args.json
        runner.execute(Operation("certs-check", [CertsCheck()], media=False, check_bundle=False, locks=False))
        rows = ctx.cert_rows
        if args.json:
            sys.stdout.write(json.dumps({"warnDays": args.warn_days, "certificates": rows}, indent=1) + "\n")
        else:
            bad = [r for r in rows if r["status"] != "ok"]
            out.say("certs check: %d certificate(s), %d below %d days or expired/missing" % (
                len(rows), len(bad), args.warn_days))
        return 0
    if action == "timer":
        ctx.timer_enable = bool(args.enable)
        ctx.certs_within_timer = args.within or 90
        ctx.install_py = os.path.join(bundle_dir, "install.py")
        phases = [Timer()]
    else:
        phases = [RenewControlPlane(), RenewRegistry()]
        if not args.plan and not args.yes and not _confirm(
                "certs renew restarts the control-plane pods of each control plane in turn and the registry. "
                "Continue? [y/N] "):
            return 1
    name = "certs %s" % action
    op = Operation(name, phases, dry_run=args.plan, media=False, check_bundle=False)
    if args.plan:
        changed = runner.execute(op)
        total = sum(len(v) for v in changed.values())
        out.say("plan %s: %d change(s)" % (name, total) if total else "plan %s: no changes" % name)
        return 0
    record = ClusterRecord(data)
    changed = runner.execute_recorded(op, record, lambda r: r.start(name, ctx, operation_id=runner.operation_id))
    runner.finish_record(record)
    total = sum(len(v) for v in changed.values())
    out.say("%s: %d change(s); logs in %s" % (name, total, out.shown_dir) if total else "%s: no changes" % name)
    return 0

