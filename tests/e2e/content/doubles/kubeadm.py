#!/usr/bin/python3
# TEST DOUBLE of kubeadm for the airgap-bundler e2e rig -- NOT the real kubeadm.
#
# It validates what the installer gives it the way kubeadm would (apiVersion/kind, unknown fields,
# versions, CIDRs, sockets, endpoints), records every invocation as a JSON line in
# /var/log/kubeadm-double.log (argv, config text, time), and writes the files kubeadm writes
# (/etc/kubernetes/{admin,kubelet,...}.conf, pki/, manifests/, /var/lib/kubelet/config.yaml) so the
# kubelet double can bring up the apiserver double. See kubedouble.py for the whole design.
import ipaddress
import json
import os
import re
import secrets
import subprocess
import sys
import time

_here = os.path.dirname(os.path.realpath(__file__))
sys.path[:0] = [_here, os.path.join(_here, "..", "lib", "airgap-e2e"), "/usr/lib/airgap-e2e"]
import kubedouble as kd  # noqa: E402

LOG = "kubeadm-double.log"
HELP = f"""kubeadm -- {kd.DOUBLE_BANNER}

    This kubeadm is a TEST DOUBLE for the airgap-bundler e2e tests (version v{kd.KUBE_VERSION}). It validates
    its configuration like kubeadm, records every call in /var/log/kubeadm-double.log and writes
    the files kubeadm writes; the control plane it "starts" is the apiserver double run by the
    kubelet double. It does not run Kubernetes.

Usage:
  kubeadm init --config FILE [--upload-certs] [--ignore-preflight-errors=all]
  kubeadm join --config FILE | kubeadm join HOST:PORT --token T --discovery-token-ca-cert-hash sha256:H
  kubeadm token create [--ttl 30m] [--print-join-command] | kubeadm token delete TOKEN (a join with a
  deleted or expired token is refused by the apiserver double)
  kubeadm init phase upload-certs --upload-certs
  kubeadm reset [-f]
  kubeadm config images list [--kubernetes-version vX.Y.Z] [--image-repository R] [--config FILE]
  kubeadm upgrade plan [vX] | upgrade apply vX --yes | upgrade node
  kubeadm version [-o short|json]
  kubeadm certs check-expiration | kubeadm certs renew all|NAME (real dates of the files under
  /etc/kubernetes/pki; re-issued with their CA by renew)
"""

# --------------------------------------------------------------------------------------- schema
# Known fields per kind (a value of dict = nested object with those fields; None = any value).
_EXTRA = None
_NODE_REG = {"name": None, "criSocket": None, "taints": None, "kubeletExtraArgs": None,
             "ignorePreflightErrors": None, "imagePullPolicy": None, "imagePullSerial": None}
_ENDPOINT = {"advertiseAddress": None, "bindPort": None}
_COMPONENT = {"extraArgs": None, "extraVolumes": None, "extraEnvs": None}
SCHEMAS = {
    "InitConfiguration": {
        "apiVersion": None, "kind": None, "bootstrapTokens": None, "nodeRegistration": _NODE_REG,
        "localAPIEndpoint": _ENDPOINT, "certificateKey": None, "skipPhases": None, "patches": None,
        "timeouts": None, "dryRun": None,
    },
    "ClusterConfiguration": {
        "apiVersion": None, "kind": None, "etcd": None,
        "networking": {"serviceSubnet": None, "podSubnet": None, "dnsDomain": None},
        "kubernetesVersion": None, "controlPlaneEndpoint": None,
        "apiServer": dict(_COMPONENT, certSANs=None, timeoutForControlPlane=None),
        "controllerManager": _COMPONENT, "scheduler": _COMPONENT, "dns": {"imageRepository": None, "imageTag": None,
                                                                          "disabled": None},
        "proxy": {"disabled": None}, "certificatesDir": None, "imageRepository": None, "featureGates": None,
        "clusterName": None, "encryptionAlgorithm": None, "certificateValidityPeriod": None,
        "caCertificateValidityPeriod": None,
    },
    "JoinConfiguration": {
        "apiVersion": None, "kind": None, "nodeRegistration": _NODE_REG, "caCertPath": None,
        "discovery": {"bootstrapToken": {"token": None, "apiServerEndpoint": None, "caCertHashes": None,
                                         "unsafeSkipCAVerification": None},
                      "file": None, "tlsBootstrapToken": None, "timeout": None},
        "controlPlane": {"localAPIEndpoint": _ENDPOINT, "certificateKey": None},
        "skipPhases": None, "patches": None, "timeouts": None, "dryRun": None,
    },
    "KubeletConfiguration": {k: None for k in (
        "apiVersion", "kind", "cgroupDriver", "cgroupRoot", "containerRuntimeEndpoint", "clusterDNS",
        "clusterDomain", "failSwapOn", "maxPods", "authentication", "authorization", "rotateCertificates",
        "serverTLSBootstrap", "staticPodPath", "evictionHard", "evictionSoft", "systemReserved", "kubeReserved",
        "featureGates", "resolvConf", "address", "port", "healthzPort", "healthzBindAddress", "readOnlyPort",
        "tlsCipherSuites", "tlsMinVersion", "memorySwap", "imageGCHighThresholdPercent",
        "imageGCLowThresholdPercent", "logging", "shutdownGracePeriod", "shutdownGracePeriodCriticalPods",
        "cpuManagerPolicy", "topologyManagerPolicy", "podPidsLimit", "protectKernelDefaults",
        "serializeImagePulls", "maxParallelImagePulls", "containerLogMaxSize", "containerLogMaxFiles",
        "nodeStatusUpdateFrequency", "nodeStatusReportFrequency", "runtimeRequestTimeout", "volumePluginDir",
        "streamingConnectionIdleTimeout", "syncFrequency", "fileCheckFrequency", "registerNode",
        "registerWithTaints", "providerID", "kubeletCgroups", "systemCgroups", "enforceNodeAllocatable",
        "hairpinMode", "cgroupsPerQOS", "imageMinimumGCAge", "imageMaximumGCAge", "seccompDefault")},
    "KubeProxyConfiguration": {k: None for k in (
        "apiVersion", "kind", "mode", "clusterCIDR", "bindAddress", "metricsBindAddress", "healthzBindAddress",
        "ipvs", "iptables", "nftables", "conntrack", "featureGates", "nodePortAddresses", "clientConnection",
        "configSyncPeriod", "hostnameOverride", "oomScoreAdj", "portRange", "showHiddenMetricsForVersion",
        "detectLocalMode", "detectLocal", "logging", "winkernel", "bindAddressHardFail", "enableProfiling")},
}
KUBEADM_KINDS = ("InitConfiguration", "ClusterConfiguration", "JoinConfiguration")
OTHER_API = {"KubeletConfiguration": "kubelet.config.k8s.io/v1beta1",
             "KubeProxyConfiguration": "kubeproxy.config.k8s.io/v1alpha1"}


