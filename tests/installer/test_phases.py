"""Every phase's decisions, from facts alone (no hosts)."""

import pytest

from installer.changes import PKG_TOOL, Callback, Command, InstallPackages, MoveAside, Service, WriteFile
from installer.errors import InstallerError
from installer.journal import Journal
from installer.phases.cni import CNI, patch_manifest
from installer.phases.host_prep import HostPrep
from installer.phases.join import Join
from installer.phases.kubeadm_init import CONFIG, KubeadmInit, kubeadm_config, missing_images
from installer.phases.media_repo import MediaRepo
from installer.phases.preflight import Preflight
from installer.phases.registry import RegistryPhase
from installer.phases.runtime import Runtime, runtime_packages
from installer.phases.verify import foreign_images, node_problems, pod_problems
from installer.render import system

from .conftest import el9_facts, make_bundle, make_ctx


def descr(changes):
    return [c.describe() for c in changes]


def converge(phase, ctx, host):
    """Apply a plan's file writes to the facts, as the host would look afterwards."""
    f = ctx.facts[host.label]
    for c in phase.plan(ctx, host, f):
        if isinstance(c, WriteFile):
            f["files"][c.path] = c.content
        elif isinstance(c, MoveAside):
            f["dirs"]["/etc/yum.repos.d"].remove(c.path.rsplit("/", 1)[1])
        elif isinstance(c, InstallPackages):
            for n in c.names:
                f["rpms"][n] = "1"
        elif isinstance(c, Service):
            f["services"][c.name] = {"active": True, "enabled": True, "exists": True}
        elif isinstance(c, Command) and c.cmd == "swapoff -a":
            f["swap_active"] = False
        elif isinstance(c, Command) and c.cmd.startswith("systemctl enable kubelet"):
            f["services"]["kubelet"] = {"active": False, "enabled": True, "exists": True}
    return f


# -- preflight ---------------------------------------------------------------------------------------------
def test_preflight_ok(bundle):
    ctx = make_ctx(bundle)
    notes = Preflight().check_all(ctx, ctx.facts)
    assert "SELinux is enforcing" in notes[ctx.first_cp.label]


def test_preflight_wrong_os_and_arch(tmp_path):
    b = make_bundle(str(tmp_path / "b"), os_tag="el7")
    ctx = make_ctx(b)
    ctx.facts[ctx.inventory.workers[0].label]["arch"] = "aarch64"
    with pytest.raises(InstallerError) as e:
        Preflight().check_all(ctx, ctx.facts)
    msg = str(e.value)
    assert "10.0.0.11: the bundle is for el7 but the host runs Rocky Linux 9.4" in msg
    assert "10.0.0.12: the bundle is for x86_64 but the host is aarch64" in msg
    assert "Nothing was changed on any host" in msg


def test_preflight_resources_ports_existing_kube(bundle):
    ctx = make_ctx(bundle)
    cp, w1, w2 = ctx.nodes
    ctx.facts[cp.label].update(cpus=1, mem_mb=1000, listening_ports=[22, 6443])
    ctx.facts[w1.label]["files"]["/etc/kubernetes/kubelet.conf"] = "x"
    ctx.facts[w2.label]["disk_free_mb"] = 100
    p = Preflight()
    errs, _ = p.check_host(ctx, cp, ctx.facts[cp.label])
    assert "a control plane needs 2 CPUs, the host has 1" in errs
    assert any("1700 MiB" in e for e in errs)
    assert "port(s) 6443 are already in use" in errs
    errs, _ = p.check_host(ctx, w1, ctx.facts[w1.label])
    assert any("Kubernetes is already set up here" in e and "--force" in e for e in errs)
    ctx.options.force = True
    assert p.check_host(ctx, w1, ctx.facts[w1.label])[0] == []
    errs, _ = p.check_host(ctx, w2, ctx.facts[w2.label])
    assert any("/var has 100 MiB free" in e for e in errs)


