"""restore ARCHIVE: put a backup's etcd snapshot back on every control plane.

Before anything changes (also in `plan restore`): the archive matches its sha256 file (commands/restore.py,
before even connecting), every control plane answers, the cluster's CA is the backup's (else --new-cluster,
which also puts the backup's PKI back), and the backup's etcd members (names and peer URLs) are the cluster
record's control planes. Then, per control plane, journaled steps (key "restore" in its journal, so a re-run
with the same archive resumes): stage (etcdctl/etcdutl from the bundle's etcd image, the snapshot), stop the
control-plane static pods, `snapshot restore` into a new data directory with the member's name and peer URLs,
swap it with the old one (kept as DATA_DIR.before-restore-ID), start the pods and wait until etcd and the API
answer. Every control plane restores the same snapshot (etcd's documented way for a multi-member cluster).
"""

import os
import re
import shutil
import tempfile
import time

from installer import backup_archive as archive
from installer import etcd_tools
from installer import static_pods
from installer.backup import ETCD_FLAGS
from installer.errors import InstallerError
from installer.journal import STATE_DIR
from installer.phases.base import Phase
from installer.ssh import quote

KEY = "restore"
STEPS = ("staged", "stopped", "restored", "swapped", "started")
DEFAULT_DATA_DIR = "/var/lib/etcd"


def peer_url(address):
    return "https://%s:2380" % (("[%s]" % address) if ":" in address else address)


def expected_members(ctx):
    """{node name: peer URL} of the cluster record's control planes."""
    return dict((ctx.node_name(h), peer_url(h.address)) for h in ctx.inventory.control_planes)


def member_problems(meta, ctx):
    """Why the backup's etcd members are not the cluster's control planes ([] when they are)."""
    have = dict((m["name"], (m.get("peerURLs") or [""])[0]) for m in meta.get("members") or [])
    want = expected_members(ctx)
    if have == want:
        return []

    def fmt(d):
        return ", ".join("%s (%s)" % kv for kv in sorted(d.items())) or "none"
    return ["the backup's etcd members are %s but the cluster record's control planes are %s" % (fmt(have),
                                                                                                  fmt(want))]


def state(journal, sha):
    """This restore's progress in the host's journal (a new one when the journal holds none or a finished one);
    refuses while another archive's restore is half done."""
    st = journal.data.get(KEY)
    if st and st.get("archive") != sha and not st.get("finished"):
        raise InstallerError("an interrupted restore of another backup (sha256 %s) is not finished on this host"
                             % st.get("archive"),
                             hint="Run ./install.py restore again with that archive to finish it first")
    if not st or st.get("archive") != sha:
        st = {"archive": sha, "done": []}
    return st


def _done(ctx, host, step):
    j = ctx.journals[host.label]
    return step in state(j, ctx.restore["sha256"]).get("done", [])