def version_tuple(v: str) -> tuple:
    m = re.match(r"^v?(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$", str(v))
    if not m:
        raise ValueError(v)
    return tuple(int(x) for x in m.groups())


def supported_kubeadm_apis() -> tuple:
    """kubeadm 1.31+ reads v1beta3 and v1beta4; older kubeadm does not know v1beta4."""
    return (("kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4") if version_tuple(kd.KUBE_VERSION)[:2] >= (1, 31)
            else ("kubeadm.k8s.io/v1beta3",))


def _unknown(obj: object, schema: object, where: str, errors: list) -> None:
    if not isinstance(schema, dict) or not isinstance(obj, dict):
        return
    for k, v in obj.items():
        if k not in schema:
            close = [s for s in schema if s.lower() == str(k).lower() or _edit1(s, str(k))]
            errors.append('unknown field "{}{}"{}'.format(where, k, f' (did you mean "{close[0]}"?)' if close else ""))
        else:
            _unknown(v, schema[k], f"{where}{k}.", errors)


def _edit1(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    s, t = (a, b) if len(a) < len(b) else (b, a)
    return any(t[:i] + t[i + 1:] == s for i in range(len(t)))


def _cidrs(value: object, field: str, errors: list) -> list:
    nets = []
    for part in str(value or "").split(","):
        try:
            nets.append(ipaddress.ip_network(part.strip(), strict=True))
        except ValueError as e:
            errors.append(f"{field}: invalid CIDR {part.strip()!r}: {e}")
    return nets


def _hostport(value: str, field: str, errors: list) -> None:
    m = re.match(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d+))?$", str(value))
    if not m or (m.group(2) and not 0 < int(m.group(2)) < 65536):
        errors.append(f"{field}: {value!r} is not a valid host[:port]")


def _node_registration(nr: dict, api: str, errors: list, where: str) -> None:
    name = nr.get("name")
    if name is not None and not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
                                         str(name)):
        errors.append(f"{where}.nodeRegistration.name: {name!r} is not a valid node name (lowercase RFC 1123)")
    sock = nr.get("criSocket")
    if sock is not None and not str(sock).startswith("unix://"):
        errors.append(f"{where}.nodeRegistration.criSocket: {sock!r} must be a unix:// URL")
    args = nr.get("kubeletExtraArgs")
    if args is not None:
        if api.endswith("v1beta3") and not isinstance(args, dict):
            errors.append(f"{where}.nodeRegistration.kubeletExtraArgs: v1beta3 wants a map of flag: value")
        if api.endswith("v1beta4") and not (isinstance(args, list) and all(
                isinstance(a, dict) and set(a) == {"name", "value"} for a in args)):
            errors.append(f"{where}.nodeRegistration.kubeletExtraArgs: v1beta4 wants a list of {{name, value}}")


