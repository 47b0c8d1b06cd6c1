"""upgrade: the path through the bundle's hops (downgrade and skipped-minor refusals), the cluster state read
from kubectl/rpm answers, half-done detection and which nodes still need a step, the preflight refusals, and
the node steps (kubeadm's order, never --ignore-preflight-errors, every step guarded by the cluster's state)."""

import json

import pytest

from installer.cli import parse
from installer.errors import InstallerError
from installer.ssh import Result
from installer.upgrade import checks as K
from installer.upgrade import hostupdate as H
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


def members_json(*members):
    return json.dumps({"members": [{"name": n, "ID": 100 + i, "clientURLs": [u] if u else []}
                                   for i, (n, u) in enumerate(members)]})


def health_json(*endpoints):
    return json.dumps([dict({"endpoint": u, "health": ok}, **({} if ok else {"error": "context deadline exceeded"}))
                       for u, ok in endpoints])


def cluster_ctx(bundle, cluster, kubelets, rpm):
    ctx = make_ctx(bundle, workers="10.0.0.12")
    for h, name in zip(ctx.nodes, ("cp1", "w1")):
        ctx.facts[name] = ctx.facts.pop(h.label)
        h.name = name
    conn = Answers({"configmap kubeadm-config": (0, configmap(cluster)),
                    "get nodes -o json": (0, nodes_json(**kubelets)), "rpm -q": (0, rpm),
                    "member list": (0, members_json(("cp1", "https://10.0.0.11:2379"))),
                    "endpoint health --cluster": (0, health_json(("https://10.0.0.11:2379", True))),
                    "get pods -A": (0, json.dumps({"items": []})),
                    "du -sk": (0, "204800\n10485760\n"),
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
    conn.answers["endpoint health --cluster"] = (1, "")
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


def pods_json(*pods):
    """(name, node, labels, owner) -> kubectl get pods -A -o json in namespace default."""
    return json.dumps({"items": [{"metadata": {"name": n, "namespace": "default", "labels": labels,
                                               "ownerReferences": [{"kind": owner}]},
                                  "spec": {"nodeName": node}, "status": {"phase": "Running"}}
                                 for n, node, labels, owner in pods]})


def pdbs_json(*budgets):
    """(name, selector, allowed) -> kubectl get pdb -A -o json in namespace default."""
    return json.dumps({"items": [{"metadata": {"name": n, "namespace": "default"}, "spec": {"selector": sel},
                                  "status": {"disruptionsAllowed": allowed, "expectedPods": 1}}
                                 for n, sel, allowed in budgets]})


def test_pdb_that_holds_a_drain_refuses_naming_budget_selector_and_node(tmp_path):
    from .conftest import make_bundle
    newer = make_bundle(str(tmp_path / "b"), k8s="1.30.6")
    ctx, conn = cluster_ctx(newer, "v1.30.4", {"cp1": ("v1.30.4", False, None), "w1": ("v1.30.4", False, None)},
                            "")
    F.compute(ctx, "1.30.4")
    conn.answers["get pods -A"] = (0, pods_json(("web-0", "w1", {"app": "web"}, "ReplicaSet"),
                                                ("agent-x", "w1", {"app": "agent"}, "DaemonSet"),
                                                ("db-0", "cp1", {"app": "db", "tier": "x"}, "StatefulSet")))
    conn.answers["get pdb"] = (0, pdbs_json(
        ("web", {"matchLabels": {"app": "web"}}, 0),  # holds w1's drain
        ("agent", {"matchLabels": {"app": "agent"}}, 0),  # a DaemonSet pod: a drain leaves it (--ignore-daemonsets)
        ("db", {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]}, 1),  # allows one
        ("none", None, 0)))  # no selector: selects nothing
    run_cp = lambda cmd: conn.run(cmd, check=False)  # noqa: E731
    bad, notes = F.problems(ctx, lambda h: ctx.facts.get(h.label), run_cp)
    assert [b for b in bad if "PodDisruptionBudget" in b] == [
        "PodDisruptionBudget default/web (selector app=web) allows no disruption and covers default/web-0 on node "
        "w1, which the upgrade must drain (scale the workload up or relax the budget, or pass --ignore-pdb)"], bad
    # w1 already upgraded (not drained again): its budget does not matter
    ctx.upgrade_todo = {(1, 30, 6): {ctx.first_cp.label}}
    assert K.pdb_problems(ctx, run_cp) == ([], [])
    # --ignore-pdb: a note, and every drain deletes instead of evicting
    ctx.upgrade_todo = {(1, 30, 6): set(h.label for h in ctx.nodes)}
    ctx.ignore_pdb = True
    bad, notes = K.pdb_problems(ctx, run_cp)
    assert bad == [] and notes[0].startswith("--ignore-pdb: PodDisruptionBudget default/web (selector app=web)")
    ctx.upgrade_nodes, ctx.upgrade_id = {}, "op-1"
    drain = [c for c in U.UpgradeNode((1, 30, 6), [ctx.nodes[1]]).plan(ctx, ctx.nodes[1], None)
             if c.describe() == "drain w1"][0]
    assert drain.cmd.endswith("--disable-eviction")
    ctx.ignore_pdb = False
    # budgets that cannot be listed: refused (unknown is not feasible), a note with --ignore-pdb
    conn.answers["get pdb"] = (1, "")
    assert "could not list the PodDisruptionBudgets" in K.pdb_problems(ctx, run_cp)[0][0]
    assert K.describe_selector({}) == "{} (every pod of the namespace)"
    assert K.describe_selector({"matchLabels": {"a": "1"}, "matchExpressions": [
        {"key": "b", "operator": "NotIn", "values": ["x", "y"]}, {"key": "c", "operator": "Exists"},
        {"key": "d", "operator": "DoesNotExist"}]}) == "a=1,b notin (x,y),c,!d"


def test_etcd_health_of_every_member():
    members = members_json(("cp1", "https://10.0.0.11:2379"), ("cp2", "https://10.0.0.12:2379"), ("cp3", None))
    health = health_json(("https://10.0.0.11:2379", True), ("https://10.0.0.12:2379", False))
    assert K.etcd_health(members, health, ["cp1", "cp2", "cp3", "cp4"]) == [
        "etcd member cp2 is not healthy (https://10.0.0.12:2379: context deadline exceeded)",
        "etcd member cp3 has not started (no client URL)",
        "control plane cp4 has no etcd member"]
    ok = health_json(("https://10.0.0.11:2379", True), ("https://10.0.0.12:2379", True))
    assert K.etcd_health(members_json(("cp1", "https://10.0.0.11:2379"), ("cp2", "https://10.0.0.12:2379")), ok,
                         ["cp1", "cp2"]) == []
    assert K.etcd_health("", ok)[0].startswith("etcd did not list its members")
    assert K.etcd_health(members, "Error: context deadline exceeded")[0].startswith(
        "etcd endpoint health --cluster did not answer")
    # asked from the first control plane: member list, then health --cluster (every member, not only its own)
    ran = []

    def run_cp(cmd):
        ran.append(cmd)
        return Result(cmd, 0, members if "member list" in cmd else health, "")
    out = K.etcd_problems(run_cp, "cp1", ["cp1"])
    assert out[0] == "etcd is not healthy: etcd member cp2 is not healthy (https://10.0.0.12:2379: context " \
                     "deadline exceeded)"
    assert "exec etcd-cp1 -- etcdctl" in ran[0] and ran[1].endswith("endpoint health --cluster -w json")


def test_room_to_stage_the_new_repository_on_the_serving_host(tmp_path):
    from .conftest import make_bundle
    newer = make_bundle(str(tmp_path / "b"), k8s="1.30.6")
    ctx, conn = cluster_ctx(newer, "v1.30.4", {"cp1": ("v1.30.4", False, None)}, "")
    conn.answers["du -sk"] = (0, "2097152\n1048576\n")  # a 2 GB repo, 1 GB free
    assert K.staging_space(ctx) == ["%s has 1024 MB free on /opt/airgap, staging the new repository needs 2560 MB "
                                    "(2048 MB + 512 MB margin)" % ctx.serve_host.label]
    assert "cp -a" not in " ".join(conn.ran) and "df -Pk" in conn.ran[-1]  # measured, nothing copied
    conn.answers["du -sk"] = (0, "staged\n")  # a re-run: already staged
    assert K.staging_space(ctx) == []
    conn.answers["du -sk"] = (0, "4096\n10485760\n")
    assert K.staging_space(ctx) == []
    conn.answers["du -sk"] = (1, "du: cannot access\n")
    assert "could not measure" in K.staging_space(ctx)[0]
    ctx.skipped.add(ctx.serve_host.label)
    assert K.staging_space(ctx) == []


def test_staged_repo_keeps_the_pins_exclude(bundle):
    ctx = make_ctx(bundle, workers="10.0.0.12")
    text = U.StageRepo().repo_file(ctx, ctx.nodes[1])
    assert "\nexclude=kubelet kubeadm kubectl cri-tools kubernetes-cni containerd.io docker-ce\n" in text


def test_runtime_and_os_updates_in_the_drained_window(bundle):
    ctx, conn = cluster_ctx(bundle, "v1.30.4", {"cp1": ("v1.30.4", False, None), "w1": ("v1.30.4", False, None)}, "")
    ctx.upgrade_nodes, ctx.upgrade_id = {}, "op-1"
    worker = ctx.nodes[1]
    plain = [c.describe() for c in U.UpgradeNode((1, 30, 6), [worker]).plan(ctx, worker, None)]
    assert not [t for t in plain if t.startswith(("update the", "reboot"))]  # off by default
    ctx.with_runtime = ctx.with_os_updates = True
    steps = U.UpgradeNode((1, 30, 6), [worker]).plan(ctx, worker, None)
    titles = [c.describe() for c in steps]
    i = titles.index
    runtime = steps[i("update the runtime to containerd.io-1.7.20, docker-ce-26.1.0 (restart containerd, docker)")]
    os_up = steps[i("update the OS packages from the media and bundle repositories (pins excluded)")]
    reboot = i("reboot w1 if needed (needs-restarting -r, else a newer kernel), wait for it and its kubelet")
    # inside the drained window: after the drain and the new kubelet, the reboot after the restart, then uncordon
    assert i("drain w1") < i("install kubelet and kubectl 1.30.6") < titles.index(runtime.describe()) \
        < titles.index(os_up.describe()) < i("restart kubelet 1.30.6") < reboot < i("uncordon w1")
    assert "--disableexcludes=all --disableplugin=versionlock" in runtime.cmd and "systemctl restart containerd" \
        in runtime.cmd and "versionlock add containerd.io-1.7.20 docker-ce-26.1.0" in runtime.cmd
    assert runtime.unless == "rpm -q containerd.io-1.7.20 docker-ce-26.1.0 >/dev/null 2>&1"
    assert "--disableexcludes" not in os_up.cmd and "--enablerepo='airgap-*'" in os_up.cmd
    assert "-x kubelet" in os_up.cmd and "-x containerd.io" in os_up.cmd and "check-update" in os_up.unless
    # plan shows them (the reboot too: it is decided on the host when the run gets there)
    shown = U.UpgradeNode((1, 30, 6), [worker]).dry_run(ctx, worker, None)
    assert runtime.describe() in shown and os_up.describe() in shown and titles[reboot] in shown


def test_reboot_decision():
    assert H.needs_reboot("running 5.14.0-427.el9.x86_64\nkernel 5.14.0-427.el9.x86_64\nneeds-restarting 1\n")[0]
    assert not H.needs_reboot("running 5.14.0-427.el9.x86_64\nkernel 5.14.0-503.el9.x86_64\nneeds-restarting 0\n")[0]
    # no needs-restarting, or EL7's without -r (usage error 2): a newer installed kernel decides
    newer = "running 3.10.0-1160.el7.x86_64\nkernel 3.10.0-1160.el7.x86_64\nkernel 3.10.0-1160.119.1.el7.x86_64\n"
    assert H.needs_reboot(newer) == (True, "kernel 3.10.0-1160.119.1.el7.x86_64 is installed, 3.10.0-1160.el7.x86_64 "
                                         "runs")
    assert H.needs_reboot(newer + "needs-restarting 2\n")[0]
    assert not H.needs_reboot("running 5.14.0-503.el9.x86_64\nkernel 5.14.0-427.el9.x86_64\nkernel "
                            "5.14.0-503.el9.x86_64\n")[0]
    assert not H.needs_reboot("running 6.8.0-45-generic\n")[0]  # a container on another distribution's kernel


class Rebooting:
    """A host double: answers the reboot facts, and gets a new boot id (after two probes) once the injected
    reboot command ran; its kubelet is active again after one more."""

    def __init__(self, facts, local=False):
        self.facts, self.is_local, self.ran, self.boot, self.probes = facts, local, [], "boot-1", 0

    def run(self, cmd, check=True, timeout=None, **kw):
        self.ran.append(cmd)
        if cmd == "test-reboot":
            self.boot = "rebooting"
            return Result(cmd, 255, "", "Connection closed")
        if cmd.startswith("echo \"running"):
            return Result(cmd, 0, self.facts, "")
        if cmd.startswith("cat /proc/sys/kernel/random/boot_id"):
            if self.boot == "rebooting":
                self.probes += 1
                if self.probes < 3:
                    return Result(cmd, 255, "", "No route to host")
                return Result(cmd, 0 if self.probes > 3 else 3, "boot-2\n" + (
                    "active" if self.probes > 3 else "activating"), "")
            return Result(cmd, 0, self.boot + "\n", "")
        return Result(cmd, 1, "", "")


def test_reboot_when_needed_with_an_injected_command(bundle):
    ctx = make_ctx(bundle, workers="10.0.0.12")
    ctx.reboot_command, ctx.reboot_sleep, ctx.upgrade_reboot_later = "test-reboot", lambda s: None, []
    worker = ctx.nodes[1]
    needed = "running 5.14.0-427.el9.x86_64\nneeds-restarting 1\n"
    host = Rebooting(needed)
    assert H.reboot_if_needed(ctx, worker, host) is True
    assert "test-reboot" in host.ran and host.probes == 4  # back with a new boot id and an active kubelet
    host = Rebooting("running 5.14.0-427.el9.x86_64\nneeds-restarting 0\n")
    assert H.reboot_if_needed(ctx, worker, host) is False and "test-reboot" not in host.ran
    # the host running the installer is named, not rebooted
    host = Rebooting(needed, local=True)
    assert H.reboot_if_needed(ctx, worker, host) is False and "test-reboot" not in host.ran
    assert ctx.upgrade_reboot_later == ["10.0.0.12 (needs-restarting -r says a reboot is needed)"]
    # a host that does not come back: bounded, named
    clock = iter(range(0, 10000, 100))
    stuck = Rebooting(needed)
    stuck.boot = "rebooting"
    stuck.probes = -10 ** 6
    with pytest.raises(InstallerError) as e:
        H.wait_rebooted(stuck, "w1", "boot-1", timeout=600, sleep=lambda s: None, clock=lambda: next(clock))
    assert "w1 did not come back from the reboot" in str(e.value) and "no answer" in str(e.value)


def test_parse_upgrade_options():
    a = parse(["upgrade", "--ignore-pdb", "--with-runtime", "--with-os-updates", "--reboot-command", "shutdown -r "
               "now", "-y"])
    assert (a.ignore_pdb, a.with_runtime, a.with_os_updates, a.reboot_command) == (True, True, True, "shutdown -r now")
    a = parse(["plan", "upgrade"])
    assert (a.ignore_pdb, a.with_runtime, a.with_os_updates, a.reboot_command) == (False, False, False,
                                                                                   "systemctl reboot")


def test_runtime_versions_are_exact_and_the_highest_shipped(tmp_path):
    from .conftest import make_bundle
    b = make_bundle(str(tmp_path / "b"), runtime="containerd")
    b.data["packages"] = [{"name": "containerd.io", "version": "1.6.20", "release": "3.1.el9"},
                          {"name": "containerd.io", "version": "1.6.9", "release": "3.1.el9"},
                          {"name": "kubelet", "version": "1.30.6", "release": "150500.1.1"}]
    assert H.runtime_versions(b) == [("containerd.io", "1.6.20-3.1.el9")]
    assert H.runtime_change(b).unless == "rpm -q containerd.io-1.6.20-3.1.el9 >/dev/null 2>&1"
    b.data["packages"] = b.data["packages"][2:]
    assert H.runtime_change(b) is None  # a bundle without runtime packages (binaries install): nothing to do
