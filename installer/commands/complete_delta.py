"""./install.py complete-delta: check that the site holds what this delta bundle left out, then put it in."""

import os

from installer import delta
from installer.runner import default_bundle_dir
from installer.verify_bundle import verify as verify_bundle

COMMAND = "complete-delta"
DESCRIPTION = ("Complete a delta bundle (bundler build --delta-from) from this site, the serving host: every RPM, "
               "image blob and file it left out is looked up by content digest (the served repositories, the "
               "registry storage, the installed bundle's files/), checked, and copied or hard-linked into this "
               "bundle directory; then the whole bundle is checked against SHA256SUMS. If the site lacks any of "
               "them, it names each and exits 2 without changing anything. install, plan, add-node and the other "
               "commands that use the bundle do the same on their own first. `plan complete-delta` only checks.")
PLAN = True
CHECKS_BUNDLE = True
LOCKS = False


def add_arguments(parser, dry_run):
    parser.add_argument("--bundle", metavar="DIR", default=None,
                        help="the unpacked delta bundle (default: next to install.py)")


def run(args):
    bundle_dir = os.path.abspath(args.bundle or default_bundle_dir())
    items = delta.omitted_items(bundle_dir)
    if not items:
        print("%s is a whole bundle (not a delta): nothing to complete" % bundle_dir)
        return 0
    verified = getattr(args, "bundle_checked", None) is not None  # the files present were just hashed
    if args.plan:
        todo, present = delta.check(bundle_dir, args.root, verified)
        print("plan complete-delta: all %d item(s) the delta left out are on this site; %d to copy in, %d already "
              "in place (changes nothing)" % (len(items), len(todo), present))
        return 0
    done, present = delta.complete(bundle_dir, args.root, verified=verified)
    checked = verify_bundle(bundle_dir)
    print("delta bundle completed: %d item(s) copied in from this site, %d already in place; the whole bundle "
          "(%d files) matches SHA256SUMS" % (done, present, checked))
    return 0