def validate(text: str, purpose: str) -> dict:
    """Parse and check a kubeadm config; returns {kind: doc}. Exits 1 with kubeadm-like errors."""
    try:
        docs = [d for d in kd.parse_yaml(text) if d is not None]
    except kd.YAMLError as e:
        kd.die(f"error: could not parse the kubeadm config: {e}")
    errors: list = []
    by_kind: dict = {}
    apis = supported_kubeadm_apis()
    for d in docs:
        if not isinstance(d, dict):
            errors.append("a config document is not a mapping")
            continue
        kind, api = d.get("kind"), d.get("apiVersion")
        if kind in KUBEADM_KINDS:
            if api not in apis:
                errors.append(f'no kind "{kind}" is registered for version "{api}" '
                              f'(this kubeadm v{kd.KUBE_VERSION} reads {", ".join(apis)})')
        elif kind in OTHER_API:
            if api != OTHER_API[kind]:
                errors.append(f'no kind "{kind}" is registered for version "{api}"')
        else:
            errors.append(f'unknown kind "{kind}" (apiVersion {api})')
            continue
        if kind in by_kind:
            errors.append(f"duplicate {kind}")
        by_kind[kind] = d
        _unknown(d, SCHEMAS[kind], f"{kind}.", errors)
    kapis = {d.get("apiVersion") for k, d in by_kind.items() if k in KUBEADM_KINDS}
    if len(kapis) > 1:
        errors.append("mixed kubeadm API versions: {}".format(", ".join(sorted(map(str, kapis)))))
    api = next(iter(kapis), apis[0])
    if purpose == "init":
        if "JoinConfiguration" in by_kind:
            errors.append("kubeadm init does not take a JoinConfiguration")
        cc = by_kind.get("ClusterConfiguration", {})
        ic = by_kind.get("InitConfiguration", {})
        kv = cc.get("kubernetesVersion")
        if kv is not None:
            try:
                want, have = version_tuple(str(kv)), version_tuple(kd.KUBE_VERSION)
                if not str(kv).startswith("v"):
                    errors.append(f"ClusterConfiguration.kubernetesVersion: {kv!r} must start with v")
                if want[:2] > have[:2]:
                    errors.append(f"the kubernetesVersion {kv} is newer than kubeadm v{kd.KUBE_VERSION}")
                elif want[:2] < (have[0], have[1] - 1):
                    errors.append("this version of kubeadm only supports deploying clusters with the control plane "
                                  f"version >= {have[0]}.{have[1] - 1}.0. Current version: {kv}")
            except ValueError:
                errors.append(f"ClusterConfiguration.kubernetesVersion: {kv!r} is not a version")
        repo = cc.get("imageRepository")
        if repo is not None and not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:\d+)?(/[a-z0-9._-]+)*$", str(repo)):
            errors.append(f"ClusterConfiguration.imageRepository: {repo!r} is not a registry path")
        net = cc.get("networking") or {}
        pods = _cidrs(net.get("podSubnet"), "networking.podSubnet", errors) if net.get("podSubnet") else []
        svcs = _cidrs(net.get("serviceSubnet"), "networking.serviceSubnet", errors) if net.get("serviceSubnet") else []
        for a in pods:
            for b in svcs:
                if a.version == b.version and a.overlaps(b):
                    errors.append(f"networking.podSubnet {a} overlaps networking.serviceSubnet {b}")
        cpe = cc.get("controlPlaneEndpoint")
        if cpe is not None:
            _hostport(str(cpe), "ClusterConfiguration.controlPlaneEndpoint", errors)
        lae = ic.get("localAPIEndpoint") or {}
        if lae.get("advertiseAddress") is not None:
            try:
                ipaddress.ip_address(str(lae["advertiseAddress"]))
            except ValueError:
                errors.append(f"localAPIEndpoint.advertiseAddress: {lae['advertiseAddress']!r} is not an IP address")
        if lae.get("bindPort") is not None and not (isinstance(lae["bindPort"], int) and 0 < lae["bindPort"] < 65536):
            errors.append("localAPIEndpoint.bindPort: {!r} is not a port".format(lae["bindPort"]))
        _node_registration(ic.get("nodeRegistration") or {}, api, errors, "InitConfiguration")
        for s in (cc.get("apiServer") or {}).get("certSANs") or []:
            if not re.match(r"^[A-Za-z0-9.*:-]+$", str(s)):
                errors.append(f"apiServer.certSANs: {s!r} is not an IP or DNS name")
    else:
        if set(by_kind) - {"JoinConfiguration", "KubeletConfiguration", "KubeProxyConfiguration"}:
            errors.append("kubeadm join takes a JoinConfiguration only, got {}".format(", ".join(sorted(by_kind))))
        jc = by_kind.get("JoinConfiguration")
        if jc is None:
            errors.append("no JoinConfiguration in the config")
        else:
            bt = (jc.get("discovery") or {}).get("bootstrapToken") or {}
            if not re.match(r"^[a-z0-9]{6}\.[a-z0-9]{16}$", str(bt.get("token", ""))):
                errors.append("discovery.bootstrapToken.token: {!r} is not a bootstrap token".format(bt.get("token")))
            if bt.get("apiServerEndpoint") is None:
                errors.append("discovery.bootstrapToken.apiServerEndpoint is required")
            else:
                _hostport(str(bt["apiServerEndpoint"]), "discovery.bootstrapToken.apiServerEndpoint", errors)
            hashes = bt.get("caCertHashes") or []
            if not hashes and not bt.get("unsafeSkipCAVerification"):
                errors.append("discovery.bootstrapToken.caCertHashes is required (or unsafeSkipCAVerification)")
            for h in hashes:
                if not re.match(r"^sha256:[0-9a-f]{64}$", str(h)):
                    errors.append(f"discovery.bootstrapToken.caCertHashes: {h!r} is not sha256:<64 hex>")
            _node_registration(jc.get("nodeRegistration") or {}, api, errors, "JoinConfiguration")
            key = (jc.get("controlPlane") or {}).get("certificateKey")
            if key is not None and not re.match(r"^[0-9a-f]{64}$", str(key)):
                errors.append("controlPlane.certificateKey: not 64 hex characters")
    kc = by_kind.get("KubeletConfiguration") or {}
    if "cgroupDriver" in kc and kc["cgroupDriver"] not in ("systemd", "cgroupfs"):
        errors.append(f'KubeletConfiguration.cgroupDriver: {kc["cgroupDriver"]!r} is not "systemd" or "cgroupfs"')
    if errors:
        listed = "\n".join("\t* " + e for e in errors)
        kd.die(f"error: the kubeadm configuration is invalid (kubeadm double v{kd.KUBE_VERSION}):\n{listed}", 1)
    return by_kind


# --------------------------------------------------------------------------------------- helpers
def images_for(repo: str, version: str) -> list:
    out = []
    for ref in kd.KUBEADM_IMAGES:
        name = ref.split("/", 1)[1]
        base, _, tag = name.rpartition(":")
        if base in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"):
            tag = "v" + version.lstrip("v")
        out.append(f"{repo}/{base}:{tag}")
    return out


def image_of(images: list, name: str) -> str:
    return next(i for i in images if i.rsplit(":", 1)[0].endswith("/" + name))


def preflight(flags: dict, sock: str, images: list, errors_ok: bool) -> None:
    problems = []
    if os.geteuid() != 0 and kd.on_host():
        problems.append("[ERROR IsPrivilegedUser]: user is not running as root")
    path = sock.replace("unix://", "", 1)
    if not os.path.exists(kd.p(path)):
        problems.append(f"[ERROR CRI]: container runtime is not running: {path} does not exist")
    if problems and not errors_ok:
        kd.die("error execution phase preflight: [preflight] Some fatal errors occurred:\n\t{}\n"
               "[preflight] If you know what you are doing, you can make a check non-fatal with "
               "`--ignore-preflight-errors=...`".format("\n\t".join(problems)))
    if images and not errors_ok:
        print("[preflight] Pulling images required for setting up a Kubernetes cluster")
        for img in images:
            r = subprocess.run(["crictl", "pull", img], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if r.returncode != 0:
                kd.die("error execution phase preflight: [preflight] Some fatal errors occurred:\n\t"
                       "[ERROR ImagePull]: failed to pull image {}: {}".format(img, r.stdout.decode(errors="replace")))


def make_pki(pki: str, sans: list, cn: str = "kube-apiserver") -> str:
    """A real CA and apiserver serving certificate (openssl), like kubeadm's certs phase."""
    d = kd.p(pki)
    os.makedirs(d, exist_ok=True)
    ca_key, ca_crt = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    if not os.path.exists(ca_crt):
        kd.openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_crt, "-days",
                    "3650", "-subj", "/CN=kubernetes", "-sha256"])
    key, csr, crt = (os.path.join(d, n) for n in ("apiserver.key", "apiserver.csr", "apiserver.crt"))
    ext = os.path.join(d, "apiserver.ext")
    alt = []
    for s in sans:
        try:
            ipaddress.ip_address(s)
            alt.append("IP:" + s)
        except ValueError:
            alt.append("DNS:" + s)
    with open(ext, "w") as f:
        f.write("subjectAltName={}\nextendedKeyUsage=serverAuth\n".format(",".join(alt)))
    kd.openssl(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + cn])
    kd.openssl(["x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-days", "365",
                "-sha256", "-extfile", ext, "-out", crt])
    for f in (ca_key, key):
        os.chmod(f, 0o600)
    os.unlink(csr)
    with open(ca_crt) as f:
        return f.read()