def test_preflight_resume_is_not_existing_kube(bundle):
    ctx = make_ctx(bundle)
    cp = ctx.first_cp
    ctx.facts[cp.label]["files"]["/etc/kubernetes/admin.conf"] = "x"
    j = Journal(None)
    j.data["phases"]["kubeadm_init"] = {"status": "done"}
    ctx.journals[cp.label] = j
    assert Preflight().check_host(ctx, cp, ctx.facts[cp.label])[0] == []


def test_preflight_cluster_checks(bundle):
    ctx = make_ctx(bundle)
    cp, w1, w2 = ctx.nodes
    ctx.facts[w1.label]["hostname"] = "same"
    ctx.facts[w2.label]["hostname"] = "same"
    ctx.facts[w2.label]["time"] += 10
    errs, notes = Preflight().check_cluster(ctx, ctx.facts)
    assert any("same host name 'same'" in e for e in errs)
    assert any("clock skew of 10 s" in n for n in notes)
    ctx.facts[w2.label]["time"] += 3 * 86400
    errs, _ = Preflight().check_cluster(ctx, ctx.facts)
    assert any("clocks of" in e for e in errs)
    assert not any("control planes share" in n for n in notes)  # one control plane: nothing to say


def test_preflight_notes_several_control_planes_without_an_endpoint(bundle):
    ctx = make_ctx(bundle, cp="10.0.0.11,10.0.0.12", workers="10.0.0.13")
    _, notes = Preflight().check_cluster(ctx, ctx.facts)
    assert any("2 control planes share the API endpoint 10.0.0.11:6443" in n and "--control-plane-endpoint" in n
               for n in notes), notes
    ctx = make_ctx(bundle, cp="10.0.0.11,10.0.0.12", workers="10.0.0.13", control_plane_endpoint="10.0.0.100:6443")
    _, notes = Preflight().check_cluster(ctx, ctx.facts)
    assert not any("control planes share" in n for n in notes)


def test_preflight_media_mismatch_and_pod_subnet(bundle):
    ctx = make_ctx(bundle, pod_subnet="10.0.0.0/16")
    ctx.media = {"kind": "iso", "path": "/x.iso", "label": "CentOS 7 x86_64", "major": 7}
    errs, _ = Preflight().check_host(ctx, ctx.first_cp, ctx.facts[ctx.first_cp.label])
    assert any("EL7 but the bundle is for el9" in e for e in errs)
    assert any("pod subnet 10.0.0.0/16 contains the host address 10.0.0.11" in e for e in errs)


# -- media + repo --------------------------------------------------------------------------------------------
def test_media_repo_first_host(bundle):
    ctx = make_ctx(bundle)
    cp = ctx.first_cp
    f = ctx.facts[cp.label]
    f["dirs"] = {"/etc/yum.repos.d": ["rocky.repo", "rocky-extras.repo"], "/etc/pki/rpm-gpg": ["RPM-GPG-KEY-Rocky-9"]}
    changes = MediaRepo().plan(ctx, cp, f)
    d = descr(changes)
    assert "write /etc/systemd/system/opt-airgap-media.mount (mount the OS media at boot)" in d
    assert any(x.startswith("copy the bundle repository") for x in d)
    assert "move /etc/yum.repos.d/rocky.repo aside (its repositories are unreachable offline)" in d
    files = dict((c.path, c.content) for c in changes if isinstance(c, WriteFile))
    assert "baseurl=file:///opt/airgap/repo" in files["/etc/yum.repos.d/airgap-bundle.repo"]
    assert "gpgkey=file:///opt/airgap/repo/gpgkeys/kubernetes.gpg" in files["/etc/yum.repos.d/airgap-bundle.repo"]
    media = files["/etc/yum.repos.d/airgap-media.repo"]
    assert "baseurl=file:///opt/airgap/media/BaseOS" in media and "AppStream" in media
    assert "gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-Rocky-9" in media and "gpgcheck=1" in media
    unit = files["/etc/systemd/system/airgap-repo.service"]
    assert "--bind 10.0.0.11" in unit
    assert "enable and start service airgap-repo" not in d and "restart service airgap-repo" in d
    # converged: nothing left to do
    converge(MediaRepo(), ctx, cp)
    f["files"]["/opt/airgap/repo/.airgap-bundle-id"] = ctx.bundle_id + "\n"
    f["services"]["opt-airgap-media.mount"] = {"active": True, "enabled": True, "exists": True}
    assert MediaRepo().plan(ctx, cp, f) == []


