"""The fact probe's parser on EL7, EL8 and EL9 output (tests/installer/fixtures/probe-*.txt: reconstructed
from those releases' tool formats, see their headers), and typed facts: a misspelt fact is an error."""

import os

import pytest

from installer import facts as facts_mod
from installer.facts import Facts, parse
from installer.phases.host_prep import HostPrep
from installer.phases.preflight import Preflight

from .conftest import make_bundle, make_ctx

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def probe(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return parse(f.read())


def test_centos_7_minimal():
    f = probe("probe-centos-7.9.txt")
    assert f.complete and f.os_tag == "el7" and f.os_major == "7" and f.os_pretty == "CentOS Linux 7 (Core)"
    assert (f.arch, f.hostname, f.cpus, f.mem_mb, f.disk_free_mb) == ("x86_64", "k8s-w1.example.lab", 2, 3789, 45236)
    assert f.swap_active and f.selinux == "enforcing" and f.python is None and f.timezone == "America/New_York"
    assert "br_netfilter" not in f.modules and "overlay" in f.modules  # built in (/sys/module), not loaded
    assert f.addresses == ["127.0.0.1", "::1", "10.20.0.21", "fe80::5054:ff:fe3a:1c21"]
    assert f.listening_ports == [22, 25]  # old ss: '*:22', ':::22', '::1:25'
    assert f.optical == "/dev/sr0" and f.fw_ports == [] and f.bin_sha == {}
    assert f.rpm("chrony") == "3.4-1.el7" and f.rpm("openssl") == "1.0.2k-19.el7" and f.rpm("kubeadm") is None
    # systemd 219: a missing unit is 'unknown' to is-active and has no is-enabled output
    assert f.service("firewalld") == {"active": True, "enabled": True, "exists": True}
    assert f.service("ntpd") == {"active": False, "enabled": False, "exists": False}
    assert f.service("kubelet")["exists"] is False and "dnf" not in f.commands and "yum" in f.commands
    assert "nameserver 10.20.0.2" in f.file("/etc/resolv.conf")
    assert "SELINUX=enforcing" in f.file("/etc/selinux/config")
    assert "/dev/mapper/centos-swap swap" in f.file("/etc/fstab")
    assert "CentOS-Base.repo" in f.dirs["/etc/yum.repos.d"] and f.file("/etc/kubernetes/admin.conf") is None


def test_rocky_8_rerun():
    f = probe("probe-rocky-8.9.txt")
    assert f.os_tag == "el8" and f.os_version_id == "8.9" and f.python == "/usr/libexec/platform-python"
    assert f.selinux == "permissive" and f.swap_active and f.timezone == "UTC"
    assert f.listening_ports == [22, 53, 9090]
    assert f.fw_ports == ["10250/tcp", "2379-2380/tcp", "6443/tcp"]
    assert f.rpm("container-selinux") == "2.221.0-1.module+el8.9.0+1520+d3c7a6e3"
    assert f.service("airgap-repo")["active"] and f.service("opt-airgap-media.mount")["enabled"]
    assert f.service("containerd") == {"active": False, "enabled": False, "exists": False}
    assert "state=enabled" in f.file("/etc/dnf/modules.d/container-tools.module")
    assert f.file("/etc/resolv.conf").endswith("nameserver 127.0.0.1\n")
    assert f.dirs["/etc/pki/rpm-gpg"] == ["RPM-GPG-KEY-rockyofficial", "RPM-GPG-KEY-rockytesting"]


def test_rocky_9_joined_worker():
    f = probe("probe-rocky-9.3.txt")
    assert f.os_tag == "el9" and f.os_pretty == "Rocky Linux 9.3 (Blue Onyx)" and f.python == "/usr/bin/python3"
    assert not f.swap_active and f.selinux == "enforcing" and f.timezone == "Europe/Berlin"
    assert f.listening_ports == [22, 10248, 10249, 10250, 10256, 36413]
    assert f.bin_sha == {"/usr/local/bin/helm": "6f3e4b2c1a0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f"}
    assert f.rpm("kubeadm") == "1.30.4-150500.1.1" and f.rpm("python3") == "3.9.18-1.el9_3"
    assert f.service("kubelet") == {"active": True, "enabled": True, "exists": True}
    assert f.service("firewalld") == {"active": False, "enabled": False, "exists": True}
    assert f.has_file("/etc/kubernetes/kubelet.conf") and "server: https://10.20.0.11:6443" in f.file(
        "/etc/kubernetes/kubelet.conf")


@pytest.mark.parametrize("fixture,os_tag", [("probe-centos-7.9.txt", "el7"), ("probe-rocky-8.9.txt", "el8"),
                                            ("probe-rocky-9.3.txt", "el9")])
def test_preflight_and_host_prep_decide_from_each_release(tmp_path, fixture, os_tag):
    """The phases read these facts without surprises: preflight's verdicts are the expected ones for each host."""
    ctx = make_ctx(make_bundle(str(tmp_path / "b"), os_tag=os_tag))
    w = ctx.inventory.workers[0]
    f = probe(fixture)
    ctx.facts[w.label] = f
    errors, notes = Preflight().check_host(ctx, w, f)
    if os_tag == "el7":
        assert errors == [] and "swap is on (it will be turned off)" in notes
        assert "firewalld is running (ports will be opened)" in notes
    elif os_tag == "el8":
        assert errors == [] and "SELinux is permissive" in notes
    else:
        assert errors == ["/var has 1536 MiB free, at least 2048 are needed",
                          "Kubernetes is already set up here (found /etc/kubernetes/kubelet.conf); pass --force to "
                          "install over it, or run 'kubeadm reset' first"]
    described = [c.describe() for c in HostPrep().plan(ctx, w, f)]
    assert any("swap" in d for d in described) == f.swap_active


def test_the_probe_sections_are_the_parsed_ones():
    text = facts_mod.script("/", files=["/etc/hosts"], dirs=["/etc/yum.repos.d"])
    for name, _, _ in facts_mod._sections("/"):
        assert "sec %s; " % name in text
    assert "ss -tln" in text and "-Htln" not in text  # EL7's ss has no -H


def test_a_misspelt_fact_is_an_error():
    f = Facts(arch="x86_64")
    assert f.arch == "x86_64" and f["arch"] == "x86_64" and f.get("hostname", "?") == "?" and f.files == {}
    with pytest.raises(AttributeError):
        f.arhc  # noqa: B018
    with pytest.raises(AttributeError):
        f.arhc = "x86_64"
    with pytest.raises(KeyError, match="'arhc' is not a fact"):
        f["arhc"]  # noqa: B018
    with pytest.raises(KeyError):
        f.get("mem_kb")
    with pytest.raises(KeyError):
        Facts({"cpu": 4})
    assert Facts().files is not Facts().files  # fresh mutable defaults
