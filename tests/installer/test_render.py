import json

import yaml

from installer.render import containerd, docker, kubeadm, registry, system, systemd, yumrepo
from installer.render.yamlgen import dump


def test_kubeadm_v1beta3_below_131():
    text = kubeadm.init_config("1.30.4", "10.0.0.11", "cp1", runtime="containerd", cni="calico")
    assert text.count("apiVersion: kubeadm.k8s.io/v1beta3") == 2
    assert "kind: InitConfiguration" in text and "kind: ClusterConfiguration" in text
    assert "kubernetesVersion: v1.30.4" in text
    assert "podSubnet: 192.168.0.0/16" in text
    assert "criSocket: unix:///var/run/containerd/containerd.sock" in text
    assert "controlPlaneEndpoint: 10.0.0.11:6443" in text
    assert "imageRepository: registry.k8s.io" in text
    assert "cgroupDriver: systemd" in text
    # v1beta3: extra args are a map
    docs = list(yaml.safe_load_all(text))
    assert [d["kind"] for d in docs] == ["InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"]
    assert docs[0]["nodeRegistration"]["kubeletExtraArgs"] == {"node-ip": "10.0.0.11"}
    assert docs[0]["localAPIEndpoint"] == {"advertiseAddress": "10.0.0.11", "bindPort": 6443}
    assert docs[1]["apiServer"]["certSANs"] == ["10.0.0.11"]


def test_kubeadm_v1beta4_from_131():
    text = kubeadm.init_config("1.31.0", "10.0.0.11", "cp1", runtime="docker", cni="flannel",
                               image_repository="10.0.0.11:5000/registry.k8s.io",
                               control_plane_endpoint="lb.example:6443")
    assert "apiVersion: kubeadm.k8s.io/v1beta4" in text and "v1beta3" not in text
    assert "podSubnet: 10.244.0.0/16" in text
    assert "criSocket: unix:///var/run/cri-dockerd.sock" in text
    assert "controlPlaneEndpoint: lb.example:6443" in text
    assert "imageRepository: 10.0.0.11:5000/registry.k8s.io" in text
    # v1beta4: extra args are a list of name/value
    docs = list(yaml.safe_load_all(text))
    assert docs[0]["nodeRegistration"]["kubeletExtraArgs"] == [{"name": "node-ip", "value": "10.0.0.11"}]
    assert docs[1]["networking"]["podSubnet"] == "10.244.0.0/16"


def test_kubeadm_join_config():
    text = kubeadm.join_config("1.30.4", "10.0.0.11:6443", "abcdef.0123456789abcdef", "sha256:" + "a" * 64,
                               "cp2", "10.0.0.12", control_plane=True, certificate_key="k" * 64)
    assert "kind: JoinConfiguration" in text
    assert "apiServerEndpoint: 10.0.0.11:6443" in text
    doc = yaml.safe_load(text)
    assert doc["discovery"]["bootstrapToken"]["caCertHashes"] == ["sha256:" + "a" * 64]
    assert "certificateKey: " + "k" * 64 in text
    assert "advertiseAddress: 10.0.0.12" in text


def test_version_tuple():
    assert kubeadm.version_tuple("v1.31.0-rc.1") == (1, 31, 0)
    assert kubeadm.api_version("1.30.99").endswith("v1beta3")
    assert kubeadm.api_version("1.31.0").endswith("v1beta4")


def test_yaml_quoting():
    data = {"a": "yes", "b": "1.30", "c": "x:y", "d": True, "e": [], "f": "it's", "g": "1:20", "h": "010",
            "i": [{"x": 1, "y": ["a", "b"]}, "z"], "j": {"k": {"l": None}}}
    assert yaml.safe_load(dump(data)) == data


def test_containerd_config_v2():
    text = containerd.config_toml("registry.k8s.io/pause:3.9", 1)
    assert "version = 2" in text
    assert 'sandbox_image = "registry.k8s.io/pause:3.9"' in text
    assert "SystemdCgroup = true" in text
    assert 'config_path = "/etc/containerd/certs.d"' in text
    assert "disabled_plugins" not in text


def test_containerd_config_v3():
    text = containerd.config_toml("registry.k8s.io/pause:3.10", 2)
    assert "version = 3" in text
    assert 'sandbox = "registry.k8s.io/pause:3.10"' in text
    assert '[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]' in text