def test_media_repo_other_hosts_use_http(bundle):
    ctx = make_ctx(bundle)
    w = ctx.inventory.workers[0]
    f = ctx.facts[w.label]
    changes = MediaRepo().plan(ctx, w, f)
    files = dict((c.path, c.content) for c in changes if isinstance(c, WriteFile))
    assert sorted(files) == ["/etc/yum.repos.d/airgap-bundle.repo", "/etc/yum.repos.d/airgap-media.repo"]
    assert "baseurl=http://10.0.0.11:8089/repo" in files["/etc/yum.repos.d/airgap-bundle.repo"]
    assert "baseurl=http://10.0.0.11:8089/media/AppStream" in files["/etc/yum.repos.d/airgap-media.repo"]
    assert not any(isinstance(c, (Service, Command)) for c in changes)


def test_media_repo_el7_single_repo_and_dir_media(tmp_path):
    b = make_bundle(str(tmp_path / "b"), os_tag="el7")
    ctx = make_ctx(b)
    ctx.media = {"kind": "dir", "path": "/srv/dvd", "label": "7.9", "major": 7}
    cp = ctx.first_cp
    changes = MediaRepo().plan(ctx, cp, ctx.facts[cp.label])
    d = descr(changes)
    assert "link /opt/airgap/media to /srv/dvd" in d
    files = dict((c.path, c.content) for c in changes if isinstance(c, WriteFile))
    assert "[airgap-media]\nname=OS media\nbaseurl=file:///opt/airgap/media\n" in files[
        "/etc/yum.repos.d/airgap-media.repo"]
    assert "gpgcheck=0" in files["/etc/yum.repos.d/airgap-media.repo"]  # no vendor keys on this host


# -- host preparation -------------------------------------------------------------------------------------------
def test_host_prep_fresh_host(bundle):
    ctx = make_ctx(bundle)
    w = ctx.inventory.workers[0]
    f = ctx.facts[w.label]
    f.update(swap_active=True, modules=[])
    f["files"]["/etc/fstab"] = "/dev/sda1 / xfs defaults 0 0\n/dev/sda2 none swap defaults 0 0\n"
    f["files"]["/etc/hosts"] = "127.0.0.1 localhost\n"
    d = descr(HostPrep().plan(ctx, w, f))
    assert d[0] == "write /etc/hosts (cluster host names)"
    for want in ("turn swap off now", "write /etc/fstab (swap off at boot)", "load kernel module overlay",
                 "load kernel module br_netfilter", f"write {system.SYSCTL_FILE}",
                 f"apply {system.SYSCTL_FILE}", "install packages: chrony",
                 "write /etc/chrony.conf (time from 10.0.0.11)", "restart service chronyd"):
        assert want in d
    assert not any("SELinux" in x for x in d)  # enforcing stays enforcing by default
    converge(HostPrep(), ctx, w)
    f["modules"] = ["overlay", "br_netfilter"]
    assert HostPrep().plan(ctx, w, f) == []


def test_host_prep_first_host_serves_time(bundle):
    ctx = make_ctx(bundle)
    cp = ctx.first_cp
    changes = HostPrep().plan(ctx, cp, ctx.facts[cp.label])
    chrony = [c for c in changes if isinstance(c, WriteFile) and c.path == "/etc/chrony.conf"][0]
    assert "local stratum 10" in chrony.content
    assert "allow 10.0.0.12/32" in chrony.content and "allow 10.0.0.13/32" in chrony.content


