"""The upgrade's phases, in the order kubeadm documents (kubeadm-upgrade, "Upgrading kubeadm clusters"):
stage the new repo beside the old one, put the missing images into the registry, pre-pull on every node, then
per version step: the first control plane (kubeadm package, `kubeadm upgrade plan`, `kubeadm upgrade apply`,
drain, kubelet/kubectl, restart, uncordon), the other control planes one at a time (`kubeadm upgrade node`),
the network add-on when its manifest changed, the workers in batches of --max-unavailable.

Every node step checks the cluster's state first (Node kubelet version, our cordon annotation, the installed
package versions, the ClusterConfiguration's kubernetesVersion), so a re-run resumes where one stopped and never
runs `kubeadm upgrade apply` twice. A node we cordon carries ANNOTATION; only such nodes are uncordoned.
"""

from installer import constants as C
from installer import pins
from installer.changes import Callback, Command, WriteFile
from installer.constants import KUBECTL
from installer.errors import InstallerError
from installer.phases.base import Phase
from installer.ssh import quote
from installer.upgrade import hostupdate
from installer.upgrade import path as P
from installer.upgrade import state as S

STAGED_PREFIX = C.SERVE_ROOT + "/repo-"
UPGRADE_REPO_FILE = "/etc/yum.repos.d/airgap-upgrade.repo"
KUBELET_WAIT = 180  # seconds for a restarted kubelet to report its new version (and the API to answer)


def staged_dir(ctx):
    return STAGED_PREFIX + ctx.bundle_id[:12]


def install_kube(names, version):
    """The one way kube packages are installed: exactly `version`, past the bundle repo's excludes and any
    versionlock entry (installer.pins), then the versionlock entries moved to that version where the plugin is (and
    those of the other kube packages to what is installed now: a dependency may have moved along)."""
    specs = P.package_specs(names, version)
    install = "%s -y %s --disablerepo='*' --enablerepo='airgap-*' install %s" % (
        '"$(command -v dnf || echo yum)"', pins.install_flags(), " ".join(quote(s) for s in specs))
    others = [n for n in pins.KUBE if n not in names]  # dependencies the install may have moved (cri-tools)
    return " && ".join([install] + pins.relock_commands(specs) + pins.follow_installed(others))


def has_packages(names, version):
    return "rpm -q %s >/dev/null 2>&1" % " ".join(quote(s) for s in P.package_specs(names, version))


class OnHost(Command):
    """A Command run on another host of the operation (kubectl on the first control plane)."""

    def __init__(self, ctx, host, cmd, **kw):
        Command.__init__(self, cmd, **kw)
        self.ctx = ctx
        self.on = host

    def apply(self, conn, journal):
        return Command.apply(self, self.ctx.connections[self.on.label], journal)

    def skipped(self):
        return bool(self.unless) and self.ctx.connections[self.on.label].run(self.unless, check=False).ok


class Step(Phase):
    """Base of the phases that change nodes: a dry run asks every change's `unless` on the host it runs on."""

    journaled = False

    def dry_run(self, ctx, host, facts, conn=None):
        out = []
        for c in self.plan(ctx, host, facts):
            if isinstance(c, OnHost):
                if conn is not None and c.skipped():
                    continue
            elif conn is not None and getattr(c, "unless", None) and conn.run(c.unless, check=False).ok:
                continue
            out.append(c.describe())
        return out


class StageRepo(Step):
    """The new bundle's repository beside the old one on the serving host, and a repo file for it on every node
    (the old repo stays: nothing installed from it disappears)."""

    name = "upgrade_repo"
    title = "stage the new bundle's repository"

    def hosts(self, ctx):
        return ctx.reachable_hosts

    def watched_files(self, ctx, host):
        return [UPGRADE_REPO_FILE]

    def repo_file(self, ctx, host):
        d = staged_dir(ctx)
        url = ("file://%s" % d) if ctx.is_serve_host(host) else "%s/%s" % (ctx.repo_url, d[len(C.SERVE_ROOT) + 1:])
        # the pins' exclude as in the bundle repo: a plain `yum update` must not take kubelet or the runtime
        # from the staged repo either (the installer installs them past it, installer.pins)
        return ("# Written by airgap-installer (upgrade to Kubernetes %s).\n[airgap-upgrade]\nname=air-gapped "
                "upgrade bundle %s\nbaseurl=%s\nenabled=1\ngpgcheck=0\nmodule_hotfixes=1\nexclude=%s\n"
                % (ctx.bundle.k8s_version, ctx.bundle.name, url, pins.exclude_value(ctx.bundle)))

    def plan(self, ctx, host, facts):
        out = []
        if ctx.is_serve_host(host):
            d = staged_dir(ctx)
            out.append(Command("mkdir -p {d} && cp -a {src}/. {d}/ && chmod -R a+rX {d} && touch {d}/.complete"
                               .format(d=quote(d), src=quote(ctx.bundle.path("repo"))),
                               title="copy the new bundle's repository to %s" % d,
                               unless="test -e %s/.complete" % quote(d), undo="rm -rf %s" % quote(d)))
        if host in ctx.nodes:
            text = self.repo_file(ctx, host)
            if facts.file(UPGRADE_REPO_FILE) != text:
                out.append(WriteFile(UPGRADE_REPO_FILE, text))
        return out

