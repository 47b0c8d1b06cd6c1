"""upgrade: the path through the bundle's hops (downgrade and skipped-minor refusals), the cluster state read
from kubectl/rpm answers, half-done detection and which nodes still need a step, the preflight refusals, and
the node steps (kubeadm's order, never --ignore-preflight-errors, every step guarded by the cluster's state)."""

import json

import pytest

from installer.cli import parse
from installer.errors import InstallerError
from installer.ssh import Result
from installer.upgrade import path as P
from installer.upgrade import phases as U
from installer.upgrade import preflight as F
from installer.upgrade import run as R
from installer.upgrade import state as S

from .conftest import make_ctx


def data(target, hops=()):
    return {"kubernetes": {"version": target, "hops": [{"version": h, "images": ["registry.k8s.io/kube-apiserver:v"
                                                                                  + h]} for h in hops]},
            "images": [{"ref": "registry.k8s.io/kube-apiserver:v" + target},
                       {"ref": "registry.k8s.io/kube-proxy:v" + target}, {"ref": "registry.k8s.io/pause:3.9"}]}


def test_path_patch_minor_and_hops():
    assert P.steps((1, 30, 4), data("1.30.6")) == [(1, 30, 6)]
    assert P.steps((1, 30, 6), data("1.31.1")) == [(1, 31, 1)]
    assert P.steps((1, 30, 4), data("1.32.1", ["1.31.5"])) == [(1, 31, 5), (1, 32, 1)]
    assert P.steps((1, 31, 7), data("1.32.1", ["1.31.5"])) == [(1, 32, 1)]  # past the hop already
    assert P.steps((1, 32, 1), data("1.32.1", ["1.31.5"])) == []  # at the target: nothing to do
    assert P.steps((1, 30, 4), {"kubernetes": {"version": "v1.31.0"}}) == [(1, 31, 0)]  # old bundle.json


def test_path_refuses_a_downgrade_and_a_skipped_minor():
    with pytest.raises(InstallerError) as e:
        P.steps((1, 31, 1), data("1.30.6"))
    assert "downgrade" in str(e.value) and "Nothing was changed" in e.value.hint
    with pytest.raises(InstallerError) as e:
        P.steps((1, 30, 6), data("1.32.0"))
    assert "1.31: this bundle has no 1.31 hop" in str(e.value) and "upgradeThrough: [1.31.x]" in e.value.hint
    with pytest.raises(InstallerError) as e:
        P.steps((1, 29, 2), data("1.32.1", ["1.31.5"]))  # the first hop is two minors away
    assert "no 1.30 hop" in str(e.value)
    with pytest.raises(InstallerError) as e:
        P.chain(data("1.32.1", ["1.30.5"]))  # hops must be one minor apart, up to the target
    assert "not one minor apart" in str(e.value)


def test_hop_images_and_package_specs():
    d = data("1.32.1", ["1.31.5"])
    assert P.hop_images(d, (1, 31, 5)) == ["registry.k8s.io/kube-apiserver:v1.31.5"]
    assert P.hop_images(d, (1, 32, 1)) == ["registry.k8s.io/kube-apiserver:v1.32.1",
                                           "registry.k8s.io/kube-proxy:v1.32.1"]
    assert P.package_specs(["kubelet", "kubectl"], (1, 31, 5)) == ["kubelet-1.31.5", "kubectl-1.31.5"]
    cmd = U.install_kube(["kubeadm"], (1, 31, 5))
    install, _, relock = cmd.partition(" && ")
    # past the repo's excludes and any versionlock entry, then the entry moved (only where the plugin is)
    assert "--disableexcludes=all --disableplugin=versionlock" in install and install.endswith("install kubeadm-1.31.5")
    assert relock.startswith("if ") and "versionlock delete kubeadm" in relock
    assert "versionlock add kubeadm-1.31.5; fi" in relock


def nodes_json(**nodes):
    items = []
    for name, (version, unschedulable, ours) in nodes.items():
        meta = {"name": name, "annotations": {S.ANNOTATION: ours} if ours else {}}
        items.append({"metadata": meta, "spec": {"unschedulable": unschedulable},
                      "status": {"nodeInfo": {"kubeletVersion": version},
                                 "conditions": [{"type": "Ready", "status": "True"}]}})
    return json.dumps({"items": items})