def test_host_prep_options(bundle):
    ctx = make_ctx(bundle, selinux="permissive", firewalld="on", timezone="Europe/Berlin")
    cp = ctx.first_cp
    f = ctx.facts[cp.label]
    f["files"]["/etc/selinux/config"] = "SELINUX=enforcing\nSELINUXTYPE=targeted\n"
    f["services"]["firewalld"] = {"active": True, "enabled": True, "exists": True}
    f["fw_ports"] = ["6443/tcp"]
    changes = HostPrep().plan(ctx, cp, f)
    d = descr(changes)
    assert "SELinux permissive now" in d
    sel = [c for c in changes if isinstance(c, WriteFile) and c.path == "/etc/selinux/config"][0]
    assert sel.content == "SELINUX=permissive\nSELINUXTYPE=targeted\n"
    assert "set the time zone to Europe/Berlin" in d
    fw = [x for x in d if x.startswith("kubernetes: open")][0]
    assert "2379-2380/tcp" in fw and "6443/tcp" not in fw and "179/tcp" in fw
    ctx.options.firewalld = "off"
    assert "stop and disable firewalld" in descr(HostPrep().plan(ctx, cp, f))


def test_host_prep_sets_inventory_name(bundle):
    ctx = make_ctx(bundle)
    w = ctx.inventory.workers[0]
    f = ctx.facts[w.label]
    w.name = "worker-1"
    d = descr(HostPrep().plan(ctx, w, f))
    assert "set the host name to worker-1" in d


# -- registry ---------------------------------------------------------------------------------------------------
def test_registry_fresh_and_converged(bundle):
    ctx = make_ctx(bundle)
    cp = ctx.first_cp
    f = ctx.facts[cp.label]
    d = descr(RegistryPhase().plan(ctx, cp, f))
    assert d[0] == "install /usr/local/bin/airgap-registry"
    assert any(x.startswith("make the registry CA") for x in d)
    assert any(x.startswith("generate push credentials") for x in d)
    assert "push 3 image(s) from the bundle into the registry" in d
    assert "restart service airgap-registry" in d and "restart service airgap-registry-push" in d
    assert RegistryPhase().hosts(ctx) == [cp]
    converge(RegistryPhase(), ctx, cp)
    f["bin_sha"]["/usr/local/bin/airgap-registry"] = bundle.file("registry")["sha256"]
    f["files"]["/etc/airgap-registry/pki/ca.crt"] = "CA"
    f["files"]["/etc/airgap-registry/push-credentials"] = "u:p"
    j = Journal(None)
    j.data["pushed"] = ctx.bundle_id
    ctx.journals[cp.label] = j
    assert RegistryPhase().plan(ctx, cp, f) == []


# -- runtime ----------------------------------------------------------------------------------------------------
def test_runtime_containerd_packages(bundle):
    ctx = make_ctx(bundle)
    ctx.ca_pem = "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n"
    w = ctx.inventory.workers[0]
    f = ctx.facts[w.label]
    changes = Runtime().plan(ctx, w, f)
    pk = [c for c in changes if isinstance(c, InstallPackages)][0]
    assert pk.names == ["container-selinux", "containerd.io", "kubeadm", "kubectl", "kubelet"]
    assert pk.command().startswith(PKG_TOOL + " -y --disablerepo='*' --enablerepo='airgap-*' install ")
    files = dict((c.path, c.content) for c in changes if isinstance(c, WriteFile))
    assert 'sandbox_image = "registry.k8s.io/pause:3.9"' in files["/etc/containerd/config.toml"]
    assert "/etc/containerd/certs.d/registry.k8s.io/hosts.toml" in files
    assert "/etc/containerd/certs.d/docker.io/hosts.toml" in files
    assert files["/etc/containerd/certs.d/10.0.0.11:5000/ca.crt"] == ctx.ca_pem
    assert files["/etc/pki/ca-trust/source/anchors/airgap-registry-ca.crt"] == ctx.ca_pem
    assert "restart service containerd" in descr(changes)
    converge(Runtime(), ctx, w)
    assert Runtime().plan(ctx, w, f) == []


def test_runtime_without_ca_yet_installs_it_late(bundle):
    ctx = make_ctx(bundle)
    w = ctx.inventory.workers[0]
    changes = Runtime().plan(ctx, w, ctx.facts[w.label])
    late = [c for c in changes if isinstance(c, Callback)]
    assert late and "made in the registry phase" in late[0].describe()