def _mark(ctx, host, journal, step):
    st = state(journal, ctx.restore["sha256"])
    if step not in st["done"]:
        st["done"].append(step)
    if step == STEPS[-1]:
        st["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    journal.data[KEY] = st
    journal.save()


def data_dir(conn):
    for p in (static_pods.manifest("etcd"), static_pods.paused("etcd")):
        text = conn.read_file(p)
        if text:
            m = re.search(r"--data-dir=(\S+)", text.decode("utf-8", "replace"))
            if m:
                return m.group(1)
    return DEFAULT_DATA_DIR


def work_dir(ctx):
    return "%s/restore-%s" % (STATE_DIR, ctx.restore["sha256"][:12])


class Preflight(Phase):
    name = "restore_preflight"
    title = "restore preflight"
    kind = "check"

    def hosts(self, ctx):
        return list(ctx.inventory.control_planes)

    def check(self, ctx):
        r = ctx.restore
        problems = []
        down = [h.label for h in ctx.inventory.control_planes if h.label in ctx.skipped]
        if down:
            problems.append("every control plane takes part in a restore, and %s %s skipped" % (
                ", ".join(down), "is" if len(down) == 1 else "are"))
        first = ctx.inventory.control_planes[0]
        conn = ctx.connections.get(first.label)
        ca = conn.read_file("/etc/kubernetes/pki/ca.crt") if conn is not None else None
        fp = archive.ca_fingerprint(ca) if ca else None
        if not r["new_cluster"] and fp != r["meta"].get("caFingerprint"):
            problems.append("the cluster CA on %s (sha256 fingerprint %s) is not the backup's (%s): the backup is of "
                            "another cluster, or this one was rebuilt" % (first.label, fp or "none: no CA there",
                                                                          r["meta"].get("caFingerprint")))
        problems += member_problems(r["meta"], ctx)
        if problems:
            raise InstallerError("restore %s refused: %s" % (r["path"], "; ".join(problems)),
                                 hint="Nothing was changed. A rebuilt cluster with a new CA: add --new-cluster (the "
                                      "backup's PKI is put back too); other members: restore on control planes with "
                                      "the backup's names and addresses")
        return [(None, "restore preflight OK: checksum, CA fingerprint%s, etcd members %s" % (
            " (ignored: --new-cluster)" if r["new_cluster"] else "", ", ".join(sorted(expected_members(ctx)))))]


class _Step(Phase):
    step = None
    journaled = False
    resume_hint = "Fix the cause and run the same ./install.py restore again: it resumes at the step it stopped at"

    def hosts(self, ctx):
        return list(ctx.inventory.control_planes)

    def describe(self, ctx, host):
        return self.title

    def dry_run(self, ctx, host, facts, conn=None):
        return [] if _done(ctx, host, self.step) else [self.describe(ctx, host)]

    def run(self, ctx, host, conn, facts, journal, report=None):
        if _done(ctx, host, self.step):
            return []
        self.apply(ctx, host, conn)
        _mark(ctx, host, journal, self.step)
        if report:
            report(self.describe(ctx, host))
        return [self.describe(ctx, host)]


class Stage(_Step):
    name = step = "staged"
    title = "stage etcdctl/etcdutl from the bundle's etcd image and the snapshot"

    def apply(self, ctx, host, conn):
        ctx.restore["tools"][host.label] = etcd_tools.install(conn, ctx.restore["local_tools"])
        d = work_dir(ctx)
        conn.check("mkdir -p %s && chmod 700 %s" % (quote(conn.path(d)), quote(conn.path(d))), "making %s" % d)
        conn.put(ctx.restore["snapshot_file"], d + "/snapshot.db", 0o600)
        if ctx.restore["new_cluster"]:
            conn.put(ctx.restore["pki_file"], d + "/pki.tar.gz", 0o600)


class Stop(_Step):
    name = step = "stopped"
    title = "stop the control-plane static pods (manifests moved out, one by one)"

    def apply(self, ctx, host, conn):
        for pod in reversed(static_pods.present(conn)):
            static_pods.stop(conn, pod, ctx.pod_stop_timeout)


class Restore(_Step):
    name = step = "restored"
    title = "etcd snapshot restore into a new data directory (this member's name and peer URL)"

    def apply(self, ctx, host, conn):
        tools = ctx.restore["tools"].get(host.label) or etcd_tools.install(conn, ctx.restore["local_tools"])
        tool = tools.get("etcdutl") or tools["etcdctl"]
        dd = data_dir(conn)
        new = "%s.restore-%s" % (dd, ctx.restore["sha256"][:12])
        name = ctx.node_name(host)
        members = expected_members(ctx)
        cmd = ("rm -rf {new} && ETCDCTL_API=3 {tool} snapshot restore {snap} --name {name} --initial-cluster {ic} "
               "--initial-cluster-token {token} --initial-advertise-peer-urls {peer} --data-dir {new}").format(
            new=quote(conn.path(new)), tool=tool, snap=quote(conn.path(work_dir(ctx) + "/snapshot.db")),
            name=quote(name), ic=quote(",".join("%s=%s" % kv for kv in sorted(members.items()))),
            token=quote("airgap-restore-%s" % ctx.restore["sha256"][:12]), peer=quote(members[name]))
        conn.check(cmd, "etcd snapshot restore", timeout=900)


class Swap(_Step):
    name = step = "swapped"
    title = "swap the restored data directory in (the old one kept as DATA_DIR.before-restore-ID)"

    def apply(self, ctx, host, conn):
        dd = data_dir(conn)
        tag = ctx.restore["sha256"][:12]
        new, old = "%s.restore-%s" % (dd, tag), "%s.before-restore-%s" % (dd, tag)
        # idempotent: a re-run after the old one moved away only moves the new one in
        conn.check("if [ -d {new} ]; then if [ -e {dd} ]; then rm -rf {old} && mv {dd} {old}; fi; mv {new} {dd}; fi"
                   .format(new=quote(conn.path(new)), dd=quote(conn.path(dd)), old=quote(conn.path(old))),
                   "swapping the etcd data directory")
        if ctx.restore["new_cluster"]:
            pki, kept = "/etc/kubernetes/pki", "/etc/kubernetes/pki.before-restore-%s" % tag
            conn.check("if [ ! -e {kept} ]; then mv {pki} {kept}; fi; rm -rf {pki} && mkdir -p {pki} && "
                       "tar xzf {tar} -C {parent}".format(
                           pki=quote(conn.path(pki)), kept=quote(conn.path(kept)), parent=quote(conn.path(
                               "/etc/kubernetes")), tar=quote(conn.path(work_dir(ctx) + "/pki.tar.gz"))),
                       "putting the backup's PKI back")


class Start(_Step):
    name = step = "started"
    title = "start the control-plane static pods one by one, wait until etcd and the API answer"

    def apply(self, ctx, host, conn):
        for pod in static_pods.present(conn):
            static_pods.start(conn, pod, ctx.pod_start_timeout)
        tools = ctx.restore["tools"].get(host.label) or etcd_tools.install(conn, ctx.restore["local_tools"])
        deadline = time.time() + ctx.pod_start_timeout
        while True:
            res = conn.run("ETCDCTL_API=3 %s %s endpoint health" % (tools["etcdctl"], ETCD_FLAGS), check=False,
                           timeout=60)
            if res.ok:
                break
            if time.time() >= deadline:
                raise InstallerError("etcd is not healthy after the restore", command=res.cmd,
                                     stderr=res.stderr or res.stdout, hint="See crictl logs of the etcd container")
            time.sleep(2)
        conn.run("rm -rf %s" % quote(conn.path(work_dir(ctx))), check=False)


def restore_phases():
    return [Preflight(), Stage(), Stop(), Restore(), Swap(), Start()]


def prepare_local(ctx, members, bundle):
    """The snapshot (and PKI) as local files, the etcd tools extracted: ctx.restore gains them; returns the temp
    directory to remove afterwards."""
    tmp = tempfile.mkdtemp(prefix="airgap-restore-")
    r = ctx.restore
    r["snapshot_file"] = os.path.join(tmp, "snapshot.db")
    with open(r["snapshot_file"], "wb") as f:
        f.write(members["etcd/snapshot.db"])
    if r["new_cluster"]:
        if "pki.tar.gz" not in members:
            shutil.rmtree(tmp, ignore_errors=True)
            raise InstallerError("--new-cluster: the backup %s has no pki.tar.gz to put back" % r["path"])
        try:
            archive.check_pki(members["pki.tar.gz"], r["path"])
        except InstallerError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        r["pki_file"] = os.path.join(tmp, "pki.tar.gz")
        with open(r["pki_file"], "wb") as f:
            f.write(members["pki.tar.gz"])
    tools = os.path.join(tmp, "bin")
    os.mkdir(tools)
    r["local_tools"] = etcd_tools.extract(bundle, tools)
    r["tools"] = {}
    return tmp
