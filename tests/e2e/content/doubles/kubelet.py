#!/usr/bin/python3
# TEST DOUBLE of kubelet for the airgap-bundler e2e rig -- NOT the real kubelet.
#
# Runs as kubelet.service (the unit and 10-kubeadm.conf drop-in of the real RPM). Records its flags
# in /var/log/kubelet-double.log, fails like kubelet before `kubeadm init/join` (no
# /var/lib/kubelet/config.yaml -> exit 1, systemd restarts it), then stays up and:
#   * on a control plane (a static pod manifest /etc/kubernetes/manifests/kube-apiserver.yaml):
#     serves the APISERVER DOUBLE on https://<advertise-address>:<secure-port> (state in
#     /var/lib/kube-apiserver-double/state.json), as the real kubelet would run the apiserver pod;
#   * everywhere: registers and heartbeats its node every few seconds, and pulls (crictl -> ctr ->
#     containerd, through the registry mirror config in /etc/containerd/certs.d) the images of the
#     pods the apiserver double assigns to this node. A pod is "Running" once its images are here.
import hashlib
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_here = os.path.dirname(os.path.realpath(__file__))
sys.path[:0] = [_here, os.path.join(_here, "..", "lib", "airgap-e2e"), "/usr/lib/airgap-e2e"]
import kubedouble as kd  # noqa: E402

LOG = "kubelet-double.log"
HEARTBEAT = float(os.environ.get("KUBELET_DOUBLE_HEARTBEAT", "5"))
STALE = 40.0
KNOWN_FLAGS = {"bootstrap-kubeconfig", "kubeconfig", "config", "container-runtime-endpoint",
               "pod-infra-container-image", "node-ip", "hostname-override", "cgroup-driver", "v",
               "node-labels", "register-with-taints", "runtime-request-timeout", "fail-swap-on", "help", "h",
               "version"}
HELP = (f"kubelet -- {kd.DOUBLE_BANNER} (version v{kd.KUBE_VERSION}): records its flags, serves the apiserver "
        "double on control planes, heartbeats its node and pulls the images of its pods. It runs no containers.")


def normalize(ref: str) -> str:
    """docker.io/library/... spelling of an image reference, as containerd names images."""
    ref = ref.split("@", 1)[0] if "@" in ref and ":" in ref.split("@", 1)[0].rsplit("/", 1)[-1] else ref
    first = ref.split("/", 1)[0]
    if "/" not in ref or ("." not in first and ":" not in first and first != "localhost"):
        ref = "docker.io/" + ("library/" + ref if "/" not in ref else ref)
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last:
        ref += ":latest"
    return ref


