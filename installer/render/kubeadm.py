"""kubeadm configuration: v1beta3 for Kubernetes < 1.31, v1beta4 for >= 1.31."""

from collections import OrderedDict

from installer.render.yamlgen import dump_all

CRI_SOCKETS = {
    "containerd": "unix:///var/run/containerd/containerd.sock",
    "docker": "unix:///var/run/cri-dockerd.sock",
}
DEFAULT_POD_SUBNETS = {"calico": "192.168.0.0/16", "flannel": "10.244.0.0/16", "none": "10.244.0.0/16"}
SERVICE_SUBNET = "10.96.0.0/12"


def version_tuple(v):
    parts = []
    for p in str(v).lstrip("v").split("-")[0].split("+")[0].split("."):
        try:
            parts.append(int(p))
        except ValueError:
            parts.append(0)
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts[:3])


def api_version(k8s_version):
    return "kubeadm.k8s.io/v1beta4" if version_tuple(k8s_version) >= (1, 31, 0) else "kubeadm.k8s.io/v1beta3"


def _args(args, v4):
    """extraArgs: a map in v1beta3, a list of {name, value} in v1beta4."""
    if v4:
        return [OrderedDict([("name", k), ("value", str(v))]) for k, v in args.items()]
    return OrderedDict((k, str(v)) for k, v in args.items())


def init_config(k8s_version, advertise_address, node_name, runtime="containerd", pod_subnet=None, cni="calico",
                image_repository="registry.k8s.io", control_plane_endpoint=None, service_subnet=SERVICE_SUBNET,
                cluster_name="kubernetes", cert_sans=(), bind_port=6443):
    """InitConfiguration + ClusterConfiguration + KubeletConfiguration for `kubeadm init --config`."""
    api = api_version(k8s_version)
    v4 = api.endswith("v1beta4")
    kubelet_args = OrderedDict([("node-ip", advertise_address)])
    node_reg = OrderedDict([
        ("name", node_name),
        ("criSocket", CRI_SOCKETS[runtime]),
        ("kubeletExtraArgs", _args(kubelet_args, v4)),
    ])
    init = OrderedDict([
        ("apiVersion", api),
        ("kind", "InitConfiguration"),
        ("localAPIEndpoint", OrderedDict([("advertiseAddress", advertise_address), ("bindPort", bind_port)])),
        ("nodeRegistration", node_reg),
    ])
    networking = OrderedDict([
        ("podSubnet", pod_subnet or DEFAULT_POD_SUBNETS.get(cni, "10.244.0.0/16")),
        ("serviceSubnet", service_subnet),
        ("dnsDomain", "cluster.local"),
    ])
    sans = [advertise_address] + [s for s in cert_sans if s != advertise_address]
    cluster = OrderedDict([
        ("apiVersion", api),
        ("kind", "ClusterConfiguration"),
        ("clusterName", cluster_name),
        ("kubernetesVersion", "v" + str(k8s_version).lstrip("v")),
        ("imageRepository", image_repository),
        ("controlPlaneEndpoint", control_plane_endpoint or "%s:%d" % (_host(advertise_address), bind_port)),
        ("networking", networking),
        ("apiServer", OrderedDict([("certSANs", sans)])),
    ])
    kubelet = OrderedDict([
        ("apiVersion", "kubelet.config.k8s.io/v1beta1"),
        ("kind", "KubeletConfiguration"),
        ("cgroupDriver", "systemd"),
    ])
    if version_tuple(k8s_version) < (1, 24, 0) and runtime == "docker":
        # dockershim era: kubelet talks to docker itself, no cri-dockerd
        node_reg["criSocket"] = "/var/run/dockershim.sock"
    return dump_all([init, cluster, kubelet])


def join_config(k8s_version, api_endpoint, token, ca_cert_hash, node_name, advertise_address, runtime="containerd",
                control_plane=False, certificate_key=None):
    """JoinConfiguration for `kubeadm join --config` (workers, and extra control planes)."""
    api = api_version(k8s_version)
    v4 = api.endswith("v1beta4")
    doc = OrderedDict([
        ("apiVersion", api),
        ("kind", "JoinConfiguration"),
        ("discovery", OrderedDict([
            ("bootstrapToken", OrderedDict([
                ("apiServerEndpoint", api_endpoint),
                ("token", token),
                ("caCertHashes", [ca_cert_hash]),
            ])),
        ])),
        ("nodeRegistration", OrderedDict([
            ("name", node_name),
            ("criSocket", CRI_SOCKETS[runtime]),
            ("kubeletExtraArgs", _args(OrderedDict([("node-ip", advertise_address)]), v4)),
        ])),
    ])
    if control_plane:
        cp = OrderedDict([("localAPIEndpoint", OrderedDict([("advertiseAddress", advertise_address),
                                                             ("bindPort", 6443)]))])
        if certificate_key:
            cp["certificateKey"] = certificate_key
        doc["controlPlane"] = cp
    return dump_all([doc])


def _host(addr):
    return "[%s]" % addr if ":" in addr else addr
