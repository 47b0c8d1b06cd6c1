"""./install.py doctor: the runbook of a broken cluster, automated and read only (installer.doctor)."""

import sys

COMMAND = "doctor"
DESCRIPTION = ("Diagnose the installed cluster and change nothing: findings in runbook order (cluster: API, etcd, "
               "certificates, static pods, version skew, registry; nodes: conditions, kubelet and runtime, the "
               "kubelet journal classified, CNI, disk, swap, clock, reachability; --pod: a pod's events and "
               "image, crash or scheduling trouble; --service/--dns: endpoints, targetPort, kube-proxy's rules, "
               "conntrack, lookups), each with an id, its evidence and the fix. Exit code 0: no error "
               "finding; 1: error findings (or doctor could not run); 2: bad command line.")
PLAN = False
CHECKS_BUNDLE = False
LOCKS = False


def add_arguments(parser, dry_run):
    parser.add_argument("--pod", metavar="NS/NAME", help="also diagnose this pod")
    parser.add_argument("--service", metavar="NS/NAME", help="also diagnose this service (endpoints, targetPort, "
                        "kube-proxy rules on every node, conntrack)")
    parser.add_argument("--dns", action="store_true", help="also diagnose cluster DNS (kube-system/kube-dns, "
                        "the CoreDNS pods, lookups from every host)")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON (docs/installer.md has "
                        "the schema) instead of text")
    parser.add_argument("--collect", metavar="FILE", help="also write an offline support bundle (tar.gz, 0600)")
    parser.add_argument("--skip-unreachable", metavar="NAME[,NAME]", default="",
                        help="hosts that are down: not contacted (reported as skipped)")
    parser.add_argument("--bundle", metavar="DIR", default=None,
                        help="the installed bundle (default: next to install.py)")


def run(args):
    from installer.doctor import collect
    from installer.doctor import run as doctor
    for opt in ("pod", "service"):
        v = getattr(args, opt)
        if v is not None and (not v.strip("/") or v.count("/") > 1):
            from installer.errors import InstallerError
            raise InstallerError("--%s %r: expected NAMESPACE/NAME (or NAME in the default namespace)" % (opt, v),
                                 hint="e.g. --%s kube-system/%s" % (opt, "coredns-0" if opt == "pod" else "kube-dns"))
    if args.collect:
        _check_collect(args.collect)
    notes = sys.stderr if args.json else sys.stdout

    def say(text):
        notes.write(text + "\n")
        notes.flush()

    env, report, out = doctor.run(args, say)
    if args.collect:
        path, n = collect.collect(env, report, args.collect, args.root)
        report.cluster["collect"] = path
        say("support bundle: %s (%d files; MANIFEST.json lists them)" % (path, n))
    if args.json:
        sys.stdout.write(report.to_json() + "\n")
    else:
        sys.stdout.write(report.render() + "\n")
    sys.stdout.flush()
    return report.exit_code


def _check_collect(path):
    """--collect FILE: refused before the diagnosis when it could not be written at its end (its directory is
    missing, or FILE is a directory, a FIFO or a device: the support bundle replaces only a regular file)."""
    import os
    from installer.errors import InstallerError
    path = os.path.abspath(path)
    if not os.path.isdir(os.path.dirname(path)):
        raise InstallerError("--collect %s: the directory %s does not exist" % (path, os.path.dirname(path)),
                             hint="Create it or give another path; nothing was checked yet")
    if os.path.exists(path) and not os.path.isfile(path):
        raise InstallerError("--collect %s exists and is not a regular file" % path,
                             hint="Give the path of a new file, e.g. --collect /root/doctor.tar.gz")
