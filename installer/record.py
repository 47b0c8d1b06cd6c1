"""The cluster record: which bundle was installed on which hosts with which options, so that status, plan,
reset (and later day-2 commands) know the cluster without the operator retyping it.

Kept in two places, both written atomically: on the serving host (/etc/airgap-bundler/cluster.json, the
truth for that datacenter) and beside install.py in the bundle directory (cluster.json, so a copied bundle
directory still knows its cluster). It is written when an install starts (state "installing", so a failed
install can still be reset without retyping hosts) and again when it finished.
"""

import hashlib
import json
import os
import time

from installer.constants import KUBECTL
from installer.errors import InstallerError
from installer.inventory import Host, Inventory
from installer.ssh import quote

SERVE_RECORD = "/etc/airgap-bundler/cluster.json"
BUNDLE_RECORD = "cluster.json"
RECORD_VERSION = 1
# operator options that describe the cluster (a later command reuses them unless given again)
OPTION_DEFAULTS = {
    "selinux": "enforcing", "firewalld": "on", "timezone": None, "iso": None, "media": None, "pod_subnet": None,
    "control_plane_endpoint": None, "serve_address": None, "verify_timeout": 600, "upstream_dns": None,
    "registry": None, "registry_ca": None,  # your own registry (its credentials are never recorded)
}
HISTORY_KEEP = 50
HOST_TYPES = (("role", str), ("name", str), ("nodeName", str), ("user", str), ("port", int), ("key", str),
              ("alias", str))
# the record's sections and their JSON types (a damaged record is refused naming the section, never a traceback)
RECORD_TYPES = (("state", str), ("bundle", dict), ("options", dict), ("serveHost", dict), ("history", list),
                ("kubernetes", str), ("registry", dict), ("upgrading", dict))
