"""Orchestration: verify the bundle, connect, gather facts, then run an operation's phases in order, each
on its hosts in parallel; stop at the first failed phase with a message that names every failed host and
says how to resume."""

import concurrent.futures
import os
import socket

from installer import facts as facts_mod
from installer import media as media_mod
from installer import operations
from installer.context import Context
from installer.errors import InstallerError
from installer.journal import Journal
from installer.lock import HostLock
from installer import record as rec_mod
from installer.record import ClusterRecord
from installer.ssh import SSH, Local
from installer.verify_bundle import verify as verify_bundle

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def local_addresses():
    conn = Local()
    res = conn.run("ip -o addr show 2>/dev/null | awk '{print $4}' | cut -d/ -f1", check=False)
    addrs = set(a.strip() for a in res.stdout.splitlines() if a.strip())
    addrs.update(LOCAL_NAMES)
    addrs.add(socket.gethostname())
    return addrs


DEFAULT_PARALLEL = 16


class Runner(object):
    """Runs an operation (installer.operations): its phases, in order, on their hosts, the same way for all."""

    def __init__(self, bundle, inventory, options, out, root="/", gpg_key=None, skip_verify=False,
                 local_addrs=None, previous_record=None, parallel=DEFAULT_PARALLEL):
        self.bundle = bundle
        self.previous_record = previous_record
        self.inventory = inventory
        self.options = options
        self.out = out
        self.root = root
        self.gpg_key = gpg_key
        self.skip_verify = skip_verify
        self.parallel = max(1, int(parallel or DEFAULT_PARALLEL))
        self.local_addrs = local_addrs if local_addrs is not None else local_addresses()
        self.operation_id = None  # the host lock's id while an operation holds it
        self.phases = None  # install and plan run installer.phases.install_phases() unless a caller gives others
        serve = None
        for h in inventory.hosts:
            if h.address in self.local_addrs:
                h.local = True
                serve = serve or h
        if serve is None:
            from installer.inventory import Host
            if not options.serve_address:
                raise InstallerError(
                    "the host running install.py is not in the inventory, so the other hosts cannot know its "
                    "address", hint="Run install.py on the first control-plane host, or pass --serve-address "
                                    "with this host's address on the cluster network")
            serve = Host(options.serve_address, "serve", name=socket.gethostname().split(".")[0].lower())
            serve.local = True
        self.ctx = Context(bundle, inventory, options, serve_host=serve)
        self.ctx.previous_record = previous_record
        self.ctx.recorded_names = rec_mod.recorded_names(previous_record)
        self.ctx.log = lambda msg: self.out.say(msg)

    # -- helpers --------------------------------------------------------------------------------------
    def each(self, hosts, func, parallel=True):
        """Run func(host) for every host (up to self.parallel at once); when hosts fail, raise one
        InstallerError naming every failed host. Serial (parallel=False): stop at the first failure."""
        hosts = list(hosts)
        if not hosts:
            return {}
        results = {}
        if not parallel or len(hosts) == 1:
            for h in hosts:
                results[h.label] = self._call(func, h)
            return results
        errors = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(self.parallel, len(hosts))) as pool:
            futs = dict((pool.submit(self._call, func, h), h) for h in hosts)
            for fut in concurrent.futures.as_completed(futs):
                h = futs[fut]
                try:
                    results[h.label] = fut.result()
                except InstallerError as e:
                    errors.append((hosts.index(h), e))
        if errors:
            raise several([e for _, e in sorted(errors, key=lambda t: t[0])], len(hosts))
        return results

    def _call(self, func, host):
        try:
            return func(host)
        except InstallerError as e:
            raise e.with_context(host=host.label, log=self.out.log_path(host.label)) from None

    def connect(self):
        ctx = self.ctx

        def open_conn(h):
            log = self.out.logger(h.label)
            conn = Local(h.label, self.root, log) if h.local else SSH(h, log)
            conn.check("true", "checking the connection")
            if not h.local and h.user != "root":
                res = conn.run("true", check=False)
                if not res.ok:
                    raise InstallerError("user %s cannot run commands as root with 'sudo -n'" % h.user,
                                         stderr=res.stderr, hint="Allow passwordless sudo for %s or use root" % h.user)
            if h.local and not conn.is_root and self.root in ("/", None):
                raise InstallerError("install.py must run as root on this host", hint="Run: sudo ./install.py")
            return conn

        if getattr(self, "tolerate_unreachable", False):  # status: a host that does not answer is said, skipped
            ctx.connections = {}
            for label, got in self.each(ctx.reachable_hosts, lambda h: _or_error(open_conn, h)).items():
                if isinstance(got, InstallerError):
                    ctx.skipped.add(label)
                    ctx.unreachable[label] = got.message
                    self.out.say("does not answer (%s): status goes on without it" % got.message, host=label)
                else:
                    ctx.connections[label] = got
            return
        try:
            ctx.connections = self.each(ctx.reachable_hosts, open_conn)
        except InstallerError as e:
            e.hint = (e.hint or "Fix the connection").rstrip(".") + ". Nothing was changed on any host"
            raise

    def gather(self, hosts=None, phases=()):
        """Facts (with the files and directories `phases` watch) and journals of `hosts` (default: all)."""
        ctx = self.ctx

        def one(h):
            conn = ctx.connections[h.label]
            files, dirs = set(), set()
            for p in phases:
                if h in p.hosts(ctx):
                    files.update(p.watched_files(ctx, h))
                    dirs.update(p.watched_dirs(ctx, h))
            f = facts_mod.gather(conn, sorted(files), sorted(dirs))
            ctx.journals[h.label] = Journal.load(conn)
            return f

        got = self.each([h for h in (hosts or ctx.all_hosts) if h.label not in ctx.skipped], one)
        ctx.facts.update(got)
        return got

    def prepare(self, op):
        """Everything before the first phase: bundle check, media, connections, the phases' prepare hooks,
        facts."""
        if op.check_bundle and not self.skip_verify:
            self.out.say("checking the bundle against SHA256SUMS%s ..."
                         % (" and its signature" if self.gpg_key else ""))
            n = verify_bundle(self.bundle.root, self.gpg_key)
            self.out.say("bundle OK (%d files): %s for %s/%s, Kubernetes %s, %s, %s" % (
                n, self.bundle.name, self.bundle.os, self.bundle.arch, self.bundle.k8s_version, self.bundle.runtime,
                self.bundle.cni))
        if op.media:
            self.ctx.media = media_mod.describe(self.options.iso, self.options.media, root=self.root)
            self.out.say("OS media: %s %s (%s)" % (self.ctx.media["kind"], self.ctx.media["path"],
                                                   self.ctx.media.get("label")))
        self.out.say("connecting to %d host(s) ...%s" % (len(self.ctx.reachable_hosts), " (skipped: %s)" % ", ".join(
            sorted(self.ctx.skipped)) if self.ctx.skipped else ""))
        self.connect()
        for phase in op.phases:
            phase.prepare(self.ctx)
        self.gather(phases=op.phases)

    def execute(self, op, before_changes=None):
        """Run the operation's phases; returns {host label: [changes made or, in a dry run, planned]}.
        `before_changes()` is called once, just before the first phase that changes hosts."""
        if self.phases is not None and op.name in ("install", "plan"):
            op.phases = list(self.phases)
        ctx = self.ctx
        changed = {}
        started = []
        lock = HostLock(op.name, self.root) if op.locks else None
        if lock is not None:
            self.operation_id = lock.acquire()
        try:
            self.prepare(op)
            for phase in op.phases:
                hosts = [h for h in phase.hosts(ctx) if h.label not in ctx.skipped]
                if not hosts:
                    continue
                if phase.is_check:
                    if op.dry_run and not phase.check_in_plan:
                        continue
                    for label, text in phase.check(ctx):
                        self.out.say(text, host=label)
                    continue
                if op.dry_run:
                    for h in hosts:
                        items = phase.dry_run(ctx, h, ctx.facts[h.label], ctx.connections[h.label])
                        for item in items:
                            self.out.say("%s: %s" % (phase.name, item), host=h.label)
                        changed.setdefault(h.label, []).extend(items)
                    continue
                if not started:
                    started.append(True)
                    if before_changes is not None:
                        before_changes()
                self.gather(hosts, op.phases)
                self.out.say("== %s" % phase.title)
                for label, done in self.each(hosts, lambda h, p=phase: self.run_phase(p, h),
                                             parallel=phase.parallel).items():
                    changed.setdefault(label, []).extend(done)
                phase.after(ctx)
        finally:
            try:
                for phase in op.phases:
                    phase.cleanup(ctx)
            finally:
                if lock is not None:
                    lock.release()
        return changed

    def run_phase(self, phase, h):
        """One phase on one host, marked in its journal."""
        ctx = self.ctx
        conn = ctx.connections[h.label]
        journal = ctx.journals[h.label]
        if phase.journaled:
            journal.mark(phase.name, "running")
        try:
            done = phase.run(ctx, h, conn, ctx.facts[h.label], journal,
                             report=lambda text: self.out.say("%s: %s" % (phase.name, text), host=h.label))
        except InstallerError as e:
            if phase.journaled:
                journal.mark(phase.name, "failed")
            raise e.with_context(phase=phase.name, hint=phase.resume_hint) from None
        if phase.journaled:
            journal.mark(phase.name, "done", done)
        return done

    # -- commands -------------------------------------------------------------------------------------
    def plan(self):
        changed = self.execute(operations.plan())
        from installer.certs import warnings
        for label, text in warnings(self.ctx):  # an installed cluster's certificates below 90 days
            self.out.say(text, host=label)
        total = sum(len(v) for v in changed.values())
        self.out.say("plan: %d change(s)" % total if total else "plan: no changes")
        return total

    def execute_recorded(self, op, record, start, on_failure=None):
        """Run op keeping the cluster record: `start(record)` just before the first change (the record then says
        the operation is under way, so a failed one can be reset or resumed); on failure the result
        (`on_failure(error)`, else "failed: ...") is written and the error raised. The caller finishes the record
        on success (finish_record). Returns what execute returns."""
        started = []

        def begin():
            start(record)
            self.write_record(record)
            started.append(True)

        try:
            changed = self.execute(op, before_changes=begin)
        except InstallerError as e:
            if started:
                record.finish(on_failure(e) if on_failure else "failed: %s" % e.message)
                self.write_record(record, quiet=True)
            raise
        if not started:
            begin()
        return changed

    def finish_record(self, record, **kw):
        """A successful operation: the record finished, both copies written, the in-cluster copy updated."""
        record.finish("ok", **kw)
        self.write_record(record)
        self.publish_record(record)

    def install(self):
        record = ClusterRecord(self.previous_record)
        changed = self.execute_recorded(
            operations.install(), record,
            lambda r: r.start("install", self.ctx, dns=self.ctx.dns, operation_id=self.operation_id))
        self.finish_record(record, state="installed")
        total = sum(len(v) for v in changed.values())
        for label, items in sorted(changed.items()):
            self.out.say("%d change(s)" % len(items) if items else "no changes", host=label)
        self.out.say("install: %d change(s); logs in %s" % (total, self.out.shown_dir) if total else
                     "install: no changes")
        return total

    def add_node(self, new_labels, dry_run=False):
        """add-node (installer.addnode.run)."""
        from installer import addnode
        return addnode.run(self, new_labels, dry_run)

    def reset_new_hosts(self, labels):
        from installer import addnode
        return addnode.reset_new_hosts(self, labels)

    def remove_node(self, name, drain_timeout, dry_run=False, ignore_pdb=False):
        """remove-node (installer.removenode.run)."""
        from installer import removenode
        return removenode.run(self, name, drain_timeout, dry_run, ignore_pdb)

    def _answers(self, host):
        from installer import removenode
        return removenode.answers(self, host)

    def write_record(self, record, quiet=False):
        """Both copies of the cluster record; `quiet`: while failing already, a failure here is not raised."""
        try:
            record.write(self.ctx.connections[self.ctx.serve_host.label], self.bundle.root, self.out.say)
        except InstallerError:
            if not quiet:
                raise

    def publish_record(self, record):
        """The record's in-cluster copy (a ConfigMap), from the first control plane, after an operation."""
        conn = self.ctx.connections.get(self.ctx.first_cp.label)
        if conn is None:
            self.out.say("note: the cluster record's in-cluster copy was not updated: %s is skipped"
                         % self.ctx.first_cp.label)
            return False
        return record.publish(conn, self.out.say)

    def status(self):
        """Reads only; hosts that do not answer (or are given to --skip-unreachable) are reported, not fatal."""
        self.tolerate_unreachable = True
        self.execute(operations.status())
        return 0

    def reset(self):
        ctx = self.ctx
        self.execute(operations.reset())
        # the serving host is left as found: its record goes; the one beside the bundle remembers the hosts
        record = ClusterRecord(self.previous_record)
        record.start("reset", ctx)
        record.finish("ok", state="reset")
        record.write(None, self.bundle.root, self.out.say)
        record.remove_serve_copy(ctx.connections[ctx.serve_host.label])
        self.out.say("reset done; logs in %s" % self.out.shown_dir)
        return 0


def _or_error(func, host):
    try:
        return func(host)
    except InstallerError as e:
        return e


def several(errors, of):
    """One InstallerError for the hosts that failed (the error itself when only one did)."""
    if len(errors) == 1:
        return errors[0]
    phases = set(e.phase for e in errors)
    parts = []
    for e in errors:
        where = "host %s" % e.host if e.host else "a host"
        text = str(InstallerError(e.message, phase=e.phase if len(phases) > 1 else None, command=e.command,
                                  stderr=e.stderr, log=e.log))
        parts.append("%s: %s" % (where, text))
    hints = []
    for e in errors:
        if e.hint and e.hint not in hints:
            hints.append(e.hint)
    return InstallerError("%d of %d hosts failed. %s" % (len(errors), of, " ".join(parts)),
                          phase=phases.pop() if len(phases) == 1 else None, hint=" ".join(
                              h.rstrip(".") + "." for h in hints) or None)


def default_bundle_dir():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
