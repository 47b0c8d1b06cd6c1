"""media + repo: local yum repos from the OS media and the bundle, served to the other hosts over HTTP."""

from installer import constants as C
from installer import pins
from installer.changes import PKG_TOOL, Command, MoveAside, Service, WriteFile
from installer.errors import InstallerError
from installer.phases.base import Phase, firewall_change
from installer.render import systemd, yumrepo
from installer.ssh import quote

OUR_REPO_FILES = (yumrepo.BUNDLE_REPO_FILE, yumrepo.MEDIA_REPO_FILE)
REPO_UNIT = systemd.UNIT_DIR + "/airgap-repo.service"
MOUNT_UNIT = systemd.UNIT_DIR + "/opt-airgap-media.mount"
MARKER = C.REPO_COPY + "/.airgap-bundle-id"
MODULES_D = "/etc/dnf/modules.d"


def module_file(name):
    return "%s/%s.module" % (MODULES_D, name)


def module_state(text):
    """(stream, enabled) from dnf's /etc/dnf/modules.d/NAME.module (state=enabled; old dnf: enabled=1)."""
    kv = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            kv[key.strip()] = value.strip()
    enabled = kv.get("state") == "enabled" or kv.get("enabled", "").lower() in ("1", "true")
    return kv.get("stream") or None, enabled


def enable_module_streams(ctx, host, facts):
    """`dnf module enable` of exactly the streams the bundle was solved with (bundle.json `modules`), so dnf on
    the host hides and shows the same packages the builder's solver did. Planned in host_prep, the first phase
    after every host's repo files (and the serving host's repo server) exist."""
    wanted = ctx.bundle.data.get("modules") or []
    todo, clash = [], []
    for spec in wanted:
        name, _, stream = spec.partition(":")
        have, enabled = module_state(facts.file(module_file(name)))
        if enabled and have == stream:
            continue
        if enabled and have:
            clash.append((name, have))
        todo.append(spec)
    if clash:
        raise InstallerError(
            "the bundle was solved with module streams %s, but %s has %s enabled"
            % (", ".join(wanted), host.label, ", ".join("%s:%s" % c for c in clash)),
            host=host.label, phase="host_prep",
            hint="dnf cannot switch an enabled stream: if nothing installed needs it, run `dnf module reset %s` on "
                 "that host and install again; otherwise rebuild the bundle with that stream in spec.modules"
                 % " ".join(name for name, _ in clash))
    if not todo:
        return []
    return [Command("%s -y --disablerepo='*' --enablerepo='airgap-*' module enable %s"
                    % (PKG_TOOL, " ".join(quote(s) for s in todo)),
                    title="enable module streams %s (the streams the bundle was solved with)" % ", ".join(todo),
                    undo="%s -y --disablerepo='*' module reset %s"
                         % (PKG_TOOL, " ".join(quote(s.split(":")[0]) for s in todo)))]


def media_keys(facts):
    """The OS vendor keys already on the host (from the release package), for gpgcheck of the media."""
    names = facts.dirs.get("/etc/pki/rpm-gpg", [])
    return ["file:///etc/pki/rpm-gpg/%s" % n for n in names if n.startswith("RPM-GPG-KEY")]


