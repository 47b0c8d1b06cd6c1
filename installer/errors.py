"""One exception for everything the operator can act on.

An InstallerError renders as one paragraph: what failed, on which host, in which phase, the command and
the tail of its stderr, where the full log is and how to resume. The CLI prints it without a traceback.
"""


class InstallerError(Exception):
    """An error meant for the operator; str(err) is the whole paragraph."""

    exit_code = 1

    def __init__(self, message, host=None, phase=None, command=None, stderr=None, log=None, hint=None):
        Exception.__init__(self, message)
        self.message = message
        self.host = host
        self.phase = phase
        self.command = command
        self.stderr = stderr
        self.log = log
        self.hint = hint

    def with_context(self, host=None, phase=None, log=None, hint=None):
        """Fill in context the raiser did not know (the runner knows host, phase and log file)."""
        self.host = self.host or host
        self.phase = self.phase or phase
        self.log = self.log or log
        self.hint = self.hint or hint
        return self

    def __str__(self):
        parts = []
        where = []
        if self.host:
            where.append("host %s" % self.host)
        if self.phase:
            where.append("phase %s" % self.phase)
        head = self.message.rstrip(".")
        if where:
            head = "%s: %s" % (", ".join(where), head)
        parts.append(head + ".")
        if self.command:
            parts.append("Command: %s." % self.command)
        tail = stderr_tail(self.stderr)
        if tail:
            parts.append("Its stderr ended with: %s." % tail)
        if self.log:
            parts.append("Full log: %s." % self.log)
        if self.hint:
            parts.append(self.hint.rstrip(".") + ".")
        return " ".join(parts)


def stderr_tail(text, lines=5, limit=600):
    """The last few non-empty lines of a command's stderr, joined with ' | '."""
    if not text:
        return ""
    kept = [ln.strip() for ln in text.strip().splitlines() if ln.strip()][-lines:]
    tail = " | ".join(kept)
    if len(tail) > limit:
        tail = "..." + tail[-limit:]
    return tail


def env_seconds(name, default):
    """A timeout in seconds from the environment (tests shorten them); a bad value is a clear error."""
    import os
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InstallerError("%s=%r is not a number of seconds (1 or more)" % (name, text),
                             hint="Unset it to use the default of %d seconds" % default)
    return value