def configmap(version):
    return json.dumps({"data": {"ClusterConfiguration": "apiVersion: kubeadm.k8s.io/v1beta3\nkind: "
                                "ClusterConfiguration\nkubernetesVersion: %s\n" % version}})


def test_state_from_kubectl_and_rpm_answers():
    assert S.config_version(configmap("v1.30.6")) == (1, 30, 6) and S.config_version("not json") is None
    n = S.nodes(nodes_json(cp1=("v1.30.6", False, None), w1=("v1.30.4", True, "op-1")))
    assert n["cp1"] == {"kubelet": (1, 30, 6), "unschedulable": False, "ours": None, "ready": True}
    assert n["w1"]["ours"] == "op-1" and n["w1"]["unschedulable"]
    assert S.packages("kubeadm 1.30.6-150500.1.1\nkubelet 1.30.4-150500.1.1\nfoo 1\n") == {
        "kubeadm": (1, 30, 6), "kubelet": (1, 30, 4)}
    with pytest.raises(InstallerError):
        S.current_version(None, n, None)
    assert S.current_version(None, n, "1.30.4") == (1, 30, 4)


def test_half_done_upgrade_is_detected_and_resumed_at_the_control_planes_version():
    n = S.nodes(nodes_json(cp1=("v1.30.6", False, None), w1=("v1.30.4", True, "op-1"), w2=("v1.30.6", False, None)))
    assert S.half_done((1, 30, 6), n) == ["w1"]  # behind, and left cordoned by us
    assert S.half_done((1, 30, 6), n, {"w2": {"kubeadm": (1, 30, 4)}}) == ["w1", "w2"]  # a package behind too
    assert S.skew_problems((1, 30, 4), n) == ["cp1: kubelet 1.30.6 is newer than the API server 1.30.4",
                                              "w2: kubelet 1.30.6 is newer than the API server 1.30.4"]
    names = {"10.0.0.11": "cp1", "10.0.0.12": "w1", "10.0.0.13": "w2"}
    done = dict((p, (1, 30, 6)) for p in S.KUBE_PACKAGES)
    todo = F.todo_by_step([(1, 30, 6), (1, 31, 1)], (1, 30, 6), n,
                          {"10.0.0.11": done, "10.0.0.12": {}, "10.0.0.13": done}, names)
    assert todo[(1, 30, 6)] == {"10.0.0.12"}  # cp1 and w2 are done: not touched again
    assert todo[(1, 31, 1)] == set(names)


class Answers:
    """A connection that answers the installer's read commands from canned text (kubectl/rpm outputs)."""

    def __init__(self, answers):
        self.answers = answers
        self.ran = []

    def run(self, cmd, check=True, timeout=None, **kw):
        self.ran.append(cmd)
        for key, (rc, out) in self.answers.items():
            if key in cmd:
                return Result(cmd, rc, out, "")
        return Result(cmd, 1, "", "not answered")

    def check(self, cmd, what=None, **kw):
        res = self.run(cmd)
        if not res.ok:
            raise InstallerError("%s failed" % cmd)
        return res


def cluster_ctx(bundle, cluster, kubelets, rpm):
    ctx = make_ctx(bundle, workers="10.0.0.12")
    for h, name in zip(ctx.nodes, ("cp1", "w1")):
        ctx.facts[name] = ctx.facts.pop(h.label)
        h.name = name
    conn = Answers({"configmap kubeadm-config": (0, configmap(cluster)),
                    "get nodes -o json": (0, nodes_json(**kubelets)), "rpm -q": (0, rpm),
                    "endpoint health": (0, "https://127.0.0.1:2379 is healthy\n"),
                    "certs check-expiration": (0, "CERTIFICATE EXPIRES RESIDUAL\napiserver Dec 01 364d\n"),
                    "get pdb": (0, json.dumps({"items": []}))})
    ctx.connections = dict((h.label, conn) for h in ctx.all_hosts)
    return ctx, conn