def test_runtime_docker(tmp_path):
    b = make_bundle(str(tmp_path / "b"), runtime="docker", k8s="1.28.2")
    ctx = make_ctx(b)
    ctx.ca_pem = "CA\n"
    w = ctx.inventory.workers[0]
    assert runtime_packages(b) == ["docker-ce", "cri-dockerd", "kubeadm", "kubelet", "kubectl", "container-selinux"]
    changes = Runtime().plan(ctx, w, ctx.facts[w.label])
    files = dict((c.path, c.content) for c in changes if isinstance(c, WriteFile))
    assert '"registry-mirrors": [\n    "https://10.0.0.11:5000"\n  ]' in files["/etc/docker/daemon.json"]
    assert files["/etc/docker/certs.d/10.0.0.11:5000/ca.crt"] == "CA\n"
    dropin = files["/etc/systemd/system/cri-docker.service.d/10-airgap.conf"]
    assert "--pod-infra-container-image=10.0.0.11:5000/registry.k8s.io/pause:3.9" in dropin
    assert "kubeadm.k8s" not in dropin
    cfg = kubeadm_config(ctx, ctx.first_cp)
    assert "imageRepository: 10.0.0.11:5000/registry.k8s.io" in cfg


def test_runtime_binaries_mode(tmp_path):
    b = make_bundle(str(tmp_path / "b"), install="binaries")
    b.data["files"].append({"name": "kubelet", "kind": "binary", "path": "files/registry", "sha256": "f" * 64})
    ctx = make_ctx(b)
    ctx.ca_pem = "CA\n"
    w = ctx.inventory.workers[0]
    changes = Runtime().plan(ctx, w, ctx.facts[w.label])
    d = descr(changes)
    assert "install /usr/local/bin/kubelet" in d
    # no runtime/kube RPMs; only what their RPMs would have pulled from the media, as capabilities
    pkgs = [c for c in changes if isinstance(c, InstallPackages)]
    assert [p.names for p in pkgs] == [sorted(["conntrack", "socat", "ethtool", "iptables", "iproute", "tar"])]
    assert pkgs[0].unless.startswith("rpm -q --whatprovides ")
    b.data["files"].append({"name": "docker-26.1.4.tgz", "kind": "archive", "path": "files/registry",
                            "sha256": "e" * 64})
    unpack = [c for c in Runtime().plan(ctx, w, ctx.facts[w.label]) if "docker-26.1.4.tgz into" in c.describe()]
    assert len(unpack) == 1 and "-C /usr/local/bin --strip-components=1" in unpack[0].cmd
    paths = [c.path for c in changes if isinstance(c, WriteFile)]
    assert "/etc/systemd/system/containerd.service" in paths
    assert "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf" in paths


# -- kubeadm init, cni, join, verify -----------------------------------------------------------------------------
def test_kubeadm_init_decisions(bundle):
    ctx = make_ctx(bundle)
    cp = ctx.first_cp
    f = ctx.facts[cp.label]
    d = descr(KubeadmInit().plan(ctx, cp, f))
    assert d == [f"write {CONFIG}", "check that the bundle carries every image kubeadm 1.30.4 needs",
                 "kubeadm init (Kubernetes 1.30.4)", "kubeconfig for root in /root/.kube/config"]
    cmd = [c for c in KubeadmInit().plan(ctx, cp, f) if isinstance(c, Command)][0]
    assert "--upload-certs" not in cmd.cmd
    f["files"]["/etc/kubernetes/admin.conf"] = "ADMIN"
    f["files"]["/root/.kube/config"] = "ADMIN"
    assert KubeadmInit().plan(ctx, cp, f) == []
    assert KubeadmInit().hosts(ctx) == [cp]


def test_kubeadm_image_list_against_the_bundle():
    bundle = ["registry.k8s.io/pause:3.9", "registry.k8s.io/etcd:3.5.15-0", "registry.k8s.io/coredns/coredns:v1.11.3"]
    listed = ["registry.k8s.io/pause:3.9", "registry.k8s.io/etcd:3.5.15-0", "registry.k8s.io/coredns/coredns:v1.11.3"]
    assert missing_images(listed, bundle) == []
    # a patch release whose etcd moved on: exactly that image is named
    listed[1] = "registry.k8s.io/etcd:3.5.24-0"
    assert missing_images(listed + ["", "W1128 some warning text"], bundle) == ["registry.k8s.io/etcd:3.5.24-0"]
    # docker: kubeadm lists the images behind the local registry, the bundle keeps upstream names
    behind = ["10.0.0.11:5000/" + i for i in bundle]
    assert missing_images(behind, bundle, prefix="10.0.0.11:5000") == []
    assert missing_images(behind, bundle) == behind