def static_pod(name: str, image: str, command: list) -> str:
    lines = ["# TEST DOUBLE static pod manifest written by the kubeadm double (airgap-bundler e2e)",
             "apiVersion: v1", "kind: Pod", "metadata:", f"  name: {name}", "  namespace: kube-system",
             "  labels:", f"    component: {name}", "    tier: control-plane", "spec:", "  hostNetwork: true",
             "  containers:", f"  - name: {name}", f"    image: {image}", "    command:"]
    lines += [f"    - {c}" for c in command]
    return "\n".join(lines) + "\n"


def kubelet_files(kubelet_cfg: dict, sock: str, pause: str, node_name: str, node_ip: "str | None") -> None:
    cfg = {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
           "cgroupDriver": "systemd", "staticPodPath": "/etc/kubernetes/manifests",
           "clusterDNS": ["10.96.0.10"], "clusterDomain": "cluster.local"}
    cfg.update({k: v for k, v in kubelet_cfg.items() if k not in ("apiVersion", "kind")})
    kd.write("/var/lib/kubelet/config.yaml", "# written by the kubeadm double\n" + "\n".join(
        f"{k}: {json.dumps(v)}" for k, v in cfg.items()) + "\n")
    args = [f"--container-runtime-endpoint={sock}", f"--pod-infra-container-image={pause}"]
    if node_name != kd.hostname():
        args.append(f"--hostname-override={node_name}")
    if node_ip:
        args.append(f"--node-ip={node_ip}")
    kd.write("/var/lib/kubelet/kubeadm-flags.env", 'KUBELET_KUBEADM_ARGS="{}"\n'.format(" ".join(args)))


def extra_args(nr: dict) -> dict:
    a = nr.get("kubeletExtraArgs") or {}
    if isinstance(a, list):
        return {x["name"]: str(x["value"]) for x in a}
    return {k: str(v) for k, v in a.items()}


def restart_kubelet() -> None:
    if kd.on_host():
        subprocess.run(["systemctl", "daemon-reload"])
        subprocess.run(["systemctl", "restart", "kubelet"])


def new_token() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(6)) + "." + "".join(
        secrets.choice(alphabet) for _ in range(16))


def add_token(token: str, ttl: str = "24h") -> None:
    m = re.match(r"^(\d+)([smh])$", ttl or "24h")
    seconds = int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)] if m else 86400
    tokens = kd.load_json(kd.STATE_DIR + "/tokens.json", {})
    tokens[token] = {"expires": time.time() + seconds if seconds else None, "created": kd.now_iso()}
    kd.write(kd.STATE_DIR + "/tokens.json", json.dumps(tokens, indent=1), 0o600)


def cluster_state() -> dict:
    st = kd.load_json(kd.STATE_DIR + "/cluster.json", None)
    if not st:
        kd.die(f"error: this node is not a control plane initialized by kubeadm (no {kd.STATE_DIR}/cluster.json)")
    return st


