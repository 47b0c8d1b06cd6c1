"""Running commands and moving files on hosts: the system ssh/scp with ControlMaster, or locally.

Both connection kinds (Local, SSH) implement the Connection interface:

* ``run(cmd, input=None, check=True, timeout=None, binary=False)`` runs a POSIX sh command line as root
  (through ``sudo -n`` when the login user is not root) and returns a Result;
* ``put(local_path, remote_path, mode)`` copies a file of the host running install.py onto the host;
* ``is_local``: True for the host running install.py (its files can be reached directly, e.g. the
  registry storage is laid out without HTTP);

and inherit from it ``check``, ``read_file``, ``write_file`` and ``exists``, built on ``run``.

Every path goes through ``conn.path()``, which prefixes the connection's *root* (``/`` on real hosts, a
temporary directory in tests), so the file operations of every phase can run for real in a sandbox.
"""

import os
import shlex
import shutil
import subprocess
import tempfile
import threading

from installer.errors import InstallerError

SSH_TIMEOUT = 15


class Result(object):
    def __init__(self, cmd, rc, stdout, stderr):
        self.cmd = cmd
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    @property
    def ok(self):
        return self.rc == 0

    def __repr__(self):
        return "Result(rc=%r, cmd=%r)" % (self.rc, self.cmd)


def quote(s):
    return shlex.quote(str(s))