# the in-cluster copy (kubectl -n kube-system get configmap airgap-bundler-cluster -o yaml)
CONFIGMAP_NAMESPACE = "kube-system"
CONFIGMAP_NAME = "airgap-bundler-cluster"
CONFIGMAP_KEY = "cluster.json"


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def bundle_sha256(bundle_dir):
    """sha256 of the bundle's bundle.json: what day-2 commands compare to refuse a different bundle."""
    p = os.path.join(bundle_dir, "bundle.json")
    if not os.path.exists(p):
        return None
    with open(p, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def serve_record_path(root="/"):
    return os.path.join(root, SERVE_RECORD.lstrip("/"))


def find(root, bundle_dir):
    """(record dict, path) from the serving host, else from beside the bundle; (None, None) if neither."""
    for path in (serve_record_path(root), os.path.join(bundle_dir, BUNDLE_RECORD)):
        if not os.path.exists(path):
            continue
        try:
            if not os.path.isfile(path):  # a FIFO would block the open, a directory says nothing useful
                raise IOError("not a regular file")
            with open(path) as f:
                data = json.load(f)
        except (IOError, OSError, ValueError, RecursionError) as e:
            raise InstallerError("the cluster record %s cannot be read (%s)" % (path, e),
                                 hint="Give the hosts again (-i INVENTORY or --control-plane/--workers): the "
                                      "record is rewritten by the next install; or remove the damaged file") from None
        return check(data, path), path
    return None, None


def check(data, path):
    """The record as read from `path`, refused in one paragraph naming the section when it is damaged."""
    if not isinstance(data, dict) or not isinstance(data.get("inventory"), dict) or \
            not data["inventory"].get("hosts"):
        raise InstallerError("the cluster record %s has no inventory" % path,
                             hint="Give the hosts again (-i INVENTORY or --control-plane/--workers)")
    wrong = [k for k, t in RECORD_TYPES if data.get(k) is not None and not isinstance(data[k], t)]
    hosts = data["inventory"]["hosts"]
    if not isinstance(hosts, list):
        wrong.insert(0, "inventory.hosts")
    else:
        wrong[:0] = ["inventory.hosts[%d]" % i for i, h in enumerate(hosts)
                     if not isinstance(h, dict) or not isinstance(h.get("address"), str) or
                     any(h.get(k) is not None and not isinstance(h[k], t) for k, t in HOST_TYPES)]
    bundle = data.get("bundle") or {}
    wrong += ["bundle.%s" % k for k in ("sha256", "dir")
              if isinstance(bundle, dict) and bundle.get(k) is not None and not isinstance(bundle[k], str)]
    if wrong:
        raise InstallerError("the cluster record %s is damaged: %s %s not of the type the installer writes"
                             % (path, ", ".join(wrong), "is" if len(wrong) == 1 else "are"),
                             hint="Give the hosts again (-i INVENTORY or --control-plane/--workers): the "
                                  "record is rewritten by the next install; or remove the damaged file")
    return data


def inventory_from(data, path):
    hosts = []
    for h in data["inventory"]["hosts"]:
        try:
            hosts.append(Host(h["address"], h["role"], name=h.get("name"), user=h.get("user"), port=h.get("port"),
                              key=h.get("key"), alias=h.get("alias"), become=h.get("become")))
        except (KeyError, TypeError, ValueError):
            raise InstallerError("the cluster record %s has a malformed host entry %r" % (path, h),
                                 hint="Give the hosts again (-i INVENTORY or --control-plane/--workers)") from None
    return Inventory(hosts, source="cluster record %s" % path)


def host_entries(inventory, node_name=None):
    # the key as an absolute path: later commands may run from another directory
    out = []
    for h in inventory.hosts:
        e = {"address": h.address, "role": h.role, "name": h.name, "user": h.user, "port": h.port,
             "key": os.path.abspath(h.key) if h.key else None, "alias": h.alias, "become": h.become}
        if node_name is not None:
            e["nodeName"] = node_name(h)  # what the cluster calls it (day-2 commands find it by this name)
        out.append(e)
    return out


def recorded_names(data):
    """address -> node name, from a record (for hosts an operation does not reach)."""
    return dict((h.get("address"), h.get("nodeName")) for h in ((data or {}).get("inventory") or {}).get("hosts", [])
                if h.get("nodeName"))


def differences(recorded, given):
    """Human-readable differences between two inventories (address and role), [] when they agree."""
    rec = dict((h.address, h.role) for h in recorded.hosts)
    giv = dict((h.address, h.role) for h in given.hosts)
    out = []
    for a in sorted(set(giv) - set(rec)):
        out.append("%s (%s) is not in the record" % (a, giv[a]))
    for a in sorted(set(rec) - set(giv)):
        out.append("%s (%s) is recorded but not given" % (a, rec[a]))
    for a in sorted(set(rec) & set(giv)):
        if rec[a] != giv[a]:
            out.append("%s is recorded as %s but given as %s" % (a, rec[a], giv[a]))
    return out


class ClusterRecord(object):
    """Builds and writes the record for one operation."""

    def __init__(self, previous=None):
        self.data = dict(previous or {})

    def start(self, operation, ctx, dns=None, operation_id=None):
        b = ctx.bundle
        d = self.data
        d["recordVersion"] = RECORD_VERSION
        d["state"] = "installing" if operation == "install" else d.get("state", "installed")
        d["bundle"] = {"name": b.name, "version": b.data.get("version"), "id": ctx.bundle_id,
                       "sha256": bundle_sha256(b.root), "os": b.os,
                       "arch": b.arch, "runtime": b.runtime, "cni": b.cni, "dir": b.root}
        d["kubernetes"] = b.k8s_version
        self.set_inventory(ctx)
        d["serveHost"] = {"address": ctx.serve_address, "name": ctx.node_name(ctx.serve_host)}
        d["options"] = dict((k, getattr(ctx.options, k, v)) for k, v in sorted(OPTION_DEFAULTS.items()))
        if dns is not None:
            d["dns"] = dns
        own = getattr(ctx, "own_registry", None)
        if own is not None:
            d["registry"] = own.describe()  # address, prefix, CA fingerprint
        else:
            d.pop("registry", None)
        history = list(d.get("history") or [])
        entry = {"operation": operation, "started": _now(), "result": "in progress", "pid": os.getpid()}
        if operation_id:
            entry["id"] = operation_id
        history.append(entry)
        d["history"] = history[-HISTORY_KEEP:]
        d["updated"] = _now()

    def set_inventory(self, ctx):
        self.data["inventory"] = {"source": ctx.inventory.source, "hosts": host_entries(ctx.inventory, ctx.node_name)}

    def finish(self, result, state=None):
        if state:
            self.data["state"] = state
        if self.data.get("history"):
            self.data["history"][-1].update({"result": result, "finished": _now()})
        self.data["updated"] = _now()

    def text(self):
        return json.dumps(self.data, indent=1, sort_keys=True) + "\n"

    def write(self, serve_conn, bundle_dir, say=None):
        """Write both copies (each atomically). The serving host's copy must succeed; the bundle-side copy
        is best effort (the bundle may sit on read-only media) and a failure is said. serve_conn None: only
        the bundle-side copy."""
        text = self.text()
        if serve_conn is not None:
            serve_conn.write_file(SERVE_RECORD, text, 0o600)
        path = os.path.join(bundle_dir, BUNDLE_RECORD)
        tmp = "%s.tmp-%d" % (path, os.getpid())
        try:
            with open(tmp, "w") as f:
                f.write(text)
            os.chmod(tmp, 0o600)
            os.rename(tmp, path)
        except (IOError, OSError) as e:
            if os.path.exists(tmp):
                os.unlink(tmp)
            if say:
                say("note: cannot write the cluster record beside the bundle (%s: %s); the serving host's copy "
                    "%s is kept" % (path, e.strerror or e, SERVE_RECORD))

    def publish(self, cp_conn, say=None):
        """The in-cluster copy: kubectl apply the ConfigMap kube-system/airgap-bundler-cluster on a control plane,
        so the cluster itself says which bundle and hosts made it. A copy only: a failure is said, not raised
        (the serving host's record is the truth, and the operation itself is done). Returns True if applied."""
        res = cp_conn.run("%s apply -f -" % KUBECTL, input=configmap(self.text()), check=False, timeout=120)
        if not res.ok and say:
            say("note: the cluster record's in-cluster copy (ConfigMap %s/%s) was not updated: %s; the serving "
                "host's %s is" % (CONFIGMAP_NAMESPACE, CONFIGMAP_NAME,
                                  (_text(res.stderr) or _text(res.stdout)).strip()[-300:], SERVE_RECORD))
        return res.ok

    def remove_serve_copy(self, serve_conn):
        serve_conn.run("rm -f %s; rmdir %s 2>/dev/null; true" % (
            quote(serve_conn.path(SERVE_RECORD)), quote(serve_conn.path(os.path.dirname(SERVE_RECORD)))), check=False)


def configmap(record_text):
    """The record as the ConfigMap kube-system/airgap-bundler-cluster (YAML for kubectl apply; the JSON is
    one block scalar, its lines are never empty)."""
    return ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: %s\n"
            "  labels:\n    app.kubernetes.io/managed-by: airgap-bundler\ndata:\n  %s: |\n%s"
            % (CONFIGMAP_NAME, CONFIGMAP_NAMESPACE, CONFIGMAP_KEY,
               "".join("    %s\n" % ln for ln in record_text.splitlines())))


