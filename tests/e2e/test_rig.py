"""Self-test of the multi-node rig (issue 6): the hosts, the air gap, dnf, and the leak trap."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rig import LeakTrap, Node, NodeSet, Rig, RigNetwork, build_rpm, createrepo
from rig.rpmtools import missing_prerequisites as rpm_tools_missing

pytestmark = pytest.mark.e2e

REPO_PORT = 8080
REPO_UNIT = "airgap-rig-selftest-repo"
PKG = "airgap-rig-selftest-hello"


def os_release(node: Node) -> dict[str, str]:
    out = {}
    for line in node.read_file("/etc/os-release").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v.strip().strip('"')
    return out


def test_nodes_boot_with_systemd(rig_nodes: NodeSet) -> None:
    assert [n.name for n in rig_nodes] == ["node1", "node2", "node3"]
    assert [n.ip for n in rig_nodes] == ["192.168.251.11", "192.168.251.12", "192.168.251.13"]
    for n in rig_nodes:
        assert n.system_state() in ("running", "degraded"), n.name
        assert "systemd" in n.sh("readlink /proc/1/exe"), n.name
        assert n.sh("hostname") == n.name
        assert n.sh("systemctl is-active ssh") == "active"
        assert n.sh("ip -4 -o addr show dev eth0").split()[3] == f"{n.ip}/24"


def test_no_route_out(rig_network: RigNetwork, rig_nodes: NodeSet) -> None:
    # No packet leaves for this check: docker's network config and routing-table lookups only.
    assert rig_network.is_internal()
    for n in rig_nodes:
        assert n.sh("ip route show default; ip -6 route show default") == "", n.name
        lookup = n.exec("ip route get 1.1.1.1", check=False)
        assert lookup.returncode != 0 and "unreachable" in lookup.stderr, (n.name, lookup.stdout, lookup.stderr)
        assert n.sh("ip route get 192.168.251.250").startswith("192.168.251.250 dev eth0")


def test_nodes_present_as_rocky9_without_containerd(rig_nodes: NodeSet) -> None:
    for n in rig_nodes:
        osr = os_release(n)
        assert osr["ID"] == "rocky"
        assert osr["ID_LIKE"] == "rhel centos fedora"
        assert osr["VERSION_ID"] == "9.4"
        assert osr["PLATFORM_ID"] == "platform:el9"
        assert n.read_file("/etc/redhat-release").startswith("Rocky Linux release 9.4")
        assert n.sh("ls -A /etc/yum.repos.d | wc -l") == "0"
        assert n.exec("test -d /etc/sysconfig", check=False).returncode == 0
        assert n.sh("rpm -q --qf '%{NAME}-%{VERSION}' rocky-release") == "rocky-release-9.4"
        assert n.sh("rpm --eval %_dbpath") == "/var/lib/rpm"
        assert n.sh("python3 -c 'import dnf; b = dnf.Base(); print(b.conf.releasever)'") == "9"
        # the bundle brings the container runtime; the host has none
        assert n.exec("command -v containerd || command -v ctr || command -v runc", check=False).returncode != 0
        assert n.sh("systemctl is-active chronyd") == "active"


def test_ssh_between_nodes_with_rig_key(rig: Rig, rig_nodes: NodeSet) -> None:
    node1 = rig_nodes["node1"]
    assert node1.exec("test -s /root/.ssh/id_ed25519", check=False).returncode == 0
    for target in ("node2", "node3", "192.168.251.12", "192.168.251.13", "node1"):
        out = node1.sh(f"ssh -o BatchMode=yes -o ConnectTimeout=5 root@{target} 'hostname; id -u'", timeout=60)
        assert out.split() == [rig_nodes[target].name, "0"], target
    # workers reach each other too (known_hosts everywhere), and the test machine reaches all nodes
    assert rig_nodes["node2"].exec("ssh -o BatchMode=yes node3 true", check=False, timeout=60).returncode != 0, (
        "workers hold no private key: only node1 (where install.py runs) does"
    )
    from rig import run

    for n in rig_nodes:
        cp = run(["ssh", "-F", str(rig.ssh_config), "-o", "BatchMode=yes", n.name, "hostname"], timeout=60)
        assert cp.stdout.strip() == n.name


def test_exec_copy_and_testinfra(node2: Node, tmp_path: Path) -> None:
    src = tmp_path / "hello.txt"
    src.write_text("copied in\n")
    node2.copy_in(src, "/root/hello.txt")
    assert node2.read_file("/root/hello.txt") == "copied in\n"
    node2.copy_out("/etc/os-release", tmp_path / "os-release")
    assert 'ID="rocky"' in (tmp_path / "os-release").read_text()
    host = node2.testinfra()
    assert host.file("/root/hello.txt").content_string == "copied in\n"
    assert host.service("ssh").is_running
    assert host.run("hostname").stdout.strip() == "node2"
    node2.exec("rm -f /root/hello.txt")


@pytest.fixture(scope="module")
def node1_http_repo(node1: Node, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A yum repo with one tiny RPM, served over HTTP by node1 (python3 -m http.server)."""
    missing = rpm_tools_missing()
    if missing:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI=true and the rig self-test needs " + ", ".join(missing), pytrace=False)
        pytest.skip("the rig self-test needs " + ", ".join(missing))
    top = tmp_path_factory.mktemp("rpmbuild")
    rpm = build_rpm(top, PKG, "1.0", "1", {f"/usr/share/{PKG}/hello.txt": "hello from node1's repo\n"})
    repo = top / "repo"
    (repo / "Packages").mkdir(parents=True)
    (repo / "Packages" / rpm.name).write_bytes(rpm.read_bytes())
    createrepo(repo)
    node1.exec("rm -rf /srv/selftest-repo && mkdir -p /srv")
    node1.copy_in(repo, "/srv/selftest-repo")
    node1.exec_background(REPO_UNIT, ["python3", "-m", "http.server", str(REPO_PORT), "--bind", node1.ip,
                                      "--directory", "/srv/selftest-repo"])
    url = f"http://node1:{REPO_PORT}/"
    try:
        deadline = time.monotonic() + 20
        while node1.exec(f"curl -sf -o /dev/null {url}repodata/repomd.xml", check=False).returncode != 0:
            assert time.monotonic() < deadline, "node1's http repo did not come up in 20s"
            time.sleep(0.3)
        yield url
    finally:
        node1.stop_background(REPO_UNIT)
        node1.exec("rm -rf /srv/selftest-repo", check=False)


