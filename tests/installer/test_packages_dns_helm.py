"""The phases issue 10 added: spec.packages on every host, CoreDNS's forward for hosts without a nameserver,
helm on the control planes. Decisions from facts; the changes' journal entries drive reset."""

from installer.changes import Command, InstallPackages, PutFile, WriteFile
from installer.journal import Journal
from installer.phases import install_phases
from installer.phases.coredns import APPLIED, CONFIG, CoreDNS
from installer.phases.helm import HELM, Helm
from installer.phases.packages import RequestedPackages, requested, spec_name
from installer.phases.preflight import Preflight
from installer.render import coredns
from installer.reset import reset_steps

from .conftest import make_bundle, make_ctx

RESOLV = "nameserver 10.0.0.2\nsearch example.com\n"


def test_spec_names():
    assert [spec_name(s) for s in ("kubeadm-1.30.4", "kubeadm-1.30.4-150500.1.1", "cri-tools", "kubernetes-cni",
                                   "python3-3.9.18", "containerd.io")] == [
        "kubeadm", "kubeadm", "cri-tools", "kubernetes-cni", "python3", "containerd.io"]


def test_requested_packages_on_every_host_minus_what_other_phases_install(tmp_path):
    b = make_bundle(str(tmp_path / "b"), manifest_packages=["kubeadm-1.30.4", "containerd.io", "chrony", "socat",
                                                            "httpd-tools-2.4.57"])
    assert requested(b) == ["socat", "httpd-tools-2.4.57"]
    ctx = make_ctx(b)
    phase = RequestedPackages()
    assert phase.hosts(ctx) == ctx.nodes  # every cluster host (the manifest has no per-group packages)
    for h in ctx.nodes:
        plan = phase.plan(ctx, h, ctx.facts[h.label])
        assert [type(c) for c in plan] == [InstallPackages]
        assert plan[0].names == ["httpd-tools-2.4.57", "socat"]
        assert plan[0].unless == "rpm -q httpd-tools-2.4.57 socat >/dev/null 2>&1"  # what plan and re-runs ask
    names = [p.name for p in install_phases()]
    assert names.index("runtime") < names.index("packages") < names.index("kubeadm_init")


def test_docker_bundles_leave_containerd_to_the_runtime_phase(tmp_path):
    b = make_bundle(str(tmp_path / "b"), runtime="docker", manifest_packages=["docker-ce", "containerd.io",
                                                                               "httpd-tools"])
    assert requested(b) == ["httpd-tools"]


def test_no_requested_packages_no_change(tmp_path):
    for i, pk in enumerate((None, [], ["kubeadm-1.30.4"])):
        b = make_bundle(str(tmp_path / str(i)), manifest_packages=pk)
        ctx = make_ctx(b)
        assert RequestedPackages().plan(ctx, ctx.first_cp, ctx.facts[ctx.first_cp.label]) == []


class FakeConn:
    """Answers rpm -q from a set of installed packages and records the other commands."""

    root = "/"

    def __init__(self, installed):
        self.installed = set(installed)
        self.commands = []

    def run(self, cmd, check=True, **kw):
        ok = True
        if cmd.startswith("rpm -q "):
            ok = all(n in self.installed for n in cmd.split(">")[0].split()[2:])
        self.commands.append(cmd)
        return type("R", (), {"ok": ok, "rc": 0 if ok else 1, "stdout": "", "stderr": ""})()

    def check(self, cmd, what=None, **kw):
        self.commands.append(cmd)
        return self.run("true")

    def write_file(self, path, data, mode=0o644):
        pass

    def path(self, p):
        return p