def configmap_record(kubectl_json):
    """The record held by `kubectl get configmap airgap-bundler-cluster -o json` output; None when it holds none."""
    data = (json.loads(kubectl_json).get("data") or {}).get(CONFIGMAP_KEY)
    record = json.loads(data) if data else None
    if not isinstance(record, dict) or not isinstance(record.get("inventory"), dict) or \
            not record["inventory"].get("hosts"):
        return None
    return record


def read_configmap(conn):
    """The in-cluster copy of the record, read with the admin kubeconfig on `conn` (a control plane); None when it
    cannot be read (no API, no ConfigMap, not a record)."""
    res = conn.run("%s -n %s get configmap %s -o json" % (KUBECTL, CONFIGMAP_NAMESPACE, CONFIGMAP_NAME),
                   check=False, timeout=60)
    if not res.ok:
        return None
    try:
        return configmap_record(res.stdout)
    except ValueError:
        return None


def in_cluster_fallback(root, why, say):
    """status without a readable record on this host: the ConfigMap copy, when this host is a control plane
    (its admin kubeconfig). Returns (record, description) or None."""
    from installer.constants import ADMIN_CONF
    from installer.ssh import Local
    conn = Local("localhost", root)
    if not conn.exists(ADMIN_CONF):
        return None
    data = read_configmap(conn)
    if data is None:
        return None
    where = "the in-cluster copy (ConfigMap %s/%s)" % (CONFIGMAP_NAMESPACE, CONFIGMAP_NAME)
    say("note: %s; status uses %s" % (why, where))
    return data, where


def _text(b):
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else (b or "")


def mark_aborted(root, bundle_dir):
    """--abort: the record's operation left "in progress" by an interrupted run is marked aborted (both copies
    that exist on this host). Returns the paths changed."""
    changed = []
    for path in (serve_record_path(root), os.path.join(bundle_dir, BUNDLE_RECORD)):
        if not os.path.isfile(path):  # absent, or a FIFO that would block the read
            continue
        try:
            with open(path) as f:
                data = json.load(f)
        except (IOError, OSError, ValueError, RecursionError):
            continue
        history = data.get("history") if isinstance(data, dict) else None
        last = history[-1] if isinstance(history, list) and history else None
        if not isinstance(last, dict) or last.get("result") != "in progress":
            continue
        last.update({"result": "aborted", "finished": _now()})
        data["updated"] = _now()
        tmp = "%s.tmp-%d" % (path, os.getpid())
        with open(tmp, "w") as f:
            f.write(json.dumps(data, indent=1, sort_keys=True) + "\n")
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
        changed.append(path)
    return changed