def _write_repo(node: Node, name: str, baseurl: str) -> None:
    node.write_file(f"/etc/yum.repos.d/{name}.repo",
                    f"[{name}]\nname={name}\nbaseurl={baseurl}\nenabled=1\ngpgcheck=0\n"
                    "skip_if_unavailable=0\nmetadata_expire=0\n")


def test_dnf_installs_rpm_from_node1_repo(node2: Node, node1_http_repo: str, clean_trap: LeakTrap) -> None:
    _write_repo(node2, "selftest", node1_http_repo)
    try:
        node2.sh(f"dnf -y --setopt=install_weak_deps=False install {PKG}", timeout=180)
        assert node2.sh(f"rpm -q --qf '%{{NAME}}-%{{VERSION}}' {PKG}") == f"{PKG}-1.0"
        assert node2.read_file(f"/usr/share/{PKG}/hello.txt") == "hello from node1's repo\n"
        node2.sh(f"dnf -y remove {PKG}", timeout=120)
        assert node2.exec(f"rpm -q {PKG}", check=False).returncode != 0
    finally:
        node2.exec(f"rm -f /etc/yum.repos.d/selftest.repo; rpm -e {PKG} 2>/dev/null; dnf clean all", check=False)
    # pulling from node1 is the correct mirror config: the trap saw nothing
    time.sleep(1)
    assert clean_trap.connections() == [], LeakTrap.describe(clean_trap.connections())


def test_trap_silent_for_correct_mirror(node3: Node, node1_http_repo: str, clean_trap: LeakTrap) -> None:
    out = node3.sh(f"curl -sf --max-time 10 {node1_http_repo}repodata/repomd.xml")
    assert "<repomd" in out
    out = node3.sh(f"curl -sf --max-time 10 http://192.168.251.11:{REPO_PORT}/Packages/")
    assert PKG in out
    time.sleep(1)
    assert clean_trap.connections() == [], LeakTrap.describe(clean_trap.connections())