class PushImages(Step):
    """Only the image digests the registry lacks (installer.registry_layout skips what is there)."""

    name = "upgrade_images"
    title = "missing images into the registry"

    def hosts(self, ctx):
        return [ctx.serve_host]

    def plan(self, ctx, host, facts):
        from installer.phases.registry import fill_registry
        journal = ctx.journals.get(host.label)
        if journal is not None and journal.pushed() == ctx.bundle_id:
            return []
        return [Callback("put the new bundle's missing image digests into the registry (%d images)"
                         % len(ctx.bundle.images), lambda conn, j: fill_registry(ctx, conn, j))]


def node_images(ctx, host, version):
    """What a node pulls before its upgrade: every step image on a control plane, kube-proxy and pause elsewhere."""
    images = P.hop_images(ctx.bundle.data, version)
    if host.is_control_plane:
        return images
    return [i for i in images if "/kube-proxy:" in i or "/pause:" in i]


class PrePull(Step):
    name = "upgrade_prepull"

    def __init__(self, version):
        self.version = version
        self.title = "pre-pull the %s images on every node" % P.text(version)

    def hosts(self, ctx):
        return [h for h in ctx.nodes if h.label in ctx.upgrade_todo.get(self.version, ())]

    def plan(self, ctx, host, facts):
        return [Command("crictl pull %s" % quote(i), title="pull %s" % i,
                        unless="crictl inspecti %s >/dev/null 2>&1" % quote(i), timeout=900)
                for i in node_images(ctx, host, self.version)]


def api_at_least(ctx, version):
    """kubelet never newer than the API server: the ClusterConfiguration (kubeadm upgrade apply) must be at
    `version` before a kubelet of that version starts."""
    conn = ctx.connections[ctx.first_cp.label]
    res = conn.run(S.CLUSTER_CONFIG, check=False, timeout=60)
    have = S.config_version(res.stdout) if res.ok else None
    if have is None or have < version:
        seen = P.text(have) if have else "an unknown version (%s)" % (
            (res.stderr or res.stdout).strip()[-200:] or "no kubernetesVersion in kubeadm-config")
        raise InstallerError("the API server is at %s, not %s: a kubelet %s must not start before it (version skew)"
                             % (seen, P.text(version), P.text(version)),
                             hint="Run ./install.py upgrade again: it upgrades the control plane first")
    return False


def wait_kubelet(ctx, name, version, timeout=KUBELET_WAIT):
    """The API answers again and Node `name` reports kubelet `version` (bounded)."""
    import time
    conn = ctx.connections[ctx.first_cp.label]
    deadline = time.time() + timeout
    seen = None
    while time.time() < deadline:
        res = conn.run(S.NODES, check=False, timeout=30)
        if res.ok:
            try:
                seen = S.nodes(res.stdout).get(name, {}).get("kubelet")
            except InstallerError:
                seen = None
            if seen == version:
                return False
        time.sleep(2)
    raise InstallerError("node %s did not report kubelet %s within %d s after the restart (last seen: %s)"
                         % (name, P.text(version), timeout, P.text(seen) if seen else "no answer"),
                         hint="See journalctl -u kubelet on %s; then run ./install.py upgrade again" % name)


