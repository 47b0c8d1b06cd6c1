"""The node join file: what a new host needs to join the cluster on its own (`./install.py node apply`), written
on the serving host by `node prepare` and read back by `node apply` (on the new host) and `node finish`.

It holds the cluster record, bundle.json (so the new host needs only install.py and installer/), a short-lived
bootstrap token with its expiry, the CA hash, the registry CA, the OS media layout and the serving address. The
token is a secret: the file is written 0600, atomically, and `node finish` deletes both the token and the file.
"""

import calendar
import json
import os
import time

from installer.errors import InstallerError

KIND = "airgap-bundler/node-join"
VERSION = 1
DEFAULT_NAME = "airgap-node-join.json"


def default_path():
    """Root's home: outside the bundle directory, whose SHA256SUMS check refuses files it does not list."""
    return os.path.join(os.path.expanduser("~"), DEFAULT_NAME)
# the JSON type of each field node prepare writes (a damaged file is refused naming the field)
TYPES = (("record", dict), ("bundle", dict), ("bundleSha256", str), ("token", str), ("caCertHash", str),
         ("registryCA", str), ("serveAddress", str), ("hosts", list), ("expires", str))
HOST_TYPES = (("role", str), ("user", str), ("port", int), ("key", str))
OPTIONAL_TYPES = (("gpgkeys", list), ("media", dict), ("apiEndpoint", str), ("ttl", str))
REQUIRED = ("record", "bundle", "bundleSha256", "token", "caCertHash", "registryCA", "serveAddress", "hosts",
            "expires")


def duration_seconds(text):
    """kubeadm's --ttl durations we accept: 90m, 2h, 1h30m, 3600s (the token lives that long)."""
    total, num = 0, ""
    for ch in (text or "").strip():
        if ch.isdigit():
            num += ch
        elif ch in "hms" and num:
            total += int(num) * {"h": 3600, "m": 60, "s": 1}[ch]
            num = ""
        else:
            num = "bad"
            break
    if num or total <= 0:
        raise InstallerError("--ttl %r is not a duration like 30m, 2h or 1h30m" % text,
                             hint="Give how long the join token may be used, e.g. --ttl 2h (the default)")
    return total


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def parse_iso(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def write(path, data):
    """Atomically, 0600 from the start (it holds a token)."""
    path = os.path.abspath(path)
    tmp = "%s.tmp-%d" % (path, os.getpid())
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(data, indent=1, sort_keys=True) + "\n")
        os.rename(tmp, path)
    except (IOError, OSError) as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise InstallerError("cannot write the join file %s (%s)" % (path, e.strerror or e),
                             hint="Give a writable path with --join FILE") from None
    return path


def load(path):
    """The join file, checked: a clear error naming the file and what is wrong (never a traceback)."""
    hint = "Run ./install.py node prepare --hosts ADDR on the serving host and copy the file it writes here"
    try:
        if os.path.exists(path) and not os.path.isfile(path):  # a FIFO would block the read
            raise IOError(0, "not a regular file")
        with open(path) as f:
            data = json.load(f)
    except (IOError, OSError) as e:
        raise InstallerError("cannot read the join file %s (%s)" % (path, e.strerror or e), hint=hint) from None
    except (ValueError, RecursionError) as e:
        raise InstallerError("the join file %s is not valid JSON (%s)" % (path, e), hint=hint) from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise InstallerError("%s is not a node join file (no \"kind\": %r)" % (path, KIND), hint=hint)
    if data.get("version") != VERSION:
        raise InstallerError("the join file %s has version %r; this installer reads version %d"
                             % (path, data.get("version"), VERSION),
                             hint="Use the install.py of the installed bundle on both hosts")
    missing = [k for k in REQUIRED if not data.get(k)]
    if missing:
        raise InstallerError("the join file %s lacks %s" % (path, ", ".join(missing)), hint=hint)
    wrong = [k for k, t in TYPES if not isinstance(data[k], t)]
    if wrong:
        raise InstallerError("the join file %s is damaged: %s %s not of the type node prepare writes"
                             % (path, ", ".join(wrong), "is" if len(wrong) == 1 else "are"), hint=hint)
    wrong = [k for k, t in OPTIONAL_TYPES if data.get(k) is not None and not isinstance(data[k], t)]
    if wrong:
        raise InstallerError("the join file %s is damaged: %s %s not of the type node prepare writes"
                             % (path, ", ".join(wrong), "is" if len(wrong) == 1 else "are"), hint=hint)
    from installer import record
    from installer.bundle import Bundle
    record.check(data["record"], "%s (its cluster record)" % path)
    Bundle.check(data["bundle"], "%s (its bundle.json)" % path)
    if not all(isinstance(h, dict) and isinstance(h.get("address"), str) and h["address"] and
               all(h.get(k) is None or isinstance(h[k], t) for k, t in HOST_TYPES) for h in data["hosts"]):
        raise InstallerError("the join file %s: \"hosts\" must be a list of {\"address\": ..., \"role\", \"user\", "
                             "\"port\" (a number), \"key\"}" % path, hint=hint)
    try:
        parse_iso(data["expires"])
    except (TypeError, ValueError):
        raise InstallerError("the join file %s: \"expires\" %r is not a UTC time like 2026-01-31T12:00:00Z"
                             % (path, data["expires"]), hint=hint) from None
    return data


def expired(data, now=None):
    return parse_iso(data["expires"]) <= (time.time() if now is None else now)


def token_id(data):
    return data["token"].split(".")[0]