def test_compute_refuses_before_any_change_and_plans_the_steps(tmp_path):
    from .conftest import make_bundle
    newer = make_bundle(str(tmp_path / "b131"), k8s="1.31.1")
    ctx, conn = cluster_ctx(newer, "v1.30.6", {"cp1": ("v1.30.6", False, None), "w1": ("v1.30.6", False, None)},
                            "kubeadm 1.30.6-1\nkubelet 1.30.6-1\nkubectl 1.30.6-1\n")
    assert F.compute(ctx, "1.30.6") == [(1, 31, 1)]
    assert "upgrade path: 1.30.6 -> 1.31.1" == F.describe_path(ctx)
    reads = (S.CLUSTER_CONFIG, S.NODES, S.RPM_QUERY)
    assert conn.ran and all(c in reads for c in conn.ran), conn.ran  # only reads before the path is known
    bad, notes = F.problems(ctx, lambda h: ctx.facts.get(h.label), lambda cmd: conn.run(cmd, check=False))
    assert bad == [] and notes == []
    phases = R.step_phases(ctx, 1, 300)
    assert [p.name for p in phases] == ["upgrade_repo", "upgrade_images", "upgrade_prepull", "upgrade_apply",
                                        "upgrade_cni", "upgrade_node"]
    # two minors away: refused, naming the missing one
    skipping = make_bundle(str(tmp_path / "b132"), k8s="1.32.0")
    ctx, conn = cluster_ctx(skipping, "v1.30.6", {"cp1": ("v1.30.6", False, None)}, "")
    with pytest.raises(InstallerError) as e:
        F.compute(ctx, "1.30.6")
    assert "no 1.31 hop" in str(e.value)
    # half-done at a version this bundle does not carry: refused
    ctx, conn = cluster_ctx(newer, "v1.30.5", {"cp1": ("v1.30.5", False, None), "w1": ("v1.30.4", True, "x")}, "")
    with pytest.raises(InstallerError) as e:
        F.compute(ctx, "1.30.4")
    assert "half-way through an upgrade to 1.30.5" in str(e.value) and "w1" in str(e.value)


def test_preflight_refusals_name_the_problem(tmp_path):
    from .conftest import make_bundle
    newer = make_bundle(str(tmp_path / "b"), k8s="1.30.6")
    ctx, conn = cluster_ctx(newer, "v1.30.4", {"cp1": ("v1.30.4", False, None), "w1": ("v1.30.4", False, None)},
                            "kubeadm 1.30.4-1\n")
    F.compute(ctx, "1.30.4")
    conn.answers["certs check-expiration"] = (0, "CERTIFICATE EXPIRES RESIDUAL\napiserver Jan 01 2020 <invalid>\n")
    conn.answers["endpoint health"] = (1, "")
    ctx.upgrade_nodes["w1"]["ready"] = False
    ctx.facts[ctx.nodes[1].label].disk_free_mb = 100
    newer.data["images"] = newer.data["images"][:1]  # only pause: no v1.30.6 control-plane images
    bad, _ = F.problems(ctx, lambda h: ctx.facts.get(h.label), lambda cmd: conn.run(cmd, check=False))
    text = "; ".join(bad)
    for want in ("node w1 is not Ready", "etcd is not healthy", "certificates expired: apiserver",
                 "w1 has 100 MB free on /var", "the bundle has no kube-apiserver/kube-proxy images of v1.30.6"):
        assert want in text, text