def test_kubeadm_init_upload_certs_with_two_control_planes(bundle):
    ctx = make_ctx(bundle, cp="10.0.0.11,10.0.0.14")
    cmd = [c for c in KubeadmInit().plan(ctx, ctx.first_cp, ctx.facts[ctx.first_cp.label]) if isinstance(c, Command)][0]
    assert cmd.cmd.endswith("--upload-certs")


def test_cni(bundle):
    ctx = make_ctx(bundle)
    cp = ctx.first_cp
    f = ctx.facts[cp.label]
    changes = CNI().plan(ctx, cp, f)
    assert descr(changes)[1] == "kubectl apply the calico manifest"
    f["files"][changes[0].path] = changes[0].content
    # written but not (yet) applied successfully: apply again
    assert descr(CNI().plan(ctx, cp, f)) == descr(changes)
    # the marker the apply command leaves behind says this exact manifest is applied
    marker = changes[1].cmd.rsplit(" > ", 1)
    digest = marker[0].rsplit("echo ", 1)[1]
    f["files"][marker[1]] = digest + "\n"
    assert CNI().plan(ctx, cp, f) == []


def test_cni_pod_subnet_patch():
    text = '            # - name: CALICO_IPV4POOL_CIDR\n            #   value: "192.168.0.0/16"\n'
    out = patch_manifest(text, "calico", "172.20.0.0/16")
    assert '- name: CALICO_IPV4POOL_CIDR\n            value: "172.20.0.0/16"' in out
    assert patch_manifest(text, "calico", "192.168.0.0/16") == text
    fl = patch_manifest('"Network": "10.244.0.0/16"', "flannel", "10.50.0.0/16")
    assert fl == '"Network": "10.50.0.0/16"'


def test_join(bundle):
    ctx = make_ctx(bundle, cp="10.0.0.11,10.0.0.14")
    hosts = Join().hosts(ctx)
    assert [h.address for h in hosts] == ["10.0.0.14", "10.0.0.12", "10.0.0.13"]
    cp2 = hosts[0]
    d = descr(Join().plan(ctx, cp2, ctx.facts[cp2.label]))
    assert d == ["kubeadm join 10.0.0.11:6443 as a control plane", "kubeconfig for root"]
    w = hosts[1]
    assert descr(Join().plan(ctx, w, ctx.facts[w.label])) == ["kubeadm join 10.0.0.11:6443 as a worker"]
    ctx.facts[w.label]["files"]["/etc/kubernetes/kubelet.conf"] = "x"
    assert Join().plan(ctx, w, ctx.facts[w.label]) == []
    assert not Join().parallel


def test_verify_logic():
    nodes = {"items": [
        {"metadata": {"name": "a"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        {"metadata": {"name": "b"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}]}
    assert node_problems(nodes, ["a", "b", "c"]) == ["b is not Ready", "c has not joined"]
    pods = {"items": [{"metadata": {"name": "p1"}, "status": {"phase": "Running"}},
                      {"metadata": {"name": "p2"}, "status": {"phase": "Pending"}}]}
    assert pod_problems(pods) == ["p2 is Pending"]
    images = {"images": [{"repoTags": ["registry.k8s.io/pause:3.9"], "repoDigests": []},
                         {"repoTags": ["docker.io/calico/node:v3.28.0"]},
                         {"repoTags": ["quay.io/evil/thing:1"]}]}
    assert foreign_images(images, ["registry.k8s.io/pause:3.9", "calico/node:v3.28.0"]) == ["quay.io/evil/thing:1"]


def test_facts_helpers():
    f = el9_facts(os_id="centos", os_id_like="rhel fedora", os_version_id="7")
    assert f.os_tag == "el7"
    assert el9_facts(os_id="debian", os_id_like="").os_tag is None