# ======================================================================================= apiserver double
class ApiState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data = kd.load_json(kd.APISERVER_STATE, None) or {"nodes": {}, "objects": [], "nodeTokens": {}}

    def save(self) -> None:
        kd.write(kd.APISERVER_STATE, json.dumps(self.data, indent=1, sort_keys=True), 0o600)

    def tokens(self) -> "dict[str, str]":
        out = {}
        admin = (kd.read(kd.ADMIN_TOKEN_FILE) or "").strip()
        if admin:
            out[admin] = "admin"
        for t, meta in (kd.load_json(kd.STATE_DIR + "/tokens.json", {}) or {}).items():
            if not meta.get("expires") or meta["expires"] > time.time():
                out[t] = "bootstrap"
        for node, t in self.data["nodeTokens"].items():
            out.setdefault(t, "node:" + node)
        return out

    def etcd_members(self) -> "dict[str, int]":
        """Stacked etcd: one member per control-plane node that joined (or inited), until removed."""
        gone = set(self.data.get("etcdRemoved") or [])
        return {name: int(hashlib.sha256(name.encode()).hexdigest()[:15], 16)
                for name, n in sorted(self.data["nodes"].items()) if n.get("controlPlane") and name not in gone}

    def cluster(self) -> dict:
        return kd.load_json(kd.STATE_DIR + "/cluster.json", {}) or {}

    # --- views
    def node_ready(self, n: dict) -> "tuple[bool, str]":
        if time.time() - n.get("heartbeat", 0) > STALE:
            return False, "NodeStatusUnknown: kubelet stopped posting node status"
        if not self.cni_applied():
            return False, "NetworkPluginNotReady: container runtime network not ready: cni config uninitialized"
        return True, "KubeletReady: kubelet is posting ready status"

    def cni_applied(self) -> bool:
        return any(o["kind"] == "DaemonSet" and o["namespace"] == "kube-system" and o["name"] not in ("kube-proxy",)
                   for o in self.data["objects"])

    def nodes_json(self) -> dict:
        items = []
        for name, n in sorted(self.data["nodes"].items()):
            ready, why = self.node_ready(n)
            reason, _, msg = why.partition(": ")
            labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
            if n.get("controlPlane"):
                labels["node-role.kubernetes.io/control-plane"] = ""
            items.append({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": labels, "creationTimestamp": n.get("registered"),
                             "annotations": dict(n.get("annotations") or {})},
                "spec": {"unschedulable": bool(n.get("unschedulable"))},
                "status": {
                    "addresses": [{"type": "InternalIP", "address": n.get("address") or ""},
                                  {"type": "Hostname", "address": name}],
                    "conditions": [{"type": "Ready", "status": "True" if ready else "False", "reason": reason,
                                    "message": msg, "lastHeartbeatTime": n.get("heartbeatTime")}],
                    "nodeInfo": {"kubeletVersion": n.get("kubeletVersion", "v" + kd.KUBE_VERSION),
                                 "containerRuntimeVersion": n.get("runtime", "")},
                    "images": [{"names": [i]} for i in n.get("images", [])],
                }})
        return {"apiVersion": "v1", "kind": "NodeList", "items": items}

    def pods(self) -> list:
        """(namespace, name, node, images, owner) of every pod the cluster would have."""
        c = self.cluster()
        imgs = c.get("images") or []
        nodes = sorted(self.data["nodes"].items(), key=lambda kv: (not kv[1].get("controlPlane"), kv[0]))
        out = []

        def img(name: str) -> str:
            return next((i for i in imgs if i.rsplit(":", 1)[0].endswith("/" + name)), "")

        for node, n in nodes:
            if n.get("controlPlane"):
                for comp in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
                    out.append(("kube-system", f"{comp}-{node}", node, [img(comp)], "Node"))
            out.append(("kube-system", f"kube-proxy-{_suffix(node)}", node, [img("kube-proxy")], "DaemonSet"))
        if nodes and self.cni_applied():
            first = nodes[0][0]
            for i in range(2):
                out.append(("kube-system", f"coredns-{i}", first, [img("coredns")], "ReplicaSet"))
        for o in self.data["objects"]:
            if o["kind"] == "DaemonSet":
                for node, _ in nodes:
                    out.append((o["namespace"], f"{o['name']}-{_suffix(node)}", node, o["images"], "DaemonSet"))
            elif o["kind"] in ("Deployment", "StatefulSet") and nodes:
                for i in range(int(o.get("replicas") or 1)):
                    out.append((o["namespace"], f"{o['name']}-{i}", nodes[0][0], o["images"], "ReplicaSet"))
        return out

    def pod_labels(self, ns: str, pod: str) -> dict:
        """The pod template labels of the workload a pod belongs to (its name is the workload's plus -N)."""
        for o in self.data["objects"]:
            if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet") and o["namespace"] == ns \
                    and pod.startswith(o["name"] + "-"):
                return dict(o.get("labels") or {})
        return {}

    def client_urls(self, member: str) -> list:
        """An etcd member's client URL: its node's InternalIP, port 2379 (kubeadm's stacked etcd)."""
        ip = (self.data["nodes"].get(member) or {}).get("address")
        return [f"https://{ip or member}:2379"]

    def pods_json(self, namespace: "str | None", node: "str | None") -> dict:
        items = []
        for ns, name, on, images, owner in self.pods():
            if (namespace and ns != namespace) or (node and on != node):
                continue
            n = self.data["nodes"].get(on, {})
            have = set(n.get("images", []))
            errors = n.get("pullErrors", {})
            statuses = []
            phase = "Running"
            for i in images:
                if normalize(i) in have:
                    statuses.append({"name": i.rsplit("/", 1)[-1].split(":")[0], "image": i, "ready": True,
                                     "state": {"running": {"startedAt": n.get("heartbeatTime")}}})
                else:
                    phase = "Pending"
                    reason = "ErrImagePull" if normalize(i) in errors else "ContainerCreating"
                    statuses.append({"name": i.rsplit("/", 1)[-1].split(":")[0], "image": i, "ready": False,
                                     "state": {"waiting": {"reason": reason, "message": errors.get(normalize(i), "")}}})
            if time.time() - n.get("heartbeat", 0) > STALE:
                phase = "Unknown" if phase == "Running" else phase
            items.append({"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"name": name, "namespace": ns, "ownerReferences": [{"kind": owner}],
                                       "labels": self.pod_labels(ns, name)},
                          "spec": {"nodeName": on, "containers": [{"name": s["name"], "image": s["image"]}
                                                                  for s in statuses]},
                          "status": {"phase": phase, "containerStatuses": statuses}})
        return {"apiVersion": "v1", "kind": "PodList", "items": items}