def test_node_steps_follow_kubeadms_order_and_check_the_cluster(bundle):
    ctx, conn = cluster_ctx(bundle, "v1.30.4", {"cp1": ("v1.30.4", False, None), "w1": ("v1.30.4", False, None)}, "")
    ctx.upgrade_nodes, ctx.upgrade_id = {}, "op-7"
    first = U.UpgradeNode((1, 30, 6), [ctx.first_cp], first=True).plan(ctx, ctx.first_cp, None)
    titles = [c.describe() for c in first]
    assert titles[:5] == ["install kubeadm 1.30.6", "kubeadm upgrade plan v1.30.6", "kubeadm upgrade apply v1.30.6",
                          "cordon cp1 (annotated airgap-bundler/cordoned-by)", "drain cp1"]
    assert titles[-4:] == ["install kubelet and kubectl 1.30.6", "restart kubelet 1.30.6",
                           "wait for cp1 to report kubelet 1.30.6", "uncordon cp1"]
    apply = first[2]
    assert "--ignore-preflight-errors" not in apply.cmd and "kubeadm-config" in apply.unless  # never twice
    worker = ctx.nodes[1]
    steps = U.UpgradeNode((1, 30, 6), [worker]).plan(ctx, worker, None)
    assert [c.describe() for c in steps][:4] == ["install kubeadm 1.30.6", "cordon w1 (annotated "
                                                 "airgap-bundler/cordoned-by)", "drain w1",
                                                 "kubeadm upgrade node (1.30.6)"]
    assert "airgap-bundler/cordoned-by=op-7" in steps[1].cmd
    # a node the operator cordoned (no annotation of ours): neither cordoned again nor ever uncordoned by us
    conn.answers["get nodes -o json"] = (0, nodes_json(cp1=("v1.30.4", False, None), w1=("v1.30.4", True, None)))
    steps = U.UpgradeNode((1, 30, 6), [worker]).plan(ctx, worker, None)
    assert [c.describe() for c in steps][1:3] == ["drain w1", "kubeadm upgrade node (1.30.6)"]  # drained, no cordon
    assert S.ANNOTATION in steps[-1].unless  # the uncordon runs only on a node carrying our annotation
    # resumed on a node already restarted at 1.30.6 and left cordoned by us: no restart, the uncordon is left
    conn.answers["get nodes -o json"] = (0, nodes_json(cp1=("v1.30.6", False, None), w1=("v1.30.6", True, "op-6")))
    titles = [c.describe() for c in U.UpgradeNode((1, 30, 6), [worker]).plan(ctx, worker, None)]
    assert "restart kubelet 1.30.6" not in titles and titles[-1] == "uncordon w1"


def test_the_kubelet_never_starts_ahead_of_the_api_server(bundle):
    ctx, conn = cluster_ctx(bundle, "v1.30.4", {"cp1": ("v1.30.4", False, None)}, "")
    with pytest.raises(InstallerError) as e:
        U.api_at_least(ctx, (1, 30, 6))
    assert "version skew" in str(e.value)
    assert U.api_at_least(ctx, (1, 30, 4)) is False


def test_parse_upgrade_and_its_plan():
    a = parse(["upgrade", "--max-unavailable", "2", "-y"])
    assert (a.command, a.plan, a.max_unavailable, a.yes) == ("upgrade", False, 2, True)
    a = parse(["plan", "upgrade", "--skip-unreachable", "w1"])
    assert (a.command, a.plan, a.skip_unreachable) == ("upgrade", True, "w1")


def test_phases_per_step_control_planes_one_at_a_time_workers_in_batches(bundle):
    from installer.inventory import from_flags
    ctx = make_ctx(bundle, workers="10.0.0.12")
    ctx.inventory = from_flags("10.0.0.11,10.0.0.14", "10.0.0.12,10.0.0.13,10.0.0.15")
    ctx.upgrade_steps = [(1, 31, 5), (1, 32, 1)]
    phases = R.step_phases(ctx, 2, 300)
    assert [p.name for p in phases] == ["upgrade_repo", "upgrade_images"] + [
        "upgrade_prepull", "upgrade_apply", "upgrade_node", "upgrade_node", "upgrade_node"] + [
        "upgrade_prepull", "upgrade_apply", "upgrade_node", "upgrade_cni", "upgrade_node", "upgrade_node"]
    cps, w1, w2 = phases[4:7]
    assert not cps.parallel and cps._hosts == ["10.0.0.14"]  # the other control planes: one at a time
    assert w1.parallel and w1._hosts == ["10.0.0.12", "10.0.0.13"] and w2._hosts == ["10.0.0.15"]
    assert phases[3].version == (1, 31, 5) and phases[8].version == (1, 32, 1)  # the hop first
    ctx.upgrade_steps = []
    assert R.step_phases(ctx, 1, 300) == []  # at the target: nothing after the preflight