def test_hosts_toml_mirrors_without_rewriting():
    text = containerd.hosts_toml("registry.k8s.io", "10.0.0.11:5000", "/etc/containerd/certs.d/10.0.0.11:5000/ca.crt")
    assert 'server = "https://registry.k8s.io"' in text
    assert '[host."https://10.0.0.11:5000/v2/registry.k8s.io"]' in text
    assert 'capabilities = ["pull", "resolve"]' in text
    assert "override_path = true" in text
    assert 'ca = "/etc/containerd/certs.d/10.0.0.11:5000/ca.crt"' in text
    docker_io = containerd.hosts_toml("docker.io", "10.0.0.11:5000")
    assert 'server = "https://registry-1.docker.io"' in docker_io
    files = containerd.hosts_files(["docker.io", "registry.k8s.io"], "10.0.0.11:5000", "/ca")
    assert sorted(files) == ["/etc/containerd/certs.d/10.0.0.11:5000/hosts.toml",
                             "/etc/containerd/certs.d/docker.io/hosts.toml",
                             "/etc/containerd/certs.d/registry.k8s.io/hosts.toml"]
    own = files["/etc/containerd/certs.d/10.0.0.11:5000/hosts.toml"]
    assert 'server = "https://10.0.0.11:5000"' in own and "override_path" not in own


def test_daemon_json_as_the_seed():
    cfg = json.loads(docker.daemon_json(["https://10.0.0.11:5000"]))
    assert cfg == {
        "exec-opts": ["native.cgroupdriver=systemd"],
        "log-driver": "json-file",
        "log-opts": {"max-size": "100m"},
        "storage-driver": "overlay2",
        "registry-mirrors": ["https://10.0.0.11:5000"],
    }
    assert docker.ca_path("10.0.0.11:5000") == "/etc/docker/certs.d/10.0.0.11:5000/ca.crt"


def test_sysctl_and_modules():
    s = system.sysctl_conf()
    assert "net.bridge.bridge-nf-call-iptables = 1" in s and "net.ipv4.ip_forward = 1" in s
    assert system.modules_load().splitlines()[1:] == ["overlay", "br_netfilter"]


def test_hosts_block_replaced_not_duplicated():
    first = system.hosts_file("127.0.0.1 localhost\n", [("10.0.0.11", "cp1")])
    second = system.hosts_file(first, [("10.0.0.11", "cp1"), ("10.0.0.12", "w1")])
    assert second.count(system.BEGIN) == 1
    assert second.startswith("127.0.0.1 localhost\n")
    assert "10.0.0.12       w1" in second
    assert system.hosts_file(second, [("10.0.0.11", "cp1"), ("10.0.0.12", "w1")]) == second


def test_fstab_swap_commented():
    fstab = "/dev/mapper/rl-root / xfs defaults 0 0\n/dev/mapper/rl-swap none swap defaults 0 0\n" \
            "#/dev/sdb1 none swap sw 0 0\n"
    out = system.fstab_without_swap(fstab)
    assert "#airgap-installer# /dev/mapper/rl-swap none swap defaults 0 0" in out
    assert "/dev/mapper/rl-root / xfs defaults 0 0" in out
    assert system.has_swap_line(fstab) and not system.has_swap_line(out)
    assert system.fstab_without_swap(out) == out


def test_chrony():
    server = system.chrony_conf(serve_networks=["10.0.0.12/32"], local_stratum=10)
    assert "local stratum 10" in server and "allow 10.0.0.12/32" in server and "server " not in server
    client = system.chrony_conf(servers=["10.0.0.11"])
    assert "server 10.0.0.11 iburst" in client and "allow" not in client


def test_yum_repos():
    text = yumrepo.bundle_repo("http://10.0.0.11:8089/repo", ["http://10.0.0.11:8089/repo/gpgkeys/k.gpg"], 9)
    assert "[airgap-bundle]" in text and "gpgcheck=1" in text and "module_hotfixes=1" in text
    assert "gpgkey=http://10.0.0.11:8089/repo/gpgkeys/k.gpg" in text
    nokey = yumrepo.bundle_repo("file:///opt/airgap/repo", [], 7)
    assert "gpgcheck=0" in nokey and "module_hotfixes" not in nokey
    assert [s[2] for s in yumrepo.media_subdirs(7)] == [""]
    assert [s[2] for s in yumrepo.media_subdirs(8)] == ["BaseOS", "AppStream"]


def test_registry_config():
    ro = registry.config_yml("10.0.0.11:5000", "/c.crt", "/c.key", read_only=True)
    assert "addr: 10.0.0.11:5000" in ro and "readonly:\n      enabled: true" in ro and "auth" not in ro
    push = registry.config_yml("127.0.0.1:5001", "/c.crt", "/c.key", htpasswd="/h")
    assert "htpasswd:\n    realm: airgap-registry\n    path: /h" in push and "readonly" not in push


def test_units():
    unit = systemd.repo_server_unit("/usr/bin/python3", "10.0.0.11", 8089, "/opt/airgap")
    assert "ExecStart=/usr/bin/python3 -m http.server 8089 --bind 10.0.0.11" in unit
    assert "User=nobody" in unit and "WorkingDirectory=/opt/airgap" in unit
    assert "Options=ro,loop" in systemd.media_mount_unit("/x.iso", iso=True)
    assert "Options=ro\n" in systemd.media_mount_unit("/dev/sr0")
    units = systemd.kubelet_units()
    assert "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf" in units
    assert "Delegate=yes" in systemd.containerd_unit()
