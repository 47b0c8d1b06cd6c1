"""./install.py push-images --to HOST[:PORT][/PREFIX]: copy the bundle's images into any registry (Harbor,
distribution, ...), like `kk artifact images push` or `hauler store copy`. Only what the registry lacks is
sent (a HEAD before every blob and manifest), manifests and indexes keep their exact bytes (digests and
multi-arch survive), tags are kept; an interrupted push is resumed by running it again. Runs on this host
only and changes no cluster host; `./install.py plan push-images ...` lists what is missing."""

import os
import sys

COMMAND = "push-images"
DESCRIPTION = ("Push the bundle's images into a registry of yours (Harbor, distribution, ...) as "
               "HOST[:PORT][/PREFIX]/<upstream host>/<repository>:<tag>: only missing blobs and manifests are "
               "sent, by digest, manifests and indexes byte for byte, tags kept; re-run to resume. "
               "`./install.py plan push-images --to ...` lists what is missing and sends nothing.")
PLAN = True
CHECKS_BUNDLE = True
LOCKS = False  # it changes no cluster host


def add_arguments(parser, dry_run):
    g = parser.add_argument_group("the registry")
    g.add_argument("--to", metavar="HOST[:PORT][/PREFIX]", required=True,
                   help="the registry (HTTPS); PREFIX is a Harbor project or a path the images go under")
    g.add_argument("--ca", metavar="FILE", help="CA certificate (PEM) that signed the registry's certificate "
                                                "(default: the system trust store)")
    g.add_argument("--credentials", metavar="FILE",
                   help="user:password on one line, or a Docker config.json with an auths entry for the registry "
                        "(never printed or logged)")
    g.add_argument("--image", metavar="REF", action="append", default=[],
                   help="push only this image (as bundle.json names it; repeatable)")
    parser.add_argument("--bundle", metavar="DIR", default=None,
                        help="the unpacked bundle (default: next to install.py)")


def _say(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _mb(n):
    return "%.1f MB" % (n / 1e6)


def run(args):
    from installer.bundle import Bundle
    from installer.errors import InstallerError
    from installer.extregistry import OwnRegistry
    from installer.registry_push import Layout, Pusher
    from installer.runner import default_bundle_dir

    bundle = Bundle.load(os.path.abspath(args.bundle or default_bundle_dir()))
    own = OwnRegistry(args.to, args.ca, args.credentials, options=("--to", "--ca", "--credentials"))
    layout = Layout(bundle.path("images"))
    names = set(ref for ref, _ in layout.images())
    unknown = [r for r in args.image if r not in names]
    if unknown:
        raise InstallerError("--image %s: not in this bundle's images" % ", ".join(unknown),
                             hint="Name images as bundle.json lists them (e.g. %s)"
                                  % (sorted(names)[0] if names else "registry.k8s.io/pause:3.9"))
    _say("registry %s%s%s" % (own.target.path, ", CA %s" % own.ca_fingerprint if own.ca else "",
                              ", credentials from %s" % args.credentials if args.credentials else ""))
    reg = own.preflight(push=not args.plan)
    _say("registry reachable, TLS trusted%s" % ("" if args.plan else ", push allowed under %s/"
                                                 % (own.target.prefix or "the root")))
    pusher = Pusher(reg, layout, prefix=own.target.prefix, progress=_say)
    docker_bare = bundle.runtime == "docker"
    only = set(args.image) or None
    if args.plan:
        missing = pusher.missing(docker_bare=docker_bare, only=only)
        blobs = {}
        for ref, target, manifests, need in missing:
            blobs.update(need)
            state = ("%d manifest(s), %d blob(s), %s missing" % (len(manifests), len(need), _mb(sum(need.values())))
                     if manifests or need else "present")
            _say("  %s -> %s/%s: %s" % (ref, own.target.address, target, state))
        todo = [m for m in missing if m[2] or m[3]]
        _say("plan push-images: %d of %d image(s) to push, %d blob(s) (%s) to upload" % (
            len(todo), len(missing), len(blobs), _mb(sum(blobs.values()))) if todo else
            "plan push-images: every image is already in %s" % own.target.path)
        return 0
    pusher.push_all(docker_bare=docker_bare, only=only)
    s = reg.stats
    _say("push-images: %d manifest(s) written, %d blob(s) uploaded (%s), %d already present, %d mounted; "
         "images are at %s/<upstream host>/<repository>" % (
             s["manifests"], s["blobs_uploaded"], _mb(s["bytes_uploaded"]), s["blobs_skipped"], s["blobs_mounted"],
             own.target.path))
    return 0
