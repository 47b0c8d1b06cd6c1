"""The changes a phase can make. A phase's plan is a list of these; running it applies them in order.

Each change is idempotent by construction: apply() re-checks the host and returns False when there was
nothing to do, so a plan computed from slightly stale facts is still safe. Every change records in the
host's journal what reset needs to undo it.
"""

from installer.ssh import quote


class Change(object):
    kind = "change"

    def describe(self):
        raise NotImplementedError

    def apply(self, conn, journal):
        raise NotImplementedError

    def __repr__(self):
        return "<%s %s>" % (self.__class__.__name__, self.describe())

    def __eq__(self, other):
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self):
        return hash(self.describe())


class WriteFile(Change):
    """Make `path` contain exactly `content` (backing up the original the first time)."""

    kind = "file"

    def __init__(self, path, content, mode=0o644, why=None):
        self.path = path
        self.content = content if isinstance(content, str) else content.decode("utf-8")
        self.mode = mode
        self.why = why

    def describe(self):
        return "write %s%s" % (self.path, (" (%s)" % self.why) if self.why else "")

    def apply(self, conn, journal):
        current = conn.read_file(self.path)
        if current is not None and current.decode("utf-8", "replace") == self.content:
            return False
        journal.remember_file(self.path)
        conn.write_file(self.path, self.content, self.mode)
        return True


class PutFile(Change):
    """Copy the local file `src` (from the bundle) to `dest` on the host, unless `dest` already has its
    sha256 (idempotent by digest; no digest: always copied). Reset removes it or restores the original."""

    kind = "file"

    def __init__(self, src, dest, mode=0o644, sha256=None, title=None):
        self.src = src
        self.dest = dest
        self.mode = mode
        self.sha256 = sha256
        self.title = title

    def describe(self):
        return self.title or "install %s" % self.dest

    def current_digest(self, conn):
        res = conn.run("sha256sum %s 2>/dev/null" % quote(conn.path(self.dest)), check=False)
        return (res.stdout or "").split(" ", 1)[0].strip() if res.ok else None

    def apply(self, conn, journal):
        if self.sha256 and self.current_digest(conn) == self.sha256:
            return False
        journal.remember_file(self.dest)
        conn.put(self.src, self.dest, self.mode)
        return True


class MoveAside(Change):
    """Move a file into the installer's backup directory (restored by reset)."""

    kind = "file"

    def __init__(self, path, why=None):
        self.path = path
        self.why = why

    def describe(self):
        return "move %s aside%s" % (self.path, (" (%s)" % self.why) if self.why else "")

    def apply(self, conn, journal):
        if not conn.exists(self.path):
            return False
        journal.move_away(self.path)
        return True


class Command(Change):
    """Run a command. `undo` is recorded for reset; `unless` is a check command that skips it when true."""

    kind = "command"

    def __init__(self, cmd, title=None, undo=None, unless=None, timeout=None):
        self.cmd = cmd
        self.title = title
        self.undo = undo
        self.unless = unless
        self.timeout = timeout

    def describe(self):
        return self.title or ("run: %s" % self.cmd)

    def apply(self, conn, journal):
        if self.unless and conn.run(self.unless, check=False).ok:
            return False
        if self.undo:
            journal.add_undo(self.undo)
        conn.check(self.cmd, self.title, timeout=self.timeout)
        return True


# dnf where the host has it (EL8+; yum is only a link there, and some minimal images lack the link), else yum.
PKG_TOOL = '"$(command -v dnf || echo yum)"'


class InstallPackages(Change):
    """yum install from the air-gapped repos only; reset removes exactly what was installed."""

    kind = "packages"

    def __init__(self, names, repos=("airgap-*",), provides=False):
        self.names = sorted(set(names))
        self.repos = tuple(repos)
        # provides=True: the names are capabilities (iptables may come as iptables-nft); the read-only
        # `unless` check lets a dry run see that they are already there
        self.query = "rpm -q --whatprovides" if provides else "rpm -q"
        self.unless = ("%s %s >/dev/null 2>&1" % (self.query, " ".join(quote(n) for n in self.names))
                       if provides else None)

    def describe(self):
        return "install packages: %s" % " ".join(self.names)

    def command(self):
        from installer import pins  # pins builds on this module
        enable = " ".join("--enablerepo=%s" % quote(r) for r in self.repos)
        flags = pins.install_flags() + " " if any(pins.is_pinned(n) for n in self.names) else ""
        return "%s -y --disablerepo='*' %s install %s%s" % (PKG_TOOL, enable, flags,
                                                            " ".join(quote(n) for n in self.names))

    def apply(self, conn, journal):
        missing = [n for n in self.names if not conn.run("%s %s" % (self.query, quote(n)), check=False).ok]
        if not missing:
            return False
        journal.add_packages(missing)
        conn.check(InstallPackages(missing, self.repos).command(), "installing packages", timeout=1800)
        return True


class Service(Change):
    """Enable and start (or restart) a systemd unit; reset disables and stops it."""

    kind = "service"

    def __init__(self, name, restart=False, reload_units=False):
        self.name = name
        self.restart = restart
        self.reload_units = reload_units

    def describe(self):
        return "%s service %s" % ("restart" if self.restart else "enable and start", self.name)

    def apply(self, conn, journal):
        """False when there was nothing to do: not a restart, and the unit is active and enabled already."""
        name = quote(self.name)
        active = conn.run("systemctl is-active -q %s" % name, check=False).ok
        enabled = conn.run("systemctl is-enabled -q %s" % name, check=False).ok
        # Reset must leave the service as it was found: stop/disable only what was not running/enabled
        # before, and restart (after the files are restored) what was running.
        journal.first_touch_of_service(self.name, active, enabled)
        if not self.restart and not self.reload_units and active and enabled:
            return False
        pre = "systemctl daemon-reload && " if self.reload_units else ""
        if self.restart:
            conn.check("%ssystemctl enable %s && systemctl restart %s" % (pre, quote(self.name), quote(self.name)),
                       "restarting %s" % self.name)
        else:
            conn.check("%ssystemctl enable --now %s" % (pre, quote(self.name)), "starting %s" % self.name)
        return True


class Callback(Change):
    """A step done by the installer process itself (e.g. pushing images over the registry API)."""

    kind = "callback"

    def __init__(self, title, func):
        self.title = title
        self.func = func

    def describe(self):
        return self.title

    def apply(self, conn, journal):
        return bool(self.func(conn, journal))

    def __eq__(self, other):  # the function is a fresh closure in every plan: the title says what it does
        return type(self) is type(other) and self.title == other.title

    __hash__ = Change.__hash__
