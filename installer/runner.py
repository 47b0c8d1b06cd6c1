"""Orchestration: verify the bundle, connect, gather facts, preflight, then run each phase on its hosts
in parallel; stop at the first failure with a message that says how to resume."""

import concurrent.futures
import os
import socket

from installer import facts as facts_mod
from installer import media as media_mod
from installer.context import CA_CERT, Context
from installer.errors import InstallerError
from installer.journal import Journal
from installer.phases import all_phases
from installer.phases.preflight import Preflight
from installer.phases.verify import Verify
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


class Runner(object):
    def __init__(self, bundle, inventory, options, out, root="/", gpg_key=None, skip_verify=False,
                 local_addrs=None, previous_record=None):
        self.bundle = bundle
        self.previous_record = previous_record
        self.inventory = inventory
        self.options = options
        self.out = out
        self.root = root
        self.gpg_key = gpg_key
        self.skip_verify = skip_verify
        self.local_addrs = local_addrs if local_addrs is not None else local_addresses()
        self.phases = all_phases()
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
        self.ctx.log = lambda msg: self.out.say(msg)

    # -- helpers --------------------------------------------------------------------------------------
    def each(self, hosts, func, parallel=True):
        """Run func(host) for every host (in parallel); re-raise the first InstallerError with context."""
        hosts = list(hosts)
        if not hosts:
            return {}
        results = {}
        if not parallel or len(hosts) == 1:
            for h in hosts:
                results[h.label] = self._call(func, h)
            return results
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
            futs = dict((pool.submit(self._call, func, h), h) for h in hosts)
            errors = []
            for fut in concurrent.futures.as_completed(futs):
                h = futs[fut]
                try:
                    results[h.label] = fut.result()
                except InstallerError as e:
                    errors.append(e)
            if errors:
                raise errors[0]
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

        try:
            ctx.connections = self.each(ctx.all_hosts, open_conn)
        except InstallerError as e:
            e.hint = (e.hint or "Fix the connection").rstrip(".") + ". Nothing was changed on any host"
            raise

    def gather(self, hosts=None, phases=None):
        ctx = self.ctx
        phases = phases or self.phases
        self.read_ca()  # first: the files phases watch depend on it

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

        got = self.each(hosts or ctx.all_hosts, one)
        ctx.facts.update(got)
        return got

    def read_ca(self):
        """The registry CA from the serving host, if the registry phase made it in an earlier run."""
        serve_conn = self.ctx.connections.get(self.ctx.serve_host.label)
        if serve_conn is not None:
            ca = serve_conn.read_file(CA_CERT)
            self.ctx.ca_pem = ca.decode("utf-8") if ca is not None else None

    def prepare(self, need_media=True):
        """Everything before the first change: bundle check, media, connections, facts, preflight."""
        if not self.skip_verify:
            self.out.say("checking the bundle against SHA256SUMS%s ..."
                         % (" and its signature" if self.gpg_key else ""))
            n = verify_bundle(self.bundle.root, self.gpg_key)
            self.out.say("bundle OK (%d files): %s for %s/%s, Kubernetes %s, %s, %s" % (
                n, self.bundle.name, self.bundle.os, self.bundle.arch, self.bundle.k8s_version, self.bundle.runtime,
                self.bundle.cni))
        if need_media:
            self.ctx.media = media_mod.describe(self.options.iso, self.options.media, root=self.root)
            self.out.say("OS media: %s %s (%s)" % (self.ctx.media["kind"], self.ctx.media["path"],
                                                   self.ctx.media.get("label")))
        self.out.say("connecting to %d host(s) ..." % len(self.ctx.all_hosts))
        self.connect()
        self.gather()
        notes = Preflight().check_all(self.ctx, self.ctx.facts)
        for label, ns in sorted(notes.items()):
            for n in ns:
                self.out.say("note: %s" % n, host=label if label != "cluster" else None)

    # -- commands -------------------------------------------------------------------------------------
    def plan(self):
        self.prepare()
        ctx = self.ctx
        total = 0
        for phase in self.phases[1:]:
            for h in phase.hosts(ctx):
                items = phase.dry_run(ctx, h, ctx.facts[h.label], ctx.connections[h.label])
                for item in items:
                    self.out.say("%s: %s" % (phase.name, item), host=h.label)
                total += len(items)
        self.out.say("plan: %d change(s)" % total if total else "plan: no changes")
        return total

    def install(self):
        self.prepare()
        record = ClusterRecord(self.previous_record)
        record.start("install", self.ctx, dns=self.ctx.dns)
        self.write_record(record)
        try:
            total = self._install()
        except InstallerError as e:
            record.finish("failed: %s" % e.message)
            self.write_record(record, quiet=True)
            raise
        record.finish("ok", state="installed")
        self.write_record(record)
        return total

    def write_record(self, record, quiet=False):
        """Both copies of the cluster record; `quiet`: while failing already, a failure here is not raised."""
        try:
            record.write(self.ctx.connections[self.ctx.serve_host.label], self.bundle.root, self.out.say)
        except InstallerError:
            if not quiet:
                raise

    def _install(self):
        ctx = self.ctx
        changed = {}
        for phase in self.phases[1:]:
            hosts = phase.hosts(ctx)
            if not hosts:
                continue
            if isinstance(phase, Verify):
                continue
            self.gather(hosts)
            self.out.say("== %s" % phase.title)

            def run_on(h, phase=phase):
                conn = ctx.connections[h.label]
                journal = ctx.journals[h.label]
                journal.mark(phase.name, "running")
                try:
                    done = phase.run(ctx, h, conn, ctx.facts[h.label], journal,
                                     report=lambda text: self.out.say("%s: %s" % (phase.name, text), host=h.label))
                except InstallerError as e:
                    journal.mark(phase.name, "failed")
                    raise e.with_context(phase=phase.name, hint="Fix the cause and run ./install.py again: "
                                                                "completed work is not redone") from None
                journal.mark(phase.name, "done", done)
                return done

            for label, done in self.each(hosts, run_on, parallel=phase.parallel).items():
                changed.setdefault(label, []).extend(done)
            if phase.name == "registry":
                self.read_ca()  # the CA now exists
        Verify().check(ctx)
        self.out.say("cluster verified: all nodes Ready, kube-system pods Running, images from the bundle")
        total = sum(len(v) for v in changed.values())
        for label, items in sorted(changed.items()):
            self.out.say("%d change(s)" % len(items) if items else "no changes", host=label)
        self.out.say("install: %d change(s); logs in %s" % (total, self.out.shown_dir) if total else
                     "install: no changes")
        return total

    def status(self):
        self.connect()
        self.gather()
        ctx = self.ctx
        r = self.previous_record
        if r:
            last = (r.get("history") or [{}])[-1]
            self.out.say("cluster record: bundle %s %s (Kubernetes %s), state %s; last operation: %s %s (%s)" % (
                (r.get("bundle") or {}).get("name"), (r.get("bundle") or {}).get("version"), r.get("kubernetes"),
                r.get("state"), last.get("operation"), last.get("started"), last.get("result")))
        for h in ctx.all_hosts:
            j = ctx.journals[h.label]
            f = ctx.facts[h.label]
            done = [p for p in (ph.name for ph in self.phases[1:]) if j.phase_done(p)]
            states = ", ".join("%s=%s" % (s, "active" if f.service(s).get("active") else "inactive")
                               for s in ("containerd", "docker", "kubelet", "airgap-registry", "airgap-repo")
                               if f.service(s).get("exists"))
            self.out.say("%s %s; phases done: %s; %s" % (f.get("os_pretty"), f.get("arch"),
                                                         ", ".join(done) or "none", states), host=h.label)
        cp = ctx.connections[ctx.first_cp.label]
        res = cp.run("kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o wide", check=False)
        if res.ok:
            self.out.say(res.stdout.rstrip())
        return 0

    def reset(self):
        from installer.reset import reset_host
        self.connect()
        self.gather(phases=[])
        ctx = self.ctx
        self.each(ctx.all_hosts, lambda h: reset_host(ctx.connections[h.label], ctx.journals[h.label],
                                                      lambda t: self.out.say("reset: %s" % t, host=h.label)))
        # the serving host is left as found: its record goes; the one beside the bundle remembers the hosts
        record = ClusterRecord(self.previous_record)
        record.start("reset", ctx)
        record.finish("ok", state="reset")
        record.write(None, self.bundle.root, self.out.say)
        record.remove_serve_copy(ctx.connections[ctx.serve_host.label])
        self.out.say("reset done; logs in %s" % self.out.shown_dir)
        return 0


def default_bundle_dir():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
