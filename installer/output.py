"""Operator output (prefixed by host, thread-safe) and the per-run log files."""

import os
import sys
import threading
import time

from installer.journal import LOG_DIR


class Output(object):
    def __init__(self, root="/", stream=None, quiet=False, read_only=False):
        """read_only (plan, status): the run's log goes to a temporary directory, not under LOG_DIR, so that a
        dry run leaves the serving host exactly as it was."""
        self.lock = threading.Lock()
        self.stream = stream or sys.stdout
        self.quiet = quiet
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = os.path.join(root, LOG_DIR.lstrip("/")) if root not in ("/", None) else LOG_DIR
        self.dir = os.path.join(base, stamp)
        self.shown_dir = os.path.join(LOG_DIR, stamp)
        self._made = False
        if read_only:
            self.dir = self.shown_dir = _temp_dir()
            self._made = True
            _TEMP_DIRS.append(self.dir)
        self._files = {}

    def _ensure(self):
        """The log directory, made on the first write: a command that refuses before saying anything leaves no
        log directory behind on the serving host."""
        if self._made:
            return
        self._made = True
        try:
            os.makedirs(self.dir)
            os.chmod(self.dir, 0o700)
        except OSError:
            self.dir = self.shown_dir = _temp_dir()
            _TEMP_DIRS.append(self.dir)

    @property
    def written(self):
        """True once the log directory exists (something was logged)."""
        return self._made

    def log_path(self, label):
        return os.path.join(self.shown_dir, "%s.log" % _safe(label))

    def logger(self, label):
        """callable(text) appending to the host's log file."""
        def write(text):
            with self.lock:
                self._ensure()
                with open(os.path.join(self.dir, "%s.log" % _safe(label)), "a") as f:
                    f.write("%s %s\n" % (time.strftime("%H:%M:%S"), text))
        return write

    def say(self, text, host=None):
        line = ("[%s] %s" % (host, text)) if host else text
        with self.lock:
            if not self.quiet:
                self.stream.write(line + "\n")
                self.stream.flush()
            self._ensure()
            with open(os.path.join(self.dir, "install.log"), "a") as f:
                f.write("%s %s\n" % (time.strftime("%H:%M:%S"), line))


_TEMP_DIRS = []  # temporary log directories of this process (read-only runs)


def discard_temp_logs():
    """After a read-only command succeeded: its temporary log has nothing to point to; remove it, so status,
    plan and doctor run every few minutes leave no directory behind. A failed run keeps it (the error names it)."""
    import shutil
    while _TEMP_DIRS:
        shutil.rmtree(_TEMP_DIRS.pop(), ignore_errors=True)


def _temp_dir():
    import tempfile
    return tempfile.mkdtemp(prefix="airgap-installer-log-")


def _safe(label):
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in label)