def test_requested_packages_journal_only_what_was_missing_and_reset_removes_only_those(tmp_path):
    b = make_bundle(str(tmp_path / "b"), manifest_packages=["socat", "ethtool"])
    ctx = make_ctx(b)
    change = RequestedPackages().plan(ctx, ctx.first_cp, ctx.facts[ctx.first_cp.label])[0]
    conn = FakeConn(installed=["ethtool"])  # the host had ethtool already: it stays after reset
    journal = Journal(conn)
    assert change.apply(conn, journal)
    assert journal.data["packages"] == ["socat"]
    assert any(c.endswith("install socat") and "--disablerepo='*'" in c and "airgap-*" in c for c in conn.commands)
    steps = [cmd for _, cmd in reset_steps(journal)]
    assert steps[-1].endswith("remove socat")
    conn.installed.add("socat")  # second run: nothing to do
    assert not change.apply(conn, journal)


# -- CoreDNS -----------------------------------------------------------------------------------------------


def test_corefile_modes():
    default = coredns.corefile(coredns.MODE_RESOLV)
    assert "    forward . /etc/resolv.conf {\n       max_concurrent 1000\n    }\n" in default
    assert "kubernetes cluster.local in-addr.arpa ip6.arpa {" in default and default.endswith("loadbalance\n}\n")
    up = coredns.corefile(coredns.MODE_UPSTREAM, ["10.0.0.2", "10.0.0.3"])
    assert "    forward . 10.0.0.2 10.0.0.3 {\n" in up and "resolv.conf" not in up
    none = coredns.corefile(coredns.MODE_NONE)
    assert "forward" not in none and "kubernetes cluster.local" in none and "cache 30" in none
    # the three differ only in the forward block
    assert none == default.replace("    forward . /etc/resolv.conf {\n       max_concurrent 1000\n    }\n", "")


def test_configmap_is_the_kubeadm_one_with_the_corefile_as_block_scalar():
    text = coredns.configmap(coredns.corefile(coredns.MODE_NONE))
    assert text.startswith("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: coredns\n  namespace: kube-system\n"
                           "data:\n  Corefile: |\n    .:53 {\n        errors\n")
    body = text.split("Corefile: |\n", 1)[1]
    assert all(ln.startswith("    ") for ln in body.splitlines())
    assert "\n".join(ln[4:] for ln in body.splitlines()) + "\n" == coredns.corefile(coredns.MODE_NONE)


def test_nameservers_and_decision():
    assert coredns.nameservers("# x\nnameserver 10.0.0.2 # main\nnameserver fe80::1%eth0\nsearch a\n") == [
        "10.0.0.2", "fe80::1%eth0"]
    assert coredns.usable(["127.0.0.53", "::1", "bogus", "10.0.0.2"]) == ["10.0.0.2"]
    assert coredns.decide([], {"a": RESOLV, "b": RESOLV})["mode"] == coredns.MODE_RESOLV
    d = coredns.decide([], {"a": RESOLV, "b": None, "c": "nameserver 127.0.0.1\n"})
    assert d == {"mode": coredns.MODE_NONE, "upstreams": [], "without": ["b", "c"]}
    d = coredns.decide(["10.9.9.9"], {"a": None})
    assert d == {"mode": coredns.MODE_UPSTREAM, "upstreams": ["10.9.9.9"], "without": ["a"]}


def _dns_ctx(bundle, resolv=(RESOLV, RESOLV, RESOLV), **opts):
    ctx = make_ctx(bundle, **opts)
    for h, text in zip(ctx.nodes, resolv):
        if text is not None:
            ctx.facts[h.label]["files"]["/etc/resolv.conf"] = text
    return ctx


def test_coredns_untouched_when_every_host_has_a_nameserver(bundle):
    ctx = _dns_ctx(bundle)
    assert CoreDNS().plan(ctx, ctx.first_cp, ctx.facts[ctx.first_cp.label]) == []
    assert "/etc/resolv.conf" in Preflight().watched_files(ctx, ctx.first_cp)
    _, notes = Preflight().check_cluster(ctx, ctx.facts)
    assert not any("CoreDNS" in n for n in notes)


