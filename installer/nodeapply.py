"""The phases of `./install.py node apply` (on the new host) and `node finish` (on the serving host): add-node's,
split at the join token (installer/commands/node.py runs them)."""

import json
import time

from installer import joinfile
from installer.addnode import ClusterHosts, NewHostsPreflight, OnNewHosts
from installer.constants import KUBECTL, KUBELET_CONF
from installer.errors import InstallerError
from installer.inventory import Inventory
from installer.phases.base import Phase
from installer.phases.host_prep import HostPrep
from installer.phases.join import JoinWorkers
from installer.phases.media_repo import MediaRepo
from installer.phases.packages import RequestedPackages
from installer.phases.runtime import Runtime
from installer.ssh import quote


MAX_CLOCK_BEHIND = 600


class LocalPreflight(NewHostsPreflight):
    """add-node's preflight for this host; the clock is compared with the join file's creation time (the serving
    host's clock then), since the serving host is not contacted."""

    def check_cluster(self, ctx, facts_by_label):
        errors, notes = NewHostsPreflight.check_cluster(self, ctx, facts_by_label)
        created = joinfile.parse_iso(ctx.join_file["created"])
        for h in self.hosts(ctx):
            f = facts_by_label.get(h.label)
            if f is not None and f.time and f.time < created - MAX_CLOCK_BEHIND and not ctx.options.force:
                errors.append("the clock of %s is %d s behind the serving host's (the join file was made at %s); set "
                              "the time first" % (h.label, created - f.time, ctx.join_file["created"]))
        return errors, notes


class JoinFromFile(JoinWorkers):
    """kubeadm join with the join file's token and CA hash (no connection to a control plane needed)."""

    def hosts(self, ctx):
        return [h for h in ctx.nodes if ctx.is_new(h)]

    def material(self, ctx, host):
        j = ctx.join_file
        if joinfile.expired(j):
            raise InstallerError("the join token of the join file expired at %s" % j["expires"], phase="join",
                                 hint="Run ./install.py node prepare --hosts %s again on the serving host and use "
                                      "the new join file; nothing was joined" % host.address)
        return j["token"], j["caCertHash"], None

    def cleanup(self, ctx):
        """The token belongs to node prepare/finish (other hosts of the batch use it too)."""


class KubeletUp(Phase):
    """After the join: the kubelet runs with its cluster credentials (Ready is checked by node finish, which can
    ask the API)."""

    name = "kubelet_up"
    title = "kubelet running"
    kind = "check"
    check_in_plan = False

    def hosts(self, ctx):
        return [h for h in ctx.nodes if ctx.is_new(h)]

    def check(self, ctx, timeout=60, interval=2):
        out = []
        for h in self.hosts(ctx):
            if h.label in ctx.skipped:
                continue
            conn = ctx.connections[h.label]
            deadline = time.time() + timeout
            while True:
                ok = conn.run("systemctl is-active kubelet >/dev/null && test -s %s" % KUBELET_CONF, check=False).ok
                if ok or time.time() > deadline:
                    break
                time.sleep(interval)
            if not ok:
                raise InstallerError("the kubelet is not running after the join", host=h.label, phase=self.name,
                                     command="systemctl status kubelet; journalctl -u kubelet",
                                     hint="Fix the kubelet and run node apply again")
            out.append((h.label, "kubelet running with %s" % KUBELET_CONF))
        return out


def node_apply_phases():
    """add-node's phases for one new host, run on it (preflight also probes the repo, registry and API)."""
    return [LocalPreflight(), OnNewHosts(MediaRepo()), OnNewHosts(HostPrep()), OnNewHosts(Runtime()),
            OnNewHosts(RequestedPackages()), JoinFromFile(), KubeletUp()]


def ready_nodes(nodes_json):
    """{InternalIP: (node name, Ready?)} from `kubectl get nodes -o json`."""
    out = {}
    for n in json.loads(nodes_json).get("items") or []:
        name = n["metadata"]["name"]
        st = n.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])
        for a in st.get("addresses") or []:
            if a.get("type") == "InternalIP":
                out[a.get("address")] = (name, ready)
    return out


class NodesJoined(Phase):
    """node finish, first: which new hosts are Nodes and Ready (by address; waits up to --wait). Those are
    named from the API and kept; the others are dropped from the operation (said, not recorded), and the token is
    then kept for them (ctx.finish_token None)."""

    name = "nodes_joined"
    title = "new nodes joined and Ready"
    kind = "check"

    def hosts(self, ctx):
        return [ctx.first_cp]

    def check(self, ctx, interval=3):
        new = [h for h in ctx.nodes if ctx.is_new(h)]
        if not new:
            return []
        conn = ctx.connections[ctx.first_cp.label]
        deadline = time.time() + getattr(ctx, "finish_wait", 0)
        while True:
            res = conn.run("%s get nodes -o json" % KUBECTL, check=False, timeout=120)
            seen = ready_nodes(res.stdout) if res.ok else {}
            if all(seen.get(h.address, ("", False))[1] for h in new) or time.time() >= deadline:
                break
            time.sleep(interval)
        if not res.ok:
            raise InstallerError("kubectl get nodes failed on %s" % ctx.first_cp.label, phase=self.name,
                                 stderr=res.stderr, hint="Check the API server, then run node finish again")
        lines, joined = [], []
        for h in new:
            name, ready = seen.get(h.address, (None, False))
            if name and ready:
                ctx.recorded_names[h.address] = name
                joined.append(h)
                lines.append((h.label, "joined as %s, Ready" % name))
            else:
                lines.append((h.label, "%s: not recorded; run ./install.py node apply on it, then node finish again"
                              % ("not Ready" if name else "has not joined")))
        left = [h for h in new if h not in joined]
        ctx.finish_left = [h.label for h in left]
        if left:  # the token stays for them (until it expires): apply on them, then finish again
            ctx.finish_token = None
        if left and not joined:
            raise InstallerError("none of the new hosts (%s) is a Ready node" % ", ".join(h.label for h in new),
                                 phase=self.name, hint="Nothing was changed; the join token and file are kept. Run "
                                                       "./install.py node apply --join FILE on each of them, then "
                                                       "node finish again")
        ctx.inventory = Inventory([h for h in ctx.inventory.hosts if h not in left], source=ctx.inventory.source)
        ctx.new_hosts = set(h.label for h in joined)
        return lines


class DeleteJoinToken(Phase):
    """At the end of node finish (also after a failure): the join token is deleted on the first control plane."""

    name = "delete_join_token"
    title = "delete the join token"
    kind = "check"
    check_in_plan = False

    def hosts(self, ctx):
        return [ctx.first_cp]

    def cleanup(self, ctx):
        token = getattr(ctx, "finish_token", None)
        conn = ctx.connections.get(ctx.first_cp.label)
        if not token or conn is None:
            return
        ctx.finish_token = None
        res = conn.run("kubeadm token delete %s" % quote(token), check=False)
        if not res.ok:
            ctx.log("note: could not delete the join token %s (it expires by itself): %s"
                    % (token, (res.stderr or "").strip()[-200:]))


def finish_phases():
    return [NodesJoined(), ClusterHosts(), DeleteJoinToken()]