class UpgradeNode(Step):
    """One node to `version`: the steps in kubeadm's order, each skipped when the cluster shows it done."""

    name = "upgrade_node"
    parallel = False

    def __init__(self, version, hosts, first=False, drain_timeout=300, title=None):
        self.version = version
        self._hosts = [h.label for h in hosts]
        self.first = first
        self.drain_timeout = drain_timeout
        self.name = "upgrade_%s" % ("apply" if first else "node")
        self.title = title or "upgrade to %s" % P.text(version)

    def hosts(self, ctx):
        return [h for h in ctx.nodes if h.label in self._hosts and h.label in ctx.upgrade_todo.get(self.version, ())]

    def plan(self, ctx, host, facts):
        v, vt = self.version, P.text(self.version)
        cp = ctx.first_cp
        name = ctx.node_name(host)
        state = live_state(ctx, name)
        out = []
        # the package first: kubeadm of the target version runs the upgrade
        out.append(Command(install_kube(["kubeadm"], v), title="install kubeadm %s" % vt,
                           unless=has_packages(["kubeadm"], v), timeout=1800))
        drain = []
        if not state["unschedulable"] or state["ours"]:  # a node the operator cordoned is not ours to cordon
            drain.append(OnHost(ctx, cp, "%s cordon %s && %s annotate --overwrite node %s %s=%s" % (
                KUBECTL, quote(name), KUBECTL, quote(name), S.ANNOTATION, ctx.upgrade_id),
                title="cordon %s (annotated %s)" % (name, S.ANNOTATION)))
        # --ignore-pdb: delete instead of evict, so no budget holds the drain (the preflight named them)
        drain.append(OnHost(ctx, cp, "%s drain %s --ignore-daemonsets --delete-emptydir-data --timeout=%ds%s" % (
            KUBECTL, quote(name), self.drain_timeout, " --disable-eviction" if getattr(ctx, "ignore_pdb", False)
            else ""), title="drain %s" % name, timeout=self.drain_timeout + 60))
        if self.first:
            out.append(Command("kubeadm upgrade plan %s" % quote("v" + vt), title="kubeadm upgrade plan v%s" % vt,
                               unless=applied_check(v), timeout=600))
            # never --ignore-preflight-errors=all
            out.append(Command("kubeadm upgrade apply %s --yes" % quote("v" + vt),
                               title="kubeadm upgrade apply v%s" % vt, unless=applied_check(v), timeout=1800))
            out += drain
        else:
            out += drain
            out.append(Command("kubeadm upgrade node", title="kubeadm upgrade node (%s)" % vt,
                               unless=has_packages(["kubelet"], v), timeout=1800))
        out.append(Callback("check the API server is at %s before kubelet %s" % (vt, vt),
                            lambda conn, j: api_at_least(ctx, v)))
        out.append(Command(install_kube(["kubelet", "kubectl"], v), title="install kubelet and kubectl %s" % vt,
                           unless=has_packages(["kubelet", "kubectl"], v), timeout=1800))
        window = hostupdate.window_changes(ctx, host)  # --with-runtime / --with-os-updates, still drained
        out += window
        if state["kubelet"] != v:  # the Node reports the running kubelet: at v, it was restarted already
            out.append(Command("systemctl daemon-reload && systemctl restart kubelet",
                               title="restart kubelet %s" % vt))
        if window:
            out.append(hostupdate.reboot_change(ctx, host))
        out.append(Callback("wait for %s to report kubelet %s" % (name, vt),
                            lambda conn, j: wait_kubelet(ctx, name, v)))
        out.append(OnHost(ctx, cp, "%s uncordon %s && %s annotate node %s %s-" % (
            KUBECTL, quote(name), KUBECTL, quote(name), S.ANNOTATION),
            title="uncordon %s" % name, unless=cordoned_by_us_check(name)))
        return out

    def dry_run(self, ctx, host, facts, conn=None):
        # the check and wait steps change nothing: not listed
        return [d for d in Step.dry_run(self, ctx, host, facts, conn)
                if not d.startswith(("check the API", "wait for"))]


def live_state(ctx, name):
    """The Node as the cluster shows it now (the state read at the start when the API does not answer)."""
    res = ctx.connections[ctx.first_cp.label].run(S.NODES, check=False, timeout=60)
    if res.ok:
        try:
            ctx.upgrade_nodes.update(S.nodes(res.stdout))
        except InstallerError:
            pass
    return ctx.upgrade_nodes.get(name) or {"kubelet": None, "unschedulable": False, "ours": None}


def applied_check(version):
    """True (exit 0) when the ClusterConfiguration is at `version` already (kubeadm upgrade apply is done)."""
    escaped = P.text(version).replace(".", "\\.")
    return "%s | grep -Eq 'kubernetesVersion: *v?%s([^0-9]|$)'" % (S.CLUSTER_CONFIG, escaped)


def cordoned_by_us_check(name):
    """True (exit 0, skip the uncordon) unless the node carries our annotation."""
    return "! %s get nodes %s -o json | grep -q '\"%s\"'" % (KUBECTL, quote(name), S.ANNOTATION)


class CNIIfChanged(Phase):
    """The network add-on, applied when the new bundle's manifest differs from the one applied (installer.phases.cni
    compares the rendered text and its applied marker)."""

    name = "upgrade_cni"
    title = "network add-on (when the bundle's manifest changed)"

    def __init__(self):
        from installer.phases.cni import CNI
        self.cni = CNI()

    def hosts(self, ctx):
        return [ctx.first_cp]

    def watched_files(self, ctx, host):
        return self.cni.watched_files(ctx, host)

    def should_run(self, ctx, host, facts):
        return self.cni.should_run(ctx, host, facts)

    def plan(self, ctx, host, facts):
        return self.cni.plan(ctx, host, facts)
