"""backup: an etcd snapshot (the bundle's own etcdctl, installer.etcd_tools), the control plane's PKI, the
kubeadm configuration, every host's installer journal and the cluster record, in one archive
(installer.backup_archive) written on the host running install.py and copied to the control plane it was
taken on; --keep N prunes older archives at both ends."""

import json
import os
import shutil
import tempfile
import time

from installer import backup_archive as archive
from installer import etcd_tools
from installer.constants import KUBE_DIR, KUBECTL
from installer.errors import InstallerError
from installer.journal import STATE_DIR
from installer.phases.base import Phase
from installer.ssh import quote

DEFAULT_DIR = "/var/backups/airgap-bundler"
REMOTE_DIR = STATE_DIR + "/backups"
ETCD_FLAGS = ("--endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
              "--cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key")


def etcdctl(tool_paths, args):
    return "ETCDCTL_API=3 %s %s %s" % (tool_paths["etcdctl"], ETCD_FLAGS, args)


def operator(ctx):
    """The control plane the snapshot is taken on: the first one that is not skipped."""
    for h in ctx.inventory.control_planes:
        if h.label not in ctx.skipped:
            return h
    raise InstallerError("backup: every control plane is skipped", hint="A backup needs one control plane that answers")


def members_of(text):
    """[{name, peerURLs, clientURLs, ID}] from `etcdctl member list -w json`."""
    try:
        data = json.loads(text)
    except ValueError:
        raise InstallerError("etcdctl member list did not answer JSON: %r" % text[:200]) from None
    return [{"name": m.get("name"), "peerURLs": m.get("peerURLs") or [], "clientURLs": m.get("clientURLs") or [],
             "ID": m.get("ID")} for m in data.get("members") or []]


class TakeBackup(Phase):
    name = "backup"
    title = "etcd snapshot and backup archive"
    journaled = False

    def hosts(self, ctx):
        return [operator(ctx)]

    def dry_run(self, ctx, host, facts, conn=None):
        b = ctx.backup
        out = ["etcdctl snapshot save (etcdctl from the bundle's %s, into %s/bin)" % (
            etcd_tools.etcd_image(ctx.bundle), STATE_DIR),
            "archive the etcd snapshot, /etc/kubernetes/pki, the kubeadm configuration, %d journal(s) and the "
            "cluster record into %s/%s (mode 0600) with a .sha256 beside it" % (
                len(ctx.reachable_hosts), b["dir"], b["name"]),
            "copy it to %s:%s" % (host.label, REMOTE_DIR)]
        if b["keep"]:
            out.append("keep the %d newest backups in %s and on %s:%s" % (b["keep"], b["dir"], host.label, REMOTE_DIR))
        return out

    def run(self, ctx, host, conn, facts, journal, report=None):
        report = report or (lambda text: None)
        b = ctx.backup
        tmp_local = tempfile.mkdtemp(prefix="airgap-backup-")
        tmp_remote = "%s/.tmp-%s" % (REMOTE_DIR, b["id"])
        try:
            tools = etcd_tools.install(conn, etcd_tools.extract(ctx.bundle, tmp_local))
            members = members_of(conn.check(etcdctl(tools, "member list -w json"), "listing the etcd members",
                                            timeout=60).stdout)
            conn.check("mkdir -p %s && chmod 700 %s %s" % (quote(conn.path(tmp_remote)), quote(conn.path(REMOTE_DIR)),
                                                          quote(conn.path(tmp_remote))), "making %s" % tmp_remote)
            snap = tmp_remote + "/snapshot.db"
            conn.check(etcdctl(tools, "snapshot save %s" % quote(conn.path(snap))), "etcdctl snapshot save",
                       timeout=600)
            status_tool = tools.get("etcdutl") or tools["etcdctl"]
            res = conn.run("ETCDCTL_API=3 %s snapshot status %s -w json" % (status_tool, quote(conn.path(snap))),
                           check=False, timeout=300)
            try:
                snap_status = json.loads(res.stdout) if res.ok else None
            except ValueError:
                snap_status = None
            if snap_status is None:
                raise InstallerError("the etcd snapshot just saved does not pass `snapshot status`", command=res.cmd,
                                     stderr=res.stderr or res.stdout, hint="Check etcd's health and run backup again")
            report("etcd snapshot saved (%s bytes, %d member(s))" % (snap_status.get("totalSize"), len(members)))
            ca = conn.read_file("/etc/kubernetes/pki/ca.crt")
            m = {"etcd/snapshot.db": conn.read_file(snap),
                 "pki.tar.gz": conn.check("tar czf - -C %s pki" % quote(conn.path("/etc/kubernetes")),
                                          "archiving /etc/kubernetes/pki", binary=True).stdout,
                 "cluster.json": (json.dumps(ctx.previous_record, indent=1, sort_keys=True) + "\n").encode()}
            kc = conn.run("%s -n kube-system get configmap kubeadm-config -o yaml" % KUBECTL, check=False, timeout=60)
            notes = []
            if kc.ok and kc.stdout.strip():
                m["kubeadm-config.yaml"] = kc.stdout.encode("utf-8")
            else:
                notes.append("the kubeadm-config ConfigMap was not read: %s" % (kc.stderr or kc.stdout).strip()[-200:])
            for name in conn.run("ls -1 %s 2>/dev/null" % quote(conn.path(KUBE_DIR)), check=False).stdout.split():
                if name.endswith(".yaml"):
                    m["kubeadm/%s" % name] = conn.read_file("%s/%s" % (KUBE_DIR, name)) or b""
            for label, j in sorted(ctx.journals.items()):
                m["journals/%s.json" % label] = (json.dumps(j.data, indent=1, sort_keys=True) + "\n").encode()
            meta = {"format": archive.FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "id": b["id"], "takenOn": {"host": host.label, "node": ctx.node_name(host)},
                    "cluster": {"bundle": (ctx.previous_record or {}).get("bundle"),
                                "kubernetes": (ctx.previous_record or {}).get("kubernetes")},
                    "members": members, "caFingerprint": archive.ca_fingerprint(ca) if ca else None,
                    "snapshotStatus": snap_status, "etcdImage": etcd_tools.etcd_image(ctx.bundle), "notes": notes}
            m["meta.json"] = (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode()
            path = os.path.join(b["dir"], b["name"])
            digest = archive.write(path, m)
            b["path"], b["sha256"] = path, digest
            report("wrote %s (sha256 %s)" % (path, digest))
            remote = "%s/%s" % (REMOTE_DIR, b["name"])
            if os.path.abspath(conn.path(remote)) != os.path.abspath(path):
                conn.put(path, remote, 0o600)
                conn.put(path + ".sha256", remote + ".sha256", 0o600)
                report("copied to %s:%s" % (host.label, remote))
            if b["keep"]:
                gone = archive.prune(b["dir"], b["keep"])
                res = conn.run(archive.prune_command(conn.path(REMOTE_DIR), b["keep"]), check=False)
                gone += res.stdout.split()
                if gone:
                    report("removed %d older backup(s) (--keep %d): %s" % (len(gone), b["keep"], ", ".join(gone)))
            return ["backup %s" % path]
        finally:
            shutil.rmtree(tmp_local, ignore_errors=True)
            conn.run("rm -rf %s" % quote(conn.path(tmp_remote)), check=False)