# --------------------------------------------------------------------------------------- commands
def cmd_init(argv: list, flags: dict) -> None:
    if "config" not in flags:
        kd.die("error: the kubeadm double needs --config (the installer always passes one)")
    text = read_config(flags["config"])
    kd.record(LOG, {"argv": argv, "command": "init", "config": text})
    cfg = validate(text, "init")
    if kd.read("/etc/kubernetes/admin.conf") is not None:
        kd.die("error execution phase preflight: [ERROR FileAvailable--etc-kubernetes-admin.conf]: "
               "/etc/kubernetes/admin.conf already exists")
    ic, cc = cfg.get("InitConfiguration", {}), cfg.get("ClusterConfiguration", {})
    nr = ic.get("nodeRegistration") or {}
    version = str(cc.get("kubernetesVersion") or "v" + kd.KUBE_VERSION)
    repo = str(cc.get("imageRepository") or "registry.k8s.io")
    images = images_for(repo, version)
    sock = str(nr.get("criSocket") or "unix:///var/run/containerd/containerd.sock")
    ignore = flags.get("ignore-preflight-errors", "")
    print(f"[init] Using Kubernetes version: {version}")
    print("[preflight] Running pre-flight checks (kubeadm TEST DOUBLE)")
    preflight(flags, sock, images, ignore.lower() == "all")
    lae = ic.get("localAPIEndpoint") or {}
    addr = str(lae.get("advertiseAddress") or "127.0.0.1")
    port = int(lae.get("bindPort") or kd.API_PORT)
    cpe = str(cc.get("controlPlaneEndpoint") or f"{addr}:{port}")
    name = str(nr.get("name") or kd.hostname())
    sans = sorted(set([addr, "127.0.0.1", "10.96.0.1", name, "kubernetes", "kubernetes.default",
                       cpe.rsplit(":", 1)[0].strip("[]")] + [str(s) for s in
                                                             (cc.get("apiServer") or {}).get("certSANs") or []]))
    print("[certs] Generating \"ca\" and \"apiserver\" certificates (openssl)")
    ca = make_pki("/etc/kubernetes/pki", sans)
    admin_token = kd.read(kd.ADMIN_TOKEN_FILE) or new_token()
    kd.write(kd.ADMIN_TOKEN_FILE, admin_token, 0o600)
    server = f"https://{cpe}"
    for f, user in (("admin.conf", "kubernetes-admin"), ("super-admin.conf", "kubernetes-super-admin"),
                    ("controller-manager.conf", "system:kube-controller-manager"),
                    ("scheduler.conf", "system:kube-scheduler"), ("kubelet.conf", "system:node:" + name)):
        print(f"[kubeconfig] Writing \"{f}\" kubeconfig file")
        kd.write("/etc/kubernetes/" + f, kd.kubeconfig(server, ca, user, admin_token), 0o600)
    pods = {
        "etcd": (image_of(images, "etcd"), ["etcd", f"--advertise-client-urls=https://{addr}:2379"]),
        "kube-apiserver": (image_of(images, "kube-apiserver"), [
            "kube-apiserver", f"--advertise-address={addr}", f"--secure-port={port}",
            "--service-cluster-ip-range=%s" % ((cc.get("networking") or {}).get("serviceSubnet") or "10.96.0.0/12")]),
        "kube-controller-manager": (image_of(images, "kube-controller-manager"), [
            "kube-controller-manager", "--cluster-cidr=%s" % ((cc.get("networking") or {}).get("podSubnet") or "")]),
        "kube-scheduler": (image_of(images, "kube-scheduler"), ["kube-scheduler"]),
    }
    for pod, (img, command) in pods.items():
        print(f"[control-plane] Creating static Pod manifest for \"{pod}\"")
        kd.write(f"/etc/kubernetes/manifests/{pod}.yaml", static_pod(pod, img, command), 0o600)
    token = new_token()
    add_token(token)
    state = {"kubernetesVersion": version, "imageRepository": repo, "images": images, "controlPlaneEndpoint": cpe,
             "advertiseAddress": addr, "bindPort": port, "nodeName": name, "criSocket": sock,
             "podSubnet": (cc.get("networking") or {}).get("podSubnet"), "clusterName": cc.get("clusterName"),
             "initialized": kd.now_iso(), "uploadCerts": "upload-certs" in flags}
    kd.write(kd.STATE_DIR + "/cluster.json", json.dumps(state, indent=1), 0o600)
    kubelet_files(cfg.get("KubeletConfiguration") or {}, sock, image_of(images, "pause"), name,
                  extra_args(nr).get("node-ip"))
    print("[kubelet-start] Starting the kubelet")
    restart_kubelet()
    if kd.on_host():
        print("[wait-control-plane] Waiting for the kubelet to boot up the control plane (apiserver double) "
              f"at {server}")
        ok = kd.wait_for(lambda: _healthy(server, ca), timeout=90)
        if not ok:
            kd.die(f"error execution phase wait-control-plane: the apiserver double did not answer on {server}/healthz "
                   "within 90s (see journalctl -u kubelet and /var/log/kubelet-double.log)")
    ca_hash = kd.ca_pubkey_hash(ca)
    print("\nYour Kubernetes control-plane has initialized successfully! (kubeadm TEST DOUBLE)\n")
    print("Then you can join any number of worker nodes by running the following on each as root:\n")
    print(f"kubeadm join {cpe} --token {token} \\\n\t--discovery-token-ca-cert-hash {ca_hash} ")
    kd.record(LOG, {"argv": argv, "command": "init", "result": "ok", "token": token, "caCertHash": ca_hash})


