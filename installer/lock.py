"""The host lock: one operation at a time changes a cluster. Kept on the serving host (the host running
install.py), next to the cluster record, as /etc/airgap-bundler/lock holding the operation, its id, the
host and the PID. A second operation refuses, naming the holder; a lock whose PID is gone (a killed run)
is reported as stale and `--abort` releases it."""

import errno
import json
import os
import socket
import time
import uuid

from installer.errors import InstallerError

LOCK = "/etc/airgap-bundler/lock"


def lock_path(root="/"):
    return os.path.join(root or "/", LOCK.lstrip("/"))


def pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError) as e:
        return getattr(e, "errno", None) == errno.EPERM  # exists, owned by someone else
    return True


def read(root="/"):
    """The lock's content (dict) or None when there is no lock; an unreadable lock is reported as such."""
    path = lock_path(root)
    if os.path.exists(path) and not os.path.isfile(path):  # a FIFO would block the read
        return {"unreadable": "%s is not a regular file" % path}
    try:
        with open(path) as f:
            data = json.load(f)
    except (IOError, OSError) as e:
        if e.errno == errno.ENOENT:
            return None
        return {"unreadable": str(e)}
    except ValueError as e:
        return {"unreadable": str(e)}
    if not isinstance(data, dict):
        return {"unreadable": "not a JSON object"}
    if not isinstance(data.get("host"), str) or not isinstance(data.get("pid"), int):
        return {"unreadable": "no host and PID of its holder"}
    return data


def is_stale(data):
    """A lock taken on this host by a process that no longer runs (or an unreadable one)."""
    if data.get("unreadable"):
        return True
    return data.get("host") == socket.gethostname() and not pid_alive(data.get("pid"))


def describe(data):
    if data.get("unreadable"):
        return "an unreadable lock (%s)" % data["unreadable"]
    return "operation %s (id %s) started %s on %s by PID %s" % (
        data.get("operation"), data.get("id"), data.get("started"), data.get("host"), data.get("pid"))


class HostLock(object):
    """acquire() once before an operation changes anything; release() at its end (also after a failure)."""

    def __init__(self, operation, root="/"):
        self.operation = operation
        self.root = root or "/"
        self.id = uuid.uuid4().hex[:12]
        self.held = False

    def acquire(self):
        path = lock_path(self.root)
        data = {"operation": self.operation, "id": self.id, "host": socket.gethostname(), "pid": os.getpid(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        d = os.path.dirname(path)
        if not os.path.isdir(d):
            os.makedirs(d, 0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise InstallerError("cannot create the lock %s (%s)" % (path, e.strerror)) from None
            raise busy_error(read(self.root) or {"unreadable": "vanished"}, path, self.operation) from None
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(data, sort_keys=True) + "\n")
        self.held = True
        return self.id

    def release(self):
        if not self.held:
            return
        held = read(self.root)
        if held is not None and held.get("id") == self.id:
            try:
                os.unlink(lock_path(self.root))
            except OSError:
                pass
        self.held = False


def busy_error(data, path, operation):
    if is_stale(data):
        return InstallerError(
            "%s cannot start: a stale lock %s is left by %s, which no longer runs (it was interrupted)"
            % (operation, path, describe(data)),
            hint="Check the cluster (./install.py status), then release the lock with ./install.py --abort and "
                 "run the command again")
    return InstallerError("%s cannot start: another operation holds the lock %s: %s"
                          % (operation, path, describe(data)),
                          hint="Wait until it ends (one operation at a time changes the cluster)")


def abort(root="/"):
    """--abort: release a stale lock. Returns a sentence saying what was done; refuses a live holder."""
    data = read(root)
    path = lock_path(root)
    if data is None:
        return "no lock %s: nothing to release" % path
    if not is_stale(data):
        if data.get("host") != socket.gethostname():  # renamed host, or a copied /etc: its PID says nothing here
            raise InstallerError("the lock %s was taken by %s, on another host name than this one (%s): whether "
                                 "it still runs cannot be told from here" % (path, describe(data),
                                                                             socket.gethostname()),
                                 hint="If no operation runs on %s (or this host was renamed), remove %s by hand"
                                      % (data.get("host"), path))
        raise InstallerError("the lock %s is held by %s, which is still running" % (path, describe(data)),
                             hint="Stop that operation first (Ctrl-C in its terminal), or wait until it ends")
    try:
        os.unlink(path)
    except OSError as e:
        raise InstallerError("cannot release the lock %s (%s)" % (path, e.strerror or e),
                             hint="It is not a file the installer wrote: check it and remove it by hand") from None
    return "released the stale lock %s (%s)" % (path, describe(data))