def test_trap_fires_on_wrong_mirror_config(node2: Node, clean_trap: LeakTrap) -> None:
    # a container runtime pointed at the real registry (TLS: the trap reads the SNI) ...
    cp = node2.exec("curl -sk --max-time 10 https://registry.k8s.io/v2/", check=False, timeout=30)
    assert cp.returncode != 0
    hits = clean_trap.wait_for(lambda c: c.get("sni") == "registry.k8s.io")
    assert hits and hits[0]["peer"] == node2.ip and hits[0]["port"] == 443, LeakTrap.describe(clean_trap.connections())

    # ... a registry on :5000 by its public name ...
    node2.exec("curl -s --max-time 10 http://quay.io:5000/v2/", check=False, timeout=30)
    assert clean_trap.wait_for(lambda c: c.get("host") == "quay.io:5000" and c["port"] == 5000)

    # ... and a yum repo left on the public mirror
    _write_repo(node2, "wrong-mirror", "http://mirror.centos.org/centos/7/os/x86_64/")
    try:
        cp = node2.exec("dnf -y --disablerepo='*' --enablerepo=wrong-mirror makecache", check=False, timeout=180)
        assert cp.returncode != 0
    finally:
        node2.exec("rm -f /etc/yum.repos.d/wrong-mirror.repo; dnf clean all", check=False)
    hits = clean_trap.wait_for(lambda c: c.get("host") == "mirror.centos.org" and c["port"] == 80)
    assert hits, LeakTrap.describe(clean_trap.connections())
    assert hits[0]["request_line"].startswith("GET /centos/7/os/x86_64/repodata/repomd.xml")


def test_trap_answers_dns_for_any_name(node3: Node, clean_trap: LeakTrap) -> None:
    name = "some-unlisted-upstream.example.org"
    assert node3.sh(f"getent ahostsv4 {shlex.quote(name)} | awk 'NR==1{{print $1}}'") == clean_trap.ip
    assert clean_trap.wait_for(lambda c: c.get("dns_query") == name and c["peer"] == node3.ip)
    # the real upstream names are in /etc/hosts and point at the trap as well
    hosts = node3.read_file("/etc/hosts")
    for upstream in ("registry.k8s.io", "registry-1.docker.io", "pkgs.k8s.io", "dl.rockylinux.org", "k8s.gcr.io"):
        assert f"{clean_trap.ip}\t{upstream}" in hosts, upstream


def test_deliver_bundle_and_run_on_node1(rig: Rig, tmp_path: Path, clean_trap: LeakTrap) -> None:
    """The step the full e2e uses: tarball -> node1, tar -x, ./install.py with the rig's hosts
    (here a stand-in install.py that reaches the workers over SSH like the real one)."""
    import tarfile

    top = tmp_path / "rigtest-1.0.0-el9-x86_64"
    top.mkdir()
    script = top / "install.py"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import subprocess, sys\n"
        "workers = sys.argv[sys.argv.index('--workers') + 1].split(',')\n"
        "for w in workers:\n"
        "    cmd = ['ssh', '-o', 'BatchMode=yes', 'root@' + w, 'hostname']\n"
        "    print(subprocess.check_output(cmd, text=True).strip())\n"
    )
    script.chmod(0o755)
    tarball = tmp_path / f"{top.name}.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(top, arcname=top.name)
    bundle_dir = rig.deliver_bundle(tarball)
    assert bundle_dir == f"/root/{top.name}"
    out = rig.node1.sh(f"cd {bundle_dir} && ./install.py {shlex.join(rig.install_args())}", timeout=120)
    assert out.split() == ["node2", "node3"]
    assert rig.install_args() == ["--control-plane", "192.168.251.11", "--workers", "192.168.251.12,192.168.251.13"]
    rig.node1.exec(f"rm -rf {bundle_dir} /root/{tarball.name}")
    assert clean_trap.connections() == []