def read_config(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        kd.die(f"error: unable to read config from {path}: {e}")
        raise


def _healthy(server: str, ca: str) -> bool:
    try:
        return kd.api(server, "GET", "/healthz", ca_pem=ca, timeout=3) == "ok"
    except kd.APIError:
        return False


def cmd_token(argv: list, flags: dict, words: list) -> None:
    if words[:2] == ["token", "list"]:
        for t, meta in sorted(kd.load_json(kd.STATE_DIR + "/tokens.json", {}).items()):
            print("{}\t{}".format(t, meta.get("expires")))
        return
    if words[:2] == ["token", "delete"]:
        tokens = kd.load_json(kd.STATE_DIR + "/tokens.json", {})
        for t in words[2:]:
            tid = t.split(".")[0]
            found = [k for k in tokens if k == t or k.split(".")[0] == tid]
            if not found:
                kd.record(LOG, {"argv": argv, "command": "token delete", "token": t, "result": "not found"})
                kd.die(f'error: bootstrap token "{tid}" not found')
            for k in found:
                del tokens[k]
            kd.write(kd.STATE_DIR + "/tokens.json", json.dumps(tokens, indent=1), 0o600)
            kd.record(LOG, {"argv": argv, "command": "token delete", "token": t})
            print(f'bootstrap token "{tid}" deleted')
        return
    if words[:2] != ["token", "create"]:
        kd.die("error: the kubeadm double knows 'token create', 'token delete' and 'token list'")
    st = cluster_state()
    token = words[2] if len(words) > 2 else new_token()
    add_token(token, flags.get("ttl", "24h"))
    kd.record(LOG, {"argv": argv, "command": "token create", "token": token})
    if "print-join-command" in flags:
        ca = kd.read("/etc/kubernetes/pki/ca.crt") or ""
        print("kubeadm join {} --token {} --discovery-token-ca-cert-hash {} ".format(
            st["controlPlaneEndpoint"], token, kd.ca_pubkey_hash(ca)))
    else:
        print(token)


def cmd_upload_certs(argv: list) -> None:
    cluster_state()
    key = secrets.token_hex(32)
    kd.write(kd.STATE_DIR + "/certificate-key", key, 0o600)
    kd.record(LOG, {"argv": argv, "command": "init phase upload-certs", "certificateKey": key})
    print("[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace")
    print("[upload-certs] Using certificate key:")
    print(key)


def cmd_join(argv: list, flags: dict, words: list) -> None:
    if "config" in flags:
        text = read_config(flags["config"])
        kd.record(LOG, {"argv": argv, "command": "join", "config": text})
        jc = validate(text, "join")["JoinConfiguration"]
    else:
        kd.record(LOG, {"argv": argv, "command": "join", "config": None})
        endpoint = words[1] if len(words) > 1 else ""
        jc = {"apiVersion": supported_kubeadm_apis()[0], "kind": "JoinConfiguration",
              "discovery": {"bootstrapToken": {"apiServerEndpoint": endpoint, "token": flags.get("token", ""),
                                               "caCertHashes": [flags.get("discovery-token-ca-cert-hash", "")]}},
              "nodeRegistration": {"criSocket": flags.get("cri-socket", "unix:///var/run/containerd/containerd.sock"),
                                   "name": flags.get("node-name")}}
        if "control-plane" in flags:
            jc["controlPlane"] = {"certificateKey": flags.get("certificate-key")}
        validate(kd_dump(jc), "join")
    if kd.read("/etc/kubernetes/kubelet.conf") is not None:
        kd.die("error execution phase preflight: [ERROR FileAvailable--etc-kubernetes-kubelet.conf]: "
               "/etc/kubernetes/kubelet.conf already exists")
    bt = jc["discovery"]["bootstrapToken"]
    nr = jc.get("nodeRegistration") or {}
    sock = str(nr.get("criSocket") or "unix:///var/run/containerd/containerd.sock")
    preflight(flags, sock, [], flags.get("ignore-preflight-errors", "").lower() == "all")
    server = "https://{}".format(bt["apiServerEndpoint"])
    print(f"[preflight] Reading configuration from the cluster (cluster-info from {server})")
    try:
        info = kd.api(server, "GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info", timeout=10)
    except kd.APIError as e:
        kd.die(f"error execution phase preflight: couldn't validate the identity of the API Server: {e}")
    ca = info["data"]["ca.crt"]
    got = kd.ca_pubkey_hash(ca)
    if not bt.get("unsafeSkipCAVerification") and got not in (bt.get("caCertHashes") or []):
        kd.die("error execution phase preflight: cluster CA found in cluster-info ConfigMap is invalid: none of the "
               f"public keys \"{got}\" are pinned")
    name = str(nr.get("name") or kd.hostname())
    ip = extra_args(nr).get("node-ip")
    cp = jc.get("controlPlane")
    body = {"name": name, "address": ip, "controlPlane": cp is not None,
            "certificateKey": (cp or {}).get("certificateKey")}
    try:
        kd.api(server, "POST", "/api/v1/nodes", body, token=bt["token"], ca_pem=ca)  # verifies TLS with the CA
    except kd.APIError as e:
        kd.die(f"error execution phase kubelet-start: the control plane refused the join: {e}")
    kd.write("/etc/kubernetes/pki/ca.crt", ca)
    kd.write("/etc/kubernetes/kubelet.conf", kd.kubeconfig(server, ca, "system:node:" + name, bt["token"]), 0o600)
    if cp is not None:
        kd.write("/etc/kubernetes/admin.conf", kd.kubeconfig(server, ca, "kubernetes-admin", bt["token"]), 0o600)
    pause = info["data"].get("pauseImage") or next(i for i in kd.KUBEADM_IMAGES if "/pause:" in i)
    kubelet_files({}, sock, pause, name, ip)
    print("[kubelet-start] Starting the kubelet")
    restart_kubelet()
    kd.record(LOG, {"argv": argv, "command": "join", "result": "ok", "server": server, "node": name,
                    "controlPlane": cp is not None})
    print("\nThis node has joined the cluster (kubeadm TEST DOUBLE).")


def kd_dump(doc: dict) -> str:
    """JSON is YAML flow syntax; the parser takes JSON-compatible flow values on one line per key."""
    return "\n".join(f"{k}: {json.dumps(v)}" for k, v in doc.items()) + "\n"


def cmd_reset(argv: list, flags: dict) -> None:
    if "f" not in flags and "force" not in flags and sys.stdin.isatty():
        kd.die("error: the kubeadm double only resets with -f")
    kd.record(LOG, {"argv": argv, "command": "reset"})
    if kd.on_host():
        subprocess.run(["systemctl", "stop", "kubelet"])
    removed = []
    for path in ("/etc/kubernetes/manifests", "/etc/kubernetes/pki", "/var/lib/kubeadm-double",
                 "/var/lib/kube-apiserver-double", "/etc/kubernetes/admin.conf", "/etc/kubernetes/super-admin.conf",
                 "/etc/kubernetes/kubelet.conf", "/etc/kubernetes/controller-manager.conf",
                 "/etc/kubernetes/scheduler.conf", "/etc/kubernetes/bootstrap-kubelet.conf",
                 "/var/lib/kubelet/config.yaml", "/var/lib/kubelet/kubeadm-flags.env"):
        full = kd.p(path)
        if os.path.isdir(full):
            import shutil
            shutil.rmtree(full, ignore_errors=True)
            removed.append(path)
        elif os.path.exists(full):
            os.unlink(full)
            removed.append(path)
    print("[reset] Deleted contents of: {} (kubeadm TEST DOUBLE)".format(" ".join(removed)))


def cmd_images(argv: list, flags: dict) -> None:
    version = flags.get("kubernetes-version", "v" + kd.KUBE_VERSION)
    repo = flags.get("image-repository", "registry.k8s.io")
    if "config" in flags:
        text = read_config(flags["config"])
        cc = validate(text, "init").get("ClusterConfiguration", {})
        version = str(cc.get("kubernetesVersion") or version)
        repo = str(cc.get("imageRepository") or repo)
    kd.record(LOG, {"argv": argv, "command": "config images list"})
    for i in images_for(repo, version):
        print(i)


# --------------------------------------------------------------------------------------- upgrade
UPGRADE_FAULT = "/etc/airgap-e2e/fail-upgrade-node"  # the e2e tests' injected fault: `upgrade node` fails here


def _cluster_version_from_api() -> "tuple[str, dict]":
    """(kubernetesVersion, ClusterConfiguration) as the cluster says (the apiserver double's kubeadm-config)."""
    for conf in ("/etc/kubernetes/admin.conf", "/etc/kubernetes/kubelet.conf"):
        if kd.read(conf) is None:
            continue
        server, ca, token = kd.read_kubeconfig(conf)
        try:
            cm = kd.api(server, "GET", "/api/v1/namespaces/kube-system/configmaps/kubeadm-config", token=token,
                        ca_pem=ca)
        except kd.APIError as e:
            kd.die(f"error: unable to fetch the kubeadm-config ConfigMap: {e}")
        cfg = kd.parse_yaml(cm["data"]["ClusterConfiguration"])[0]
        return str(cfg["kubernetesVersion"]), cfg
    kd.die("error: no /etc/kubernetes/admin.conf or kubelet.conf: this node is not part of a kubeadm cluster")
    raise SystemExit(1)


def _upgrade_target(words: list, current: str) -> str:
    target = words[2] if len(words) > 2 else "v" + kd.KUBE_VERSION
    try:
        want, have, now = version_tuple(target), version_tuple(kd.KUBE_VERSION), version_tuple(current)
    except ValueError:
        kd.die(f"error: {target!r} is not a version")
        raise
    if want > have:
        kd.die(f"error: [upgrade/version] FATAL: the version {target} is newer than this kubeadm v{kd.KUBE_VERSION}: "
               "upgrade kubeadm first")
    if want < now:
        kd.die(f"error: [upgrade/version] FATAL: {target} is older than the cluster's {current} (downgrade)")
    if want[:2] > (now[0], now[1] + 1):
        kd.die(f"error: [upgrade/version] FATAL: specified version to upgrade to {target} is at least one minor "
               f"release higher than the kubeadm minor release ({now[0]}.{now[1]}): a skip is not supported")
    return "v" + ".".join(map(str, want))


def cmd_upgrade(argv: list, flags: dict, words: list) -> None:
    """upgrade plan [vX] | upgrade apply vX [--yes] | upgrade node: kubeadm's upgrade, on the double's state (the
    ClusterConfiguration version and static pod image tags the apiserver double reports)."""
    sub = words[1] if len(words) > 1 else ""
    ignore = flags.get("ignore-preflight-errors", "")
    if sub == "node":
        version, _ = _cluster_version_from_api()
        fault = kd.read(UPGRADE_FAULT) is not None
        kd.record(LOG, {"argv": argv, "command": "upgrade node", "clusterVersion": version,
                        "kubeadmVersion": "v" + kd.KUBE_VERSION, "fault": fault})
        if fault:
            kd.die(f"error execution phase control-plane: injected upgrade failure ({UPGRADE_FAULT} exists)")
        if version_tuple(version) > version_tuple(kd.KUBE_VERSION):
            kd.die(f"error: the cluster is at {version}, newer than this kubeadm v{kd.KUBE_VERSION}")
        st = kd.load_json(kd.STATE_DIR + "/cluster.json", None)
        if st and kd.read("/etc/kubernetes/manifests/kube-apiserver.yaml") is not None:
            _static_pods_to(st, version)
        print(f"[upgrade] The configuration for this node was successfully updated to {version} (kubeadm TEST DOUBLE)")
        return
    st = cluster_state()
    current = str(st["kubernetesVersion"])
    if sub == "plan":
        target = _upgrade_target(words, current)
        kd.record(LOG, {"argv": argv, "command": "upgrade plan", "from": current, "to": target})
        print(f"Upgrade to the latest version in the v{kd.KUBE_VERSION} series:\n\nCOMPONENT  CURRENT  TARGET\n"
              f"kube-apiserver  {current}  {target}\n\nYou can now apply the upgrade by executing: kubeadm upgrade "
              f"apply {target}")
        return
    if sub != "apply":
        kd.die("error: the kubeadm double knows upgrade plan, upgrade apply vX and upgrade node")
    kd.record(LOG, {"argv": argv, "command": "upgrade apply", "from": current, "ignorePreflightErrors": ignore})
    if ignore.lower() == "all":
        kd.die("error: the kubeadm TEST DOUBLE refuses --ignore-preflight-errors=all for an upgrade")
    target = _upgrade_target(words, current)
    if "yes" not in flags and "y" not in flags and "f" not in flags and "force" not in flags:
        kd.die("error: [upgrade/confirm] not confirmed: pass --yes")
    print(f"[upgrade/version] You have chosen to change the cluster version to \"{target}\"")
    st["kubernetesVersion"] = target
    st["images"] = images_for(st.get("imageRepository") or "registry.k8s.io", target)
    st["upgraded"] = kd.now_iso()
    kd.write(kd.STATE_DIR + "/cluster.json", json.dumps(st, indent=1), 0o600)
    _static_pods_to(st, target)
    kd.record(LOG, {"argv": argv, "command": "upgrade apply", "from": current, "to": target, "result": "ok"})
    print(f"[upgrade/successful] SUCCESS! Your cluster was upgraded to \"{target}\". Enjoy! (kubeadm TEST DOUBLE)")


def _static_pods_to(st: dict, version: str) -> None:
    """The control-plane static pod manifests' image tags moved to `version` (the commands are kept)."""
    repo = st.get("imageRepository") or "registry.k8s.io"
    for pod in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        path = f"/etc/kubernetes/manifests/{pod}.yaml"
        text = kd.read(path)
        if text is not None:
            kd.write(path, re.sub(r"(?m)^(\s*image: ).*$", lambda m, ref=f"{repo}/{pod}:{version}": m.group(1) + ref,
                                    text),
                     0o600)


# --------------------------------------------------------------------------------------- certs
# kubeadm's certificates (name, file under /etc/kubernetes/pki or a kubeconfig, CA) in check-expiration's order
CERTS = [("admin.conf", "../admin.conf", "ca"), ("apiserver", "apiserver.crt", "ca"),
         ("apiserver-etcd-client", "apiserver-etcd-client.crt", "etcd-ca"),
         ("apiserver-kubelet-client", "apiserver-kubelet-client.crt", "ca"),
         ("controller-manager.conf", "../controller-manager.conf", "ca"),
         ("etcd-healthcheck-client", "etcd/healthcheck-client.crt", "etcd-ca"),
         ("etcd-peer", "etcd/peer.crt", "etcd-ca"), ("etcd-server", "etcd/server.crt", "etcd-ca"),
         ("front-proxy-client", "front-proxy-client.crt", "front-proxy-ca"),
         ("scheduler.conf", "../scheduler.conf", "ca"), ("super-admin.conf", "../super-admin.conf", "ca")]
CAS = [("ca", "ca.crt"), ("etcd-ca", "etcd/ca.crt"), ("front-proxy-ca", "front-proxy-ca.crt")]


def _enddate(path: str) -> "float | None":
    """notAfter of a real certificate file (epoch), None when the file is absent or not a certificate."""
    import datetime
    if not os.path.exists(path):
        return None
    try:
        out = kd.openssl(["x509", "-enddate", "-noout", "-in", path]).decode()
    except RuntimeError:
        return None
    m = re.search(r"notAfter=(.*) GMT", out)
    return datetime.datetime.strptime(" ".join(m.group(1).split()), "%b %d %H:%M:%S %Y").replace(
        tzinfo=datetime.timezone.utc).timestamp() if m else None


def _expiry(name: str, rel: str) -> float:
    """A certificate file's real end date; the double's token kubeconfigs and the certificates it does not write
    (etcd, front-proxy) count as issued, for 365 days, when admin.conf was last written (init or renew)."""
    pki = kd.p("/etc/kubernetes/pki")
    real = None if rel.startswith("..") else _enddate(os.path.join(pki, rel))
    if real is not None:
        return real
    admin = kd.p("/etc/kubernetes/admin.conf")
    return os.stat(admin).st_mtime + 365 * 86400


def _residual(end: float, now: float) -> str:
    left = end - now
    if left <= 0:
        return "<invalid>"
    days = int(left // 86400)
    return f"{days // 365}y" if days >= 365 * 2 else f"{days}d"


def cmd_certs(argv: list, flags: dict, words: list) -> None:
    """certs check-expiration (kubeadm's table, real dates) | certs renew all|NAME (re-issues the certificate
    files under /etc/kubernetes/pki with their CA, rewrites the kubeconfigs)."""
    import datetime
    if kd.read("/etc/kubernetes/admin.conf") is None or kd.read("/etc/kubernetes/pki/ca.crt") is None:
        kd.record(LOG, {"argv": argv, "command": "certs " + " ".join(words[1:2]), "result": "not a control plane"})
        kd.die("error execution phase: couldn't create a Kubernetes client from file \"/etc/kubernetes/admin.conf\": "
               "open /etc/kubernetes/admin.conf: no such file or directory")
    pki = kd.p("/etc/kubernetes/pki")

    def fmt(ts: float) -> str:
        return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%b %d, %Y %H:%M UTC")
    if words[1:2] == ["check-expiration"]:
        now = time.time()
        # read-only, so (like `token list`) not recorded: plan upgrade, doctor and certs check must leave the
        # doubles' logs unchanged
        print("[check-expiration] Reading configuration from the cluster...")
        print("[check-expiration] FYI: You can look at this config file with 'kubectl -n kube-system get cm "
              "kubeadm-config -o yaml'\n")
        print("CERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   "
              "EXTERNALLY MANAGED")
        for name, rel, ca in CERTS:
            end = _expiry(name, rel)
            print(f"{name:<27}{fmt(end):<25}{_residual(end, now):<16}{ca:<24}no      ")
        print("\nCERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED")
        for name, rel in CAS:
            end = _enddate(os.path.join(pki, rel)) or _enddate(os.path.join(pki, "ca.crt"))
            print(f"{name:<24}{fmt(end):<25}{_residual(end, now):<16}no      ")
        return
    if words[1:2] != ["renew"] or len(words) < 3:
        kd.die("error: the kubeadm double knows 'certs check-expiration' and 'certs renew all|NAME'")
    which = words[2]
    renewed = []
    for name, rel, ca in CERTS:
        if which not in ("all", name):
            continue
        if rel.startswith(".."):
            path = kd.p("/etc/kubernetes/" + rel[3:])
            if os.path.exists(path):
                os.utime(path)  # token kubeconfigs: "re-issued" now (their expiry follows admin.conf's time)
                renewed.append(name)
            continue
        crt = os.path.join(pki, rel)
        key = crt[:-4] + ".key"
        ca_crt = os.path.join(pki, "etcd/ca.crt" if ca == "etcd-ca" else "ca.crt")
        ca_key = ca_crt[:-4] + ".key"
        if not (os.path.exists(crt) and os.path.exists(key) and os.path.exists(ca_key)):
            continue
        csr, ext = crt[:-4] + ".renew.csr", crt[:-4] + ".ext"
        kd.openssl(["req", "-new", "-key", key, "-out", csr, "-subj",
                    "/CN=" + ("kube-apiserver" if name == "apiserver" else name)])
        args = ["x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-days", "365",
                "-sha256", "-out", crt + ".new"]
        kd.openssl(args + (["-extfile", ext] if os.path.exists(ext) else []))
        os.replace(crt + ".new", crt)
        os.unlink(csr)
        renewed.append(name)
    kd.record(LOG, {"argv": argv, "command": "certs renew", "which": which, "renewed": renewed})
    for name in renewed:
        print(f"[renew] certificate {name} renewed (kubeadm TEST DOUBLE)")
    print("\nDone renewing certificates. You must restart the kube-apiserver, kube-controller-manager, "
          "kube-scheduler and etcd, so that they can use the new certificates.")


def main(argv: list) -> None:
    flags = kd.flags_of(argv)
    words = flags[""].split()
    if not words or "help" in flags or "h" in flags or words[0] == "help":
        print(HELP)
        return
    if words[0] == "version":
        kd.record(LOG, {"argv": argv, "command": "version"})
        print("v" + kd.KUBE_VERSION if flags.get("o") == "short" or flags.get("output") == "short" else
              f'kubeadm version: &version.Info{{Major:"1", GitVersion:"v{kd.KUBE_VERSION}", Compiler:"test-double"}}')
    elif words[:3] == ["init", "phase", "upload-certs"]:
        cmd_upload_certs(argv)
    elif words[0] == "init":
        cmd_init(argv, flags)
    elif words[0] == "join":
        cmd_join(argv, flags, words)
    elif words[0] == "token":
        cmd_token(argv, flags, words)
    elif words[0] == "reset":
        cmd_reset(argv, flags)
    elif words[0] == "upgrade":
        cmd_upgrade(argv, flags, words)
    elif words[0] == "certs":
        cmd_certs(argv, flags, words)
    elif words[:3] == ["config", "images", "list"]:
        cmd_images(argv, flags)
    else:
        kd.record(LOG, {"argv": argv, "command": "unsupported"})
        kd.die("error: the kubeadm TEST DOUBLE does not implement {!r}\n{}".format(" ".join(words), HELP), 1)


if __name__ == "__main__":
    main(sys.argv[1:])