def test_coredns_without_nameservers_drops_forward_and_preflight_says_so(bundle):
    ctx = _dns_ctx(bundle, resolv=(RESOLV, None, ""))
    _, notes = Preflight().check_cluster(ctx, ctx.facts)
    assert ("no usable nameserver in /etc/resolv.conf on 10.0.0.12, 10.0.0.13: CoreDNS will answer cluster names "
            "only (its forward plugin is removed); pass --upstream-dns IP[,IP]") in " ".join(notes)
    f = ctx.facts[ctx.first_cp.label]
    plan = CoreDNS().plan(ctx, ctx.first_cp, f)
    assert [type(c) for c in plan] == [WriteFile, Command]
    assert plan[0].path == CONFIG and "forward" not in plan[0].content
    cmd = plan[1].cmd
    assert cmd.index("apply -f %s" % CONFIG) < cmd.index("-n kube-system rollout restart deployment coredns") < \
        cmd.index("> %s" % APPLIED)
    assert plan[1].describe() == "CoreDNS answers cluster names only (no forward plugin)"
    # converged: the file and the marker with its digest -> no changes (second run)
    import hashlib
    f["files"][CONFIG] = plan[0].content
    f["files"][APPLIED] = hashlib.sha256(plan[0].content.encode()).hexdigest() + "\n"
    assert CoreDNS().plan(ctx, ctx.first_cp, f) == []


def test_coredns_upstream_dns_option(bundle):
    ctx = _dns_ctx(bundle, resolv=(None, None, None), upstream_dns="10.0.0.53,10.0.0.54")
    _, notes = Preflight().check_cluster(ctx, ctx.facts)
    assert "CoreDNS will forward names outside the cluster to 10.0.0.53, 10.0.0.54 (--upstream-dns)" in notes
    plan = CoreDNS().plan(ctx, ctx.first_cp, ctx.facts[ctx.first_cp.label])
    assert "forward . 10.0.0.53 10.0.0.54 {" in plan[0].content
    assert plan[1].describe() == "CoreDNS forwards names outside the cluster to 10.0.0.53, 10.0.0.54"


def test_coredns_back_to_resolv_conf_after_an_earlier_change(bundle):
    ctx = _dns_ctx(bundle)
    f = ctx.facts[ctx.first_cp.label]
    f["files"][APPLIED] = "0" * 64 + "\n"  # an earlier run changed the Corefile
    plan = CoreDNS().plan(ctx, ctx.first_cp, f)
    assert "forward . /etc/resolv.conf {" in plan[0].content


# -- helm ------------------------------------------------------------------------------------------------


def test_helm_on_control_planes_only(tmp_path):
    b = make_bundle(str(tmp_path / "b"), helm=True)
    ctx = make_ctx(b, cp="10.0.0.11,10.0.0.12", workers="10.0.0.13")
    phase = Helm()
    assert [h.address for h in phase.hosts(ctx)] == ["10.0.0.11", "10.0.0.12"]
    for h in phase.hosts(ctx):
        plan = phase.plan(ctx, h, ctx.facts[h.label])
        assert [type(c) for c in plan] == [PutFile] and plan[0].describe() == "install %s 3.15.4" % HELM
        ctx.facts[h.label]["bin_sha"] = {HELM: b.file("helm")["sha256"]}
        assert phase.plan(ctx, h, ctx.facts[h.label]) == []  # second run
    names = [p.name for p in install_phases()]
    assert names.index("join") < names.index("helm") < names.index("verify")


def test_helm_install_is_journaled_for_reset(tmp_path):
    b = make_bundle(str(tmp_path / "b"), helm=True)
    ctx = make_ctx(b, workers="")
    change = Helm().plan(ctx, ctx.first_cp, ctx.facts[ctx.first_cp.label])[0]
    put = []
    conn = FakeConn([])
    conn.exists = lambda p: False
    conn.put = lambda src, dst, mode=0o644: put.append((src, dst, mode))
    journal = Journal(conn)
    assert change.apply(conn, journal)
    assert put == [(b.path("files/helm"), HELM, 0o755)]
    assert journal.data["files"][HELM] == {"created": True}  # reset removes it


def test_no_helm_in_the_bundle(bundle):
    ctx = make_ctx(bundle)
    assert Helm().dry_run(ctx, ctx.first_cp, ctx.facts[ctx.first_cp.label]) == []