class MediaRepo(Phase):
    name = "media_repo"
    title = "OS media and bundle repositories"

    def hosts(self, ctx):
        return ctx.all_hosts

    def watched_files(self, ctx, host):
        modules = [module_file(s.split(":")[0]) for s in ctx.bundle.data.get("modules") or []]
        return list(OUR_REPO_FILES) + [REPO_UNIT, MOUNT_UNIT, MARKER] + modules

    def watched_dirs(self, ctx, host):
        return [yumrepo.REPO_DIR, "/etc/pki/rpm-gpg"]

    def repo_files(self, ctx, host, facts):
        b = ctx.bundle
        serving = ctx.is_serve_host(host)
        if serving:
            bundle_url = "file://%s" % C.REPO_COPY
            media_url = "file://%s" % C.MEDIA_DIR
        else:
            bundle_url = "%s/repo" % ctx.repo_url
            media_url = "%s/media" % ctx.repo_url
        bundle_keys = ["%s/gpgkeys/%s" % (bundle_url, k) for k in b.gpgkeys()]
        mkeys = media_keys(facts)
        sections = []
        for rid, name, sub in yumrepo.media_subdirs(b.el_major, (ctx.media or {}).get("repos")):
            sections.append((rid, name, media_url + ("/" + sub if sub else ""), mkeys))
        return {
            yumrepo.BUNDLE_REPO_FILE: yumrepo.bundle_repo(bundle_url, bundle_keys, b.el_major,
                                                          exclude=pins.exclude_value(b)),
            yumrepo.MEDIA_REPO_FILE: yumrepo.media_repo(sections),
        }

    def plan(self, ctx, host, facts):
        changes = []
        if ctx.is_serve_host(host):
            changes += self.plan_media(ctx, facts)
            if facts.file(MARKER) != ctx.bundle_id + "\n":
                changes.append(Command(
                    "mkdir -p {d} && cp -a {src}/. {d}/ && chmod -R a+rX {root}".format(
                        d=quote(C.REPO_COPY), src=quote(ctx.bundle.path("repo")), root=quote(C.SERVE_ROOT)),
                    title="copy the bundle repository to %s" % C.REPO_COPY, undo="rm -rf %s" % C.SERVE_ROOT))
                changes.append(WriteFile(MARKER, ctx.bundle_id + "\n"))
        for name in facts.dirs.get(yumrepo.REPO_DIR, []):
            path = "%s/%s" % (yumrepo.REPO_DIR, name)
            if name.endswith(".repo") and path not in OUR_REPO_FILES:
                changes.append(MoveAside(path, why="its repositories are unreachable offline"))
        for path, content in sorted(self.repo_files(ctx, host, facts).items()):
            if facts.file(path) != content:
                changes.append(WriteFile(path, content))
        if ctx.is_serve_host(host):
            unit = systemd.repo_server_unit(ctx.serve_python, ctx.serve_address, C.REPO_PORT, C.SERVE_ROOT)
            if facts.file(REPO_UNIT) != unit:
                changes.append(WriteFile(REPO_UNIT, unit))
                changes.append(Service("airgap-repo", restart=True, reload_units=True))
            elif not facts.service("airgap-repo").get("active"):
                changes.append(Service("airgap-repo"))
            changes += firewall_change(facts, ["%d/tcp" % C.REPO_PORT], ctx.options.firewalld, "repo server")
        return changes

    def plan_media(self, ctx, facts):
        media = ctx.media or {}
        kind = media.get("kind")
        if kind in ("iso", "optical"):
            unit = systemd.media_mount_unit(media["path"], C.MEDIA_DIR, iso=(kind == "iso"))
            out = []
            if facts.file(MOUNT_UNIT) != unit:
                out.append(WriteFile(MOUNT_UNIT, unit, why="mount the OS media at boot"))
                out.append(Command("systemctl daemon-reload && systemctl enable opt-airgap-media.mount && "
                                   "systemctl restart opt-airgap-media.mount",
                                   title="mount %s on %s" % (media["path"], C.MEDIA_DIR),
                                   undo="systemctl disable --now opt-airgap-media.mount"))
            elif not facts.service("opt-airgap-media.mount").get("active"):
                out.append(Command("systemctl start opt-airgap-media.mount",
                                   title="mount %s on %s" % (media["path"], C.MEDIA_DIR)))
            return out
        if kind == "dir":
            return [Command("mkdir -p {root} && ln -sfn {src} {dst}".format(
                root=quote(C.SERVE_ROOT), src=quote(media["path"]), dst=quote(C.MEDIA_DIR)),
                title="link %s to %s" % (C.MEDIA_DIR, media["path"]),
                unless='[ "$(readlink %s)" = %s ]' % (quote(C.MEDIA_DIR), quote(media["path"])),
                undo="rm -f %s" % quote(C.MEDIA_DIR))]
        return []