def _suffix(node: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", node.lower())


class Handler(BaseHTTPRequestHandler):
    state: ApiState

    def log_message(self, fmt: str, *args: object) -> None:
        pass

    def _send(self, code: int, obj: object) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _who(self) -> "str | None":
        auth = self.headers.get("Authorization", "")
        return self.state.tokens().get(auth[7:].strip()) if auth.startswith("Bearer ") else None

    def _body(self) -> dict:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n).decode() or "{}") if n else {}

    def do_GET(self) -> None:  # noqa: N802
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        if u.path in ("/healthz", "/livez", "/readyz"):
            return self._send(200, "ok")
        if u.path == "/version":  # the control plane's version: kubeadm init/upgrade apply set it, not the kubelet
            version = self.state.cluster().get("kubernetesVersion") or "v" + kd.KUBE_VERSION
            return self._send(200, {"gitVersion": version, "platform": "linux/amd64", "note": kd.DOUBLE_BANNER})
        if u.path == "/api/v1/namespaces/kube-public/configmaps/cluster-info":
            ca = kd.read("/etc/kubernetes/pki/ca.crt") or ""
            images = self.state.cluster().get("images") or []
            pause = next((i for i in images if i.rsplit(":", 1)[0].endswith("/pause")), "")
            # real kubeadm join reads the kubeadm-config ConfigMap for this; the double serves it here
            return self._send(200, {"kind": "ConfigMap", "data": {"ca.crt": ca, "pauseImage": pause}})
        who = self._who()
        if who is None:
            return self._send(401, {"kind": "Status", "message": "Unauthorized"})
        with self.state.lock:
            if u.path == "/api/v1/nodes":
                return self._send(200, self.state.nodes_json())
            if u.path == "/apis/policy/v1/poddisruptionbudgets":
                # the double does not count pods: an applied budget allows no disruption (what blocks a drain)
                items = [{"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                          "metadata": {"name": o["name"], "namespace": o["namespace"]},
                          "spec": {"selector": o["selector"]} if "selector" in o else {},
                          "status": {"disruptionsAllowed": 0, "expectedPods": 1}}
                         for o in self.state.data["objects"] if o["kind"] == "PodDisruptionBudget"]
                return self._send(200, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudgetList", "items": items})
            if u.path == "/api/v1/namespaces/kube-system/configmaps/kubeadm-config":
                c = self.state.cluster()
                text = "".join(f"{k}: {c[k]}\n" for k in ("kubernetesVersion", "imageRepository",
                                                           "controlPlaneEndpoint") if c.get(k))
                return self._send(200, {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
                                        "data": {"ClusterConfiguration": "apiVersion: kubeadm.k8s.io/v1beta3\n"
                                                                         "kind: ClusterConfiguration\n" + text}})
            if u.path == "/etcd/members":
                members = self.state.etcd_members()
                return self._send(200, {"members": [{"name": k, "ID": v, "clientURLs": self.state.client_urls(k)}
                                                for k, v in members.items()]})
            m = re.match(r"^/api/v1(?:/namespaces/([^/]+))?/pods$", u.path)
            if m:
                return self._send(200, self.state.pods_json(m.group(1), (q.get("nodeName") or [None])[0]))
        return self._send(404, {"kind": "Status", "message": f"the apiserver double has no {u.path}"})

    def do_DELETE(self) -> None:  # noqa: N802
        u = urlsplit(self.path)
        if self._who() != "admin":
            return self._send(401 if self._who() is None else 403, {"kind": "Status", "message": "forbidden"})
        m = re.match(r"^/api/v1/nodes/([^/]+)$", u.path)
        if not m:
            return self._send(404, {"kind": "Status", "message": f"the apiserver double has no DELETE {u.path}"})
        with self.state.lock:
            if self.state.data["nodes"].pop(m.group(1), None) is None:
                return self._send(404, {"kind": "Status", "message": f'nodes "{m.group(1)}" not found'})
            self.state.data["nodeTokens"].pop(m.group(1), None)
            self.state.save()
        kd.record("kube-apiserver-double.log", {"event": "node deleted", "node": m.group(1)})
        return self._send(200, {"kind": "Status", "status": "Success"})

    def do_POST(self) -> None:  # noqa: N802
        u = urlsplit(self.path)
        who = self._who()
        if who is None:
            return self._send(401, {"kind": "Status", "message": "Unauthorized: unknown or expired token"})
        body = self._body()
        st = self.state
        with st.lock:
            if u.path == "/api/v1/nodes":
                name = body["name"]
                n = st.data["nodes"].setdefault(name, {})
                n.update(address=body.get("address"), controlPlane=bool(body.get("controlPlane")),
                         registered=n.get("registered") or kd.now_iso())
                if who == "bootstrap":
                    token = self.headers["Authorization"][7:].strip()
                    st.data["nodeTokens"][name] = token
                    if body.get("controlPlane"):
                        key = (kd.read(kd.STATE_DIR + "/certificate-key") or "").strip()
                        if not key or body.get("certificateKey") != key:
                            return self._send(403, {"kind": "Status", "message": "certificate key does not match "
                                                    "the uploaded kubeadm-certs"})
                st.save()
                kd.record("kube-apiserver-double.log", {"event": "node registered", "node": name, "by": who})
                return self._send(201, {"kind": "Node", "metadata": {"name": name}})
            m = re.match(r"^/api/v1/nodes/([^/]+)/status$", u.path)
            if m:
                n = st.data["nodes"].setdefault(m.group(1), {"registered": kd.now_iso()})
                n.update(heartbeat=time.time(), heartbeatTime=kd.now_iso(), images=body.get("images", []),
                         pullErrors=body.get("pullErrors", {}), kubeletVersion=body.get("kubeletVersion"),
                         runtime=body.get("runtime", ""))
                if body.get("address") and not n.get("address"):
                    n["address"] = body["address"]
                if body.get("controlPlane"):
                    n["controlPlane"] = True
                st.save()
                return self._send(200, {"kind": "Node"})
            m = re.match(r"^/api/v1/nodes/([^/]+)/(cordon|drain)$", u.path)
            if m:  # the double's stand-ins for kubectl cordon (PATCH spec.unschedulable) and drain (evictions)
                if who != "admin":
                    return self._send(403, {"kind": "Status", "message": "forbidden"})
                n = st.data["nodes"].get(m.group(1))
                if n is None:
                    return self._send(404, {"kind": "Status", "message": f'nodes "{m.group(1)}" not found'})
                n["unschedulable"] = True
                if m.group(2) == "drain":
                    n["drained"] = kd.now_iso()
                st.save()
                kd.record("kube-apiserver-double.log", {"event": m.group(2), "node": m.group(1)})
                return self._send(200, {"kind": "Node"})
            m = re.match(r"^/api/v1/nodes/([^/]+)/(uncordon|annotate)$", u.path)
            if m:  # kubectl uncordon (spec.unschedulable false) and annotate (set {k: v}, remove [k])
                if who != "admin":
                    return self._send(403, {"kind": "Status", "message": "forbidden"})
                n = st.data["nodes"].get(m.group(1))
                if n is None:
                    return self._send(404, {"kind": "Status", "message": f'nodes "{m.group(1)}" not found'})
                if m.group(2) == "uncordon":
                    n["unschedulable"] = False
                else:
                    ann = n.setdefault("annotations", {})
                    ann.update(body.get("set") or {})
                    for k in body.get("remove") or []:
                        ann.pop(k, None)
                st.save()
                kd.record("kube-apiserver-double.log", {"event": m.group(2), "node": m.group(1), "body": body})
                return self._send(200, {"kind": "Node"})
            m = re.match(r"^/etcd/members/([0-9a-f]+)/remove$", u.path)
            if m:
                if who != "admin":
                    return self._send(403, {"kind": "Status", "message": "forbidden"})
                members = st.etcd_members()
                name = next((k for k, v in members.items() if f"{v:x}" == m.group(1)), None)
                if name is None:
                    return self._send(404, {"kind": "Status", "message": f"etcdserver: member not found {m.group(1)}"})
                st.data.setdefault("etcdRemoved", []).append(name)
                st.save()
                kd.record("kube-apiserver-double.log", {"event": "etcd member remove", "member": name})
                return self._send(200, {"removed": name})
            if u.path == "/apply":
                if who != "admin":
                    return self._send(403, {"kind": "Status", "message": "forbidden"})
                results = []
                for o in body.get("objects", []):
                    key = (o["kind"], o["namespace"], o["name"])
                    old = [x for x in st.data["objects"] if (x["kind"], x["namespace"], x["name"]) == key]
                    st.data["objects"] = [x for x in st.data["objects"] if x not in old] + [o]
                    results.append("configured" if old else "created")
                st.save()
                kd.record("kube-apiserver-double.log", {"event": "apply", "objects": body.get("objects", [])})
                return self._send(200, {"results": results})
        return self._send(404, {"kind": "Status", "message": f"the apiserver double has no {u.path}"})


def serve_apiserver(manifest: str) -> "ThreadingHTTPServer | None":
    args = dict(re.findall(r"--([a-z-]+)=(\S+)", manifest))
    addr, port = args.get("advertise-address", "0.0.0.0"), int(args.get("secure-port", kd.API_PORT))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(kd.p("/etc/kubernetes/pki/apiserver.crt"), kd.p("/etc/kubernetes/pki/apiserver.key"))
    Handler.state = ApiState()
    try:
        srv = ThreadingHTTPServer((addr, port), Handler)
    except OSError:
        srv = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    kd.record(LOG, {"event": "apiserver double serving", "address": addr, "port": port})
    return srv


# ======================================================================================= node agent
def crictl_images() -> "list[str]":
    try:
        r = subprocess.run(["crictl", "images", "-o", "json"], capture_output=True)
    except OSError:
        return []
    if r.returncode != 0:
        return []
    try:
        imgs = json.loads(r.stdout.decode()).get("images", [])
    except ValueError:
        return []
    return sorted({normalize(t) for i in imgs for t in (i.get("repoTags") or [])})


def node_loop(flags: dict, name: str, stop: threading.Event) -> None:
    kubeconfig = flags.get("kubeconfig", "/etc/kubernetes/kubelet.conf")
    pull_errors: dict = {}
    attempted: dict = {}
    checked = False
    while not stop.is_set():
        try:
            server, ca, token = kd.read_kubeconfig(kubeconfig)
            if not checked:  # once per start: a kubelet newer than the API server is a version skew violation
                api = str(kd.api(server, "GET", "/version", token=token, ca_pem=ca).get("gitVersion"))
                mine = "v" + kd.KUBE_VERSION
                skew = tuple(map(int, mine[1:].split("."))) > tuple(map(int, api.lstrip("v").split(".")[:3]))
                kd.record(LOG, {"event": "version check", "kubelet": mine, "apiserver": api, "skew": skew})
                if skew:
                    kd.record(LOG, {"event": "skew violation", "kubelet": mine, "apiserver": api})
                checked = True
            have = crictl_images()
            kd.api(server, "POST", f"/api/v1/nodes/{name}/status",
                   {"images": have, "pullErrors": pull_errors, "kubeletVersion": "v" + kd.KUBE_VERSION,
                    "address": flags.get("node-ip"), "runtime": flags.get("container-runtime-endpoint", ""),
                    "controlPlane": kd.read("/etc/kubernetes/manifests/kube-apiserver.yaml") is not None},
                   token=token, ca_pem=ca)
            pods = kd.api(server, "GET", f"/api/v1/pods?nodeName={name}", token=token, ca_pem=ca)
            wanted = [c["image"] for p in pods.get("items", []) for c in p["spec"]["containers"] if c["image"]]
            pause = flags.get("pod-infra-container-image")
            if pause and wanted:
                wanted.insert(0, pause)
            for img in dict.fromkeys(wanted):
                if normalize(img) in have or time.time() - attempted.get(img, 0) < 15:
                    continue
                attempted[img] = time.time()
                try:
                    r = subprocess.run(["crictl", "pull", img], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                    rc, out = r.returncode, r.stdout.decode(errors="replace").strip()
                except OSError as e:
                    rc, out = 127, str(e)
                kd.record(LOG, {"event": "pull", "image": img, "ok": rc == 0, "output": out[-2000:]})
                if rc == 0:
                    pull_errors.pop(normalize(img), None)
                else:
                    pull_errors[normalize(img)] = out[-500:]
        except (RuntimeError, kd.APIError, KeyError, ValueError, OSError) as e:
            kd.record(LOG, {"event": "node loop", "error": str(e)})
        stop.wait(HEARTBEAT)


def main(argv: list) -> None:
    flags = kd.flags_of(argv)
    if "help" in flags or "h" in flags:
        print(HELP)
        return
    if "version" in flags:
        print(f"Kubernetes v{kd.KUBE_VERSION} (kubelet TEST DOUBLE)")
        return
    kd.record(LOG, {"event": "start", "argv": argv,
                    "env": {k: v for k, v in os.environ.items() if k.startswith("KUBELET_")}})
    unknown = sorted(k for k in flags if k and k not in KNOWN_FLAGS)
    if unknown or flags[""]:
        kd.die("E kubelet double: unknown flag(s) or arguments: {}".format(" ".join(unknown + [flags[""]]).strip()))
    cfg_path = flags.get("config", "/var/lib/kubelet/config.yaml")
    text = kd.read(cfg_path)
    if text is None:
        kd.record(LOG, {"event": "exit", "reason": "no config (kubeadm init/join has not run)"})
        kd.die(f'E "command failed" err="failed to load kubelet config file, path: {cfg_path}, error: open '
               f'{cfg_path}: no such file or directory" (kubelet TEST DOUBLE)')
    try:
        cfg = kd.parse_yaml(text)[0] or {}
    except kd.YAMLError as e:
        kd.die(f"E kubelet double: bad config {cfg_path}: {e}")
    sock = flags.get("container-runtime-endpoint") or cfg.get("containerRuntimeEndpoint") or ""
    if not sock.startswith("unix://"):
        kd.die(f"E kubelet double: --container-runtime-endpoint {sock!r} is not a unix:// socket")
    if not kd.wait_for(lambda: os.path.exists(kd.p(sock[7:])), timeout=30):
        kd.record(LOG, {"event": "exit", "reason": f"no CRI socket {sock}"})
        kd.die(f"E kubelet double: container runtime socket {sock} does not exist")
    ctd = kd.read("/etc/containerd/config.toml") or ""
    if cfg.get("cgroupDriver") == "systemd" and "SystemdCgroup = true" not in ctd and "containerd" in sock:
        kd.record(LOG, {"event": "warning", "message": "cgroupDriver systemd but containerd has no SystemdCgroup"})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    manifest = kd.read("/etc/kubernetes/manifests/kube-apiserver.yaml")
    if manifest is not None:
        serve_apiserver(manifest)
    name = flags.get("hostname-override") or kd.hostname()
    kd.record(LOG, {"event": "running", "node": name, "config": cfg})
    node_loop(flags, name, stop)
    kd.record(LOG, {"event": "stopped"})


if __name__ == "__main__":
    main(sys.argv[1:])