class Connection(object):
    """The interface every connection implements (run, put, is_local, close) and the file helpers built on
    run()."""

    root = "/"
    label = "?"
    log = None  # callable(str) that appends to the host's log
    is_local = False

    def run(self, cmd, input=None, check=True, timeout=None, binary=False):
        raise NotImplementedError

    def put(self, local_path, remote_path, mode=0o644):
        raise NotImplementedError

    def close(self):
        pass

    def path(self, p):
        """The real location of absolute path `p` under this connection's root."""
        if self.root in ("/", "", None):
            return p
        return os.path.join(self.root, p.lstrip("/"))

    def _log(self, text):
        if self.log:
            self.log(text)

    def _execute(self, argv, cmd, input, check, timeout, binary):
        """Run argv (which runs cmd), log it, and turn failures into InstallerErrors naming cmd."""
        self._log("$ %s" % cmd)
        if input is not None and not isinstance(input, bytes):
            input = input.encode("utf-8")
        try:
            p = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as e:
            raise self._spawn_failed(e) from None
        try:
            out, err = p.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise InstallerError("command timed out after %ss" % timeout, host=self.label, command=cmd) from None
        res = Result(cmd, p.returncode, out if binary else _text(out), _text(err))
        if res.stderr:
            self._log(res.stderr.rstrip())
        transport = self._transport_error(res)
        if transport is not None:
            raise transport
        if check and not res.ok:
            raise InstallerError("a command failed with exit code %d" % res.rc, host=self.label, command=cmd,
                                 stderr=res.stderr or _text(out))
        return res

    def _spawn_failed(self, error):
        return InstallerError("cannot run %s" % error, host=self.label)

    def _transport_error(self, res):
        """An error of the connection itself (not of the command), or None."""
        return None

    def check(self, cmd, what=None, **kw):
        res = self.run(cmd, check=False, **kw)
        if not res.ok:
            raise InstallerError(
                "%s failed with exit code %d" % (what or "a command", res.rc),
                host=self.label, command=cmd, stderr=res.stderr or res.stdout)
        return res

    def exists(self, p):
        return self.run("test -e %s" % quote(self.path(p)), check=False).ok

    def read_file(self, p):
        """File content as bytes, or None when the file does not exist."""
        res = self.run("if [ -f {0} ]; then cat {0}; else exit 3; fi".format(quote(self.path(p))),
                       check=False, binary=True)
        if res.rc == 3:
            return None
        if not res.ok:
            raise InstallerError("cannot read %s" % p, host=self.label, stderr=_text(res.stderr))
        return res.stdout

    def write_file(self, p, data, mode=0o644):
        """Write atomically (temp file + rename in the same directory), creating parent directories."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        real = self.path(p)
        d = os.path.dirname(real)
        tmp = "%s/.%s.airgap-tmp" % (d, os.path.basename(real))
        cmd = "mkdir -p {d} && cat > {t} && chmod {m:o} {t} && mv -f {t} {r}".format(
            d=quote(d), t=quote(tmp), m=mode, r=quote(real))
        self.check(cmd, "writing %s" % p, input=data)


def _text(b):
    if isinstance(b, bytes):
        return b.decode("utf-8", "replace")
    return b


class Local(Connection):
    """The host running install.py. `root` redirects every file path (tests use a temp dir)."""

    is_local = True

    def __init__(self, label="localhost", root="/", log=None):
        self.label = label
        self.root = root or "/"
        self.log = log
        self.is_root = os.geteuid() == 0

    def run(self, cmd, input=None, check=True, timeout=None, binary=False):
        return self._execute(["/bin/sh", "-c", cmd], cmd, input, check, timeout, binary)

    def put(self, local_path, remote_path, mode=0o644):
        real = self.path(remote_path)
        if os.path.abspath(local_path) == os.path.abspath(real):
            return
        d = os.path.dirname(real)
        if not os.path.isdir(d):
            os.makedirs(d)
        tmp = real + ".airgap-tmp"
        shutil.copyfile(local_path, tmp)
        os.chmod(tmp, mode)
        os.rename(tmp, real)


_ssh_version = {}
_ssh_version_lock = threading.Lock()


def ssh_supports_accept_new():
    """Whether the ssh client knows StrictHostKeyChecking=accept-new (OpenSSH 7.6+); asked once per process."""
    with _ssh_version_lock:
        if "accept_new" not in _ssh_version:
            _ssh_version["accept_new"] = _ask_ssh_accept_new()
        return _ssh_version["accept_new"]


def _ask_ssh_accept_new():
    try:
        p = subprocess.Popen(["ssh", "-V"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = p.communicate()
    except OSError:
        return False
    text = _text(err + out)
    # "OpenSSH_7.4p1, ..." -> accept-new needs 7.6+
    try:
        ver = text.split("OpenSSH_", 1)[1].split("p", 1)[0].split(",", 1)[0]
        major, minor = ver.split(".")[:2]
        return (int(major), int(minor[:1] or 0)) >= (7, 6)
    except (IndexError, ValueError):
        return False


class SSH(Connection):
    """A remote host through the system ssh client, one multiplexed master connection per host."""

    _control_dir = None
    _lock = threading.Lock()

    def __init__(self, host, log=None, known_hosts=None):
        self.host = host
        self.label = host.label
        self.root = "/"
        self.log = log
        self.known_hosts = known_hosts
        with SSH._lock:
            if SSH._control_dir is None:
                SSH._control_dir = tempfile.mkdtemp(prefix="airgap-ssh-")
        self.control_path = os.path.join(SSH._control_dir, "%s-%d" % (host.address.replace(":", "_"), host.port))

    def base_opts(self):
        opts = [
            "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=%d" % SSH_TIMEOUT,
            "-o", "ServerAliveInterval=15",
            "-o", "ControlMaster=auto",
            "-o", "ControlPath=%s" % self.control_path,
            "-o", "ControlPersist=120",
            "-o", "StrictHostKeyChecking=%s" % ("accept-new" if ssh_supports_accept_new() else "no"),
        ]
        if self.known_hosts:
            opts += ["-o", "UserKnownHostsFile=%s" % self.known_hosts]
        if self.host.key:
            opts += ["-i", self.host.key, "-o", "IdentitiesOnly=yes"]
        return opts

    def argv(self, remote_cmd):
        return (["ssh"] + self.base_opts() + ["-p", str(self.host.port), "-l", self.host.user,
                                              self.host.address, "--", remote_cmd])

    def wrap(self, cmd):
        if self.host.user == "root":
            return "sh -c %s" % quote(cmd)
        return "sudo -n sh -c %s" % quote(cmd)

    def run(self, cmd, input=None, check=True, timeout=None, binary=False):
        return self._execute(self.argv(self.wrap(cmd)), cmd, input, check, timeout, binary)

    def _spawn_failed(self, error):
        return InstallerError("cannot run the ssh client: %s" % error, host=self.label,
                              hint="Install openssh-clients on the host running install.py")

    def _transport_error(self, res):
        return ssh_error(self.host, res.stderr) if res.rc == 255 else None

    def put(self, local_path, remote_path, mode=0o644):
        """scp to a temp file in the login user's home, then move into place as root."""
        tmp = ".airgap-upload-%s" % os.path.basename(remote_path)
        argv = (["scp", "-q"] + self.base_opts() + ["-P", str(self.host.port), local_path,
                                                     "%s@%s:%s" % (self.host.user, _scp_host(self.host.address),
                                                                   tmp)])
        self._log("$ %s" % " ".join(quote(a) for a in argv))
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, err = p.communicate()
        if p.returncode != 0:
            raise InstallerError("copying %s to %s failed" % (local_path, remote_path), host=self.label,
                                 command="scp", stderr=_text(err))
        home_tmp = "~%s/%s" % (self.host.user, tmp) if self.host.user != "root" else "/root/%s" % tmp
        self.check("mkdir -p {d} && install -m {m:o} {t} {r} && rm -f {t}".format(
            d=quote(os.path.dirname(remote_path)), m=mode, t=home_tmp, r=quote(remote_path)),
            "installing %s" % remote_path)

    def close(self):
        subprocess.call(["ssh", "-o", "ControlPath=%s" % self.control_path, "-O", "exit", self.host.address],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _scp_host(address):
    return "[%s]" % address if ":" in address else address


def ssh_error(host, stderr):
    """Turn ssh's exit 255 into an operator-facing explanation."""
    s = (stderr or "").lower()
    if "permission denied" in s:
        why = "SSH refused the login as %s (wrong key or user)" % host.user
        hint = "Check --ssh-user/--ssh-key (or ansible_user/ansible_ssh_private_key_file) and that the " \
               "public key is in ~%s/.ssh/authorized_keys on %s" % (host.user, host.address)
    elif "timed out" in s or "no route" in s or "unreachable" in s:
        why = "host %s:%d is unreachable" % (host.address, host.port)
        hint = "Check the address, the network and that sshd is running"
    elif "connection refused" in s:
        why = "host %s refused the SSH connection on port %d" % (host.address, host.port)
        hint = "Check that sshd is running and the port (ansible_port / --ssh-port)"
    elif "host key verification failed" in s or "remote host identification has changed" in s:
        why = "the SSH host key of %s does not match known_hosts" % host.address
        hint = "If the host was reinstalled, remove its old key with ssh-keygen -R %s" % host.address
    elif "could not resolve" in s or "name or service not known" in s:
        why = "the host name %s does not resolve" % host.address
        hint = "Use an IP address or add the name to /etc/hosts"
    else:
        why = "SSH to %s@%s:%d failed" % (host.user, host.address, host.port)
        hint = "Try: ssh -p %d %s@%s true" % (host.port, host.user, host.address)
    return InstallerError(why, host=host.label, stderr=stderr, hint=hint)
