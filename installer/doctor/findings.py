"""Findings: what doctor reports. One finding = a stable id, a severity, where (a host or an object), what is
wrong, the evidence (each command run and the excerpt of its output that shows it) and the fix."""

import functools
import json
import time

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITIES = (ERROR, WARNING, INFO)
LAYERS = ("cluster", "nodes", "pods", "services")
SCHEMA = "airgap-doctor/1"
EXCERPT_LINES = 8
EXCERPT_CHARS = 1200


def excerpt(text, match=None, lines=EXCERPT_LINES):
    """The lines of `text` that show the problem: those containing `match` (the last few), else its tail."""
    rows = [ln.rstrip() for ln in (text or "").splitlines() if ln.strip()]
    if match:
        hits = [ln for ln in rows if match in ln]
        rows = hits or rows
    out = "\n".join(rows[-lines:])
    return out if len(out) <= EXCERPT_CHARS else "..." + out[-EXCERPT_CHARS:]


class Evidence(object):
    def __init__(self, command, text, where=None):
        self.command = command
        self.excerpt = text
        self.where = where  # the host the command ran on

    def as_dict(self):
        return {"command": self.command, "host": self.where, "excerpt": self.excerpt}


class Finding(object):
    def __init__(self, id, severity, layer, target, summary, fix, evidence=()):
        assert severity in SEVERITIES, severity
        assert layer in LAYERS, layer
        self.id = id
        self.severity = severity
        self.layer = layer
        self.target = target
        self.summary = summary
        self.fix = fix
        self.evidence = list(evidence)

    def add(self, command, text, where=None):
        self.evidence.append(Evidence(command, text, where))
        return self

    def as_dict(self):
        return {"id": self.id, "severity": self.severity, "layer": self.layer, "target": self.target,
                "summary": self.summary, "evidence": [e.as_dict() for e in self.evidence], "fix": self.fix}

    def __repr__(self):
        return "<Finding %s %s %s>" % (self.id, self.severity, self.target)


def layer_check(layer):
    """Decorates a layer's check(env, state, ...): an answer of a shape its classifiers did not expect (a field
    missing or null, a warning line where JSON was due) ends that layer with one finding naming it, instead of a
    traceback that would end the whole doctor run (the other layers still run)."""
    def wrap(fn):
        @functools.wraps(fn)
        def run(env, state, *args, **kwargs):
            try:
                return fn(env, state, *args, **kwargs)
            except (KeyError, TypeError, AttributeError, ValueError, IndexError) as e:
                last = env.ran[-1] if getattr(env, "ran", None) else None
                return [finding("DOCTOR-UNEXPECTED-ANSWER", WARNING, layer, layer,
                                "the %s checks stopped at an answer of a shape doctor does not know (%s: %s)"
                                % (layer, type(e).__name__, e),
                                "Run the command shown by hand and read its output; report it with "
                                "`./install.py doctor --collect FILE` so doctor learns that shape",
                                last[1] if last else None, "", last[0] if last else None)]
        return run
    return wrap


def finding(id, severity, layer, target, summary, fix, command=None, text=None, where=None):
    f = Finding(id, severity, layer, target, summary, fix)
    if command is not None:
        f.add(command, text if text is not None else "", where)
    return f


class Report(object):
    """The findings of one doctor run, in runbook order (layer, then the order found)."""

    def __init__(self, cluster=None):
        self.cluster = cluster or {}
        self.findings = []
        self.checked = []  # the layers (and options) that ran
        self.commands = 0  # how many read commands were run
        self.started = time.time()

    def extend(self, found):
        self.findings.extend(found)

    def ordered(self):
        rank = dict((name, i) for i, name in enumerate(LAYERS))
        return sorted(self.findings, key=lambda f: rank[f.layer])  # stable: keeps the order found

    def count(self, severity):
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def exit_code(self):
        """0: no error finding; 1: at least one (warnings and info never fail)."""
        return 1 if self.count(ERROR) else 0

    def as_dict(self):
        return {"schema": SCHEMA, "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
                "cluster": self.cluster, "checked": list(self.checked),
                "summary": dict((s, self.count(s)) for s in SEVERITIES), "commands_run": self.commands,
                "exit_code": self.exit_code, "findings": [f.as_dict() for f in self.ordered()]}

    def to_json(self):
        return json.dumps(self.as_dict(), indent=2, sort_keys=True)

    def render(self):
        """The human form: grouped by layer, each finding with its id, target, evidence excerpt and fix."""
        out = []
        by_layer = {}
        for f in self.ordered():
            by_layer.setdefault(f.layer, []).append(f)
        for layer in LAYERS:
            if layer not in self.checked and layer not in by_layer:
                continue
            found = by_layer.get(layer, [])
            out.append("== %s: %s" % (layer, "%d finding(s)" % len(found) if found else "no findings"))
            for f in found:
                out.append("%-7s %s  %s: %s" % (f.severity.upper(), f.id, f.target, f.summary))
                for e in f.evidence:
                    out.append("        $ %s%s" % (e.command, "   (on %s)" % e.where if e.where else ""))
                    for ln in (e.excerpt or "").splitlines()[:EXCERPT_LINES]:
                        out.append("        | %s" % ln)
                out.append("        fix: %s" % f.fix)
        out.append("doctor: %d error(s), %d warning(s), %d info; %d read-only command(s) run"
                   % (self.count(ERROR), self.count(WARNING), self.count(INFO), self.commands))
        return "\n".join(out)
