#!/usr/bin/python3
# TEST DOUBLE of kubectl for the airgap-bundler e2e rig -- NOT the real kubectl.
#
# Talks to the apiserver double (server, CA and token from the kubeconfig: --kubeconfig, $KUBECONFIG
# or ~/.kube/config) and answers what the installer asks: `apply -f FILE`, `get nodes [-o json|wide]`,
# `get pods [-n NS|-A] [-o json|wide]`, `rollout restart deployment NAME`, `version`, `cluster-info`,
# `get pdb -A -o json`, `cordon NODE`, `drain NODE [--timeout=Ns ...]`, `delete node NODE [--ignore-not-found]`, and
# `-n kube-system exec etcd-NODE -- etcdctl ... member list -w json | member remove HEXID` (the etcd double's
# members are the control-plane nodes, kept by the apiserver double).
# Every call is recorded as a JSON line in /var/log/kubectl-double.log (applied ConfigMaps in full).
import json
import os
import re
import sys

_here = os.path.dirname(os.path.realpath(__file__))
sys.path[:0] = [_here, os.path.join(_here, "..", "lib", "airgap-e2e"), "/usr/lib/airgap-e2e"]
import kubedouble as kd  # noqa: E402

LOG = "kubectl-double.log"
HELP = f"""kubectl -- {kd.DOUBLE_BANNER} (v{kd.KUBE_VERSION})

    A TEST DOUBLE for the airgap-bundler e2e tests: apply, get nodes, get pods, rollout restart,
    version, cluster-info against the apiserver double; calls are recorded in /var/log/kubectl-double.log.
"""
SHORT = {"n": "namespace", "o": "output", "f": "filename", "A": "all-namespaces"}
BOOL = {"all-namespaces", "A", "client", "help", "h", "wide", "ignore-daemonsets", "delete-emptydir-data",
        "ignore-not-found", "force", "previous", "overwrite"}


def parse_args(argv: list) -> "tuple[list, dict]":
    words, flags = [], {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("-") and a != "-":
            key, eq, val = a.lstrip("-").partition("=")
            key = SHORT.get(key, key) if not a.startswith("--") else key
            if not eq:
                if key in BOOL or key in ("all-namespaces",) or i + 1 >= len(argv):
                    val = "true"
                else:
                    val = argv[i + 1]
                    i += 1
            flags[key] = val
        else:
            words.append(a)
        i += 1
    return words, flags


def _walk_images(node: object, out: list) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "image" and isinstance(v, str):
                out.append(v)
            else:
                _walk_images(v, out)
    elif isinstance(node, list):
        for v in node:
            _walk_images(v, out)


def objects_of(text: str) -> list:
    """kind/name/namespace/images/replicas of every document (YAML subset, else line scanning)."""
    out = []
    for doc in re.split(r"(?m)^---\s*$", text):
        if not doc.strip():
            continue
        try:
            d = kd.parse_yaml(doc)[0]
        except (kd.YAMLError, IndexError):
            d = None
        if isinstance(d, dict):
            meta = d.get("metadata") or {}
            images: list = []
            _walk_images(d.get("spec"), images)
            kind, name, ns = d.get("kind"), meta.get("name"), meta.get("namespace")
            replicas = (d.get("spec") or {}).get("replicas") if isinstance(d.get("spec"), dict) else None
        else:  # real manifests use YAML this parser does not read (block scalars): scan lines
            kind = (re.search(r"(?m)^kind:\s*(\S+)", doc) or [None, None])[1]
            mm = re.search(r"(?m)^metadata:\s*\n((?:[ \t]+.*\n?)*)", doc)
            meta_txt = mm.group(1) if mm else ""
            name = (re.search(r"(?m)^\s{2}name:\s*(\S+)", meta_txt) or [None, None])[1]
            ns = (re.search(r"(?m)^\s{2}namespace:\s*(\S+)", meta_txt) or [None, None])[1]
            images = [i.strip("'\"") for i in re.findall(r"(?m)^\s*-?\s*image:\s*(\S+)", doc)]
            rep = re.search(r"(?m)^\s{2}replicas:\s*(\d+)", doc)
            replicas = int(rep.group(1)) if rep else None
        if not kind or not name:
            kd.die("error: error validating data: a document has no kind or metadata.name")
        out.append({"kind": kind, "name": name, "namespace": ns or "default",
                    "images": list(dict.fromkeys(images)), "replicas": replicas})
    return out


def _conn(flags: dict) -> "tuple[str, str, str]":
    path = flags.get("kubeconfig") or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    try:
        return kd.read_kubeconfig(path)
    except (RuntimeError, KeyError, IndexError, kd.YAMLError) as e:
        kd.die(f"error: invalid configuration: {path} ({e})")
        raise


def _call(flags: dict, method: str, path: str, body: object = None) -> object:
    server, ca, token = _conn(flags)
    try:
        return kd.api(server, method, path, body, token=token, ca_pem=ca)
    except kd.APIError as e:
        kd.die(f"The connection to the server {server} was refused - did you specify the right host or port? ({e})")
        raise


def cmd_apply(flags: dict) -> None:
    fn = flags.get("filename")
    if not fn:
        kd.die("error: must specify -f")
    text = sys.stdin.read() if fn == "-" else open(fn).read()
    objs = objects_of(text)
    res = _call(flags, "POST", "/apply", {"objects": objs, "source": fn})
    # ConfigMaps as the cluster received them (the e2e tests read CoreDNS's Corefile from here)
    configmaps = [doc for doc in re.split(r"(?m)^---\s*$", text) if re.search(r"(?m)^kind:\s*ConfigMap\s*$", doc)]
    if configmaps:
        kd.record(LOG, {"event": "applied-configmaps", "source": fn, "documents": configmaps})
    for o, r in zip(objs, res["results"]):
        print("{}/{} {}".format(o["kind"].lower(), o["name"], r))


def _age(_: object) -> str:
    return "1m"


def cmd_get(words: list, flags: dict) -> None:
    what = words[1] if len(words) > 1 else ""
    out = flags.get("output", "")
    if doctor_get(words, flags):
        return
    if what in ("nodes", "node", "no"):
        data = _call(flags, "GET", "/api/v1/nodes")
        if len(words) > 2:
            data = {"apiVersion": "v1", "kind": "List",
                    "items": [i for i in data["items"] if i["metadata"]["name"] in words[2:]]}
        if out == "json":
            print(json.dumps(data, indent=2))
            return
        wide = out == "wide"
        print("NAME{}STATUS    ROLES           AGE   VERSION{}".format(" " * 12, "   INTERNAL-IP" if wide else ""))
        for i in data["items"]:
            ready = next((c["status"] for c in i["status"]["conditions"] if c["type"] == "Ready"), "Unknown")
            role = "control-plane" if "node-role.kubernetes.io/control-plane" in i["metadata"]["labels"] else "<none>"
            ip = next((a["address"] for a in i["status"]["addresses"] if a["type"] == "InternalIP"), "")
            status = "Ready" if ready == "True" else "NotReady"
            print("{:<16}{:<10}{:<16}{:<6}{}{}".format(i["metadata"]["name"], status,
                                               role, _age(i), i["status"]["nodeInfo"]["kubeletVersion"],
                                               "   " + ip if wide else ""))
        return
    if what in ("pods", "pod", "po"):
        ns = None if flags.get("all-namespaces") else flags.get("namespace", "default")
        data = _call(flags, "GET", f"/api/v1/namespaces/{ns}/pods" if ns else "/api/v1/pods")
        if out == "json":
            print(json.dumps(data, indent=2))
            return
        print("{}NAME{}READY   STATUS    NODE".format("NAMESPACE     " if ns is None else "", " " * 36))
        for i in data["items"]:
            st = i["status"]
            ready = sum(1 for c in st["containerStatuses"] if c["ready"])
            nscol = "{:<14}".format(i["metadata"]["namespace"]) if ns is None else ""
            print("{}{:<40}{}/{:<6}{:<10}{}".format(nscol,
                                             i["metadata"]["name"], ready, len(st["containerStatuses"]),
                                             st["phase"], i["spec"]["nodeName"]))
        return
    if what in ("configmap", "configmaps", "cm") and len(words) > 2 and out == "json":
        ns = flags.get("namespace", "default")
        print(json.dumps(_call(flags, "GET", f"/api/v1/namespaces/{ns}/configmaps/{words[2]}"), indent=2))
        return
    if what in ("pdb", "poddisruptionbudgets", "poddisruptionbudget") and out == "json":
        print(json.dumps(_call(flags, "GET", "/apis/policy/v1/poddisruptionbudgets"), indent=2))
        return
    kd.die(f"error: the kubectl TEST DOUBLE cannot get {what!r} (only nodes, pods, and pdb -o json)")


def cmd_rollout(words: list, flags: dict) -> None:
    """`rollout restart deployment NAME` (or deployment/NAME): checks the apiserver double answers and says
    what kubectl says; the double's pods are derived, so there is nothing to restart."""
    rest = words[2:]
    if len(words) < 2 or words[1] != "restart" or not rest:
        kd.die("error: the kubectl TEST DOUBLE implements only `rollout restart deployment NAME`")
    kind, _, name = rest[0].partition("/")
    if not name:
        name = rest[1] if len(rest) > 1 else ""
    if kind not in ("deployment", "deployments", "deploy") or not name:
        kd.die(f"error: the kubectl TEST DOUBLE cannot restart {' '.join(rest)!r} (only a deployment by name)")
    _call(flags, "GET", "/api/v1/nodes")
    print(f"deployment.apps/{name} restarted")


def cmd_node(words: list, flags: dict) -> None:
    """cordon NODE | drain NODE | delete node NODE: a missing node is an error as in kubectl (unless
    --ignore-not-found for delete)."""
    verb = words[0]
    name = words[2] if verb == "delete" and len(words) > 2 else (words[1] if len(words) > 1 else "")
    if verb == "delete" and (len(words) < 3 or words[1] not in ("node", "nodes", "no")):
        kd.die("error: the kubectl TEST DOUBLE deletes only nodes (delete node NAME)")
    if not name:
        kd.die(f"error: {verb}: a node name is required")
    server, ca, token = _conn(flags)
    try:
        if verb == "delete":
            kd.api(server, "DELETE", f"/api/v1/nodes/{name}", token=token, ca_pem=ca)
        else:
            kd.api(server, "POST", f"/api/v1/nodes/{name}/{verb}", {}, token=token, ca_pem=ca)
    except kd.APIError as e:
        if verb == "delete" and flags.get("ignore-not-found") in ("true", "") and e.status == 404:
            return
        kd.die(f'Error from server (NotFound): nodes "{name}" not found ({e})')
    print({"cordon": f"node/{name} cordoned", "drain": f"node/{name} drained",
           "delete": f'node "{name}" deleted'}[verb])


def cmd_uncordon_annotate(words: list, flags: dict) -> None:
    """uncordon NODE | annotate [--overwrite] node NODE key=value | key-."""
    if words[0] == "uncordon":
        name, body = (words[1] if len(words) > 1 else ""), {}
    else:
        if len(words) < 4 or words[1] not in ("node", "nodes", "no"):
            kd.die("error: the kubectl TEST DOUBLE annotates only nodes (annotate node NAME k=v|k-)")
        name = words[2]
        body = {"set": dict(a.split("=", 1) for a in words[3:] if "=" in a),
                "remove": [a[:-1] for a in words[3:] if a.endswith("-") and "=" not in a]}
    server, ca, token = _conn(flags)
    try:
        kd.api(server, "POST", f"/api/v1/nodes/{name}/{words[0]}", body, token=token, ca_pem=ca)
    except kd.APIError as e:
        kd.die(f'Error from server (NotFound): nodes "{name}" not found ({e})')
    print(f"node/{name} {'uncordoned' if words[0] == 'uncordon' else 'annotated'}")


def cmd_exec(argv: list) -> None:
    """exec etcd-NODE -- etcdctl [flags] member list -w json | member remove HEXID."""
    if "--" not in argv:
        kd.die("error: the kubectl TEST DOUBLE runs only `exec etcd-NODE -- etcdctl ...`")
    words, flags = parse_args(argv[:argv.index("--")])
    inner = [a for a in argv[argv.index("--") + 1:] if not a.startswith("-")]
    if not any(w.startswith("etcd-") for w in words) or not inner or inner[0] != "etcdctl":
        kd.die("error: the kubectl TEST DOUBLE runs only etcdctl in an etcd-NODE pod")
    if doctor_etcdctl(inner, flags, json_out="json" in argv[argv.index("--") + 1:]):
        return
    if inner[1:3] == ["member", "list"]:
        print(json.dumps(_call(flags, "GET", "/etcd/members")))
    elif inner[1:3] == ["endpoint", "health"]:
        _call(flags, "GET", "/etcd/members")
        print("https://127.0.0.1:2379 is healthy: successfully committed proposal (etcd TEST DOUBLE)")
    elif inner[1:3] == ["member", "remove"] and len(inner) > 3:
        server, ca, token = _conn(flags)
        try:
            kd.api(server, "POST", f"/etcd/members/{inner[3]}/remove", {}, token=token, ca_pem=ca)
        except kd.APIError as e:
            kd.die(f"Error: {e}")
        print(f"Member {inner[3]} removed from cluster")
    else:
        kd.die("error: the etcdctl in the kubectl TEST DOUBLE knows `member list` and `member remove ID`")


# ---- doctor's reads (./install.py doctor): get --raw, one pod, events, services, endpoints, configmaps, secrets,
# and etcdctl endpoint health / alarm list. Objects the apiserver double does not keep are derived here: the
# kube-dns Service (10.96.0.10) selects the CoreDNS pods, which get labels and pod IPs (10.244.0.10+i).
DNS_IP = "10.96.0.10"
DNS_PORTS = [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
             {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
             {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]
LISTS = {"events": "EventList", "event": "EventList", "ev": "EventList", "services": "ServiceList",
         "service": "ServiceList", "svc": "ServiceList", "endpoints": "EndpointsList", "ep": "EndpointsList",
         "configmaps": "ConfigMapList", "configmap": "ConfigMapList", "cm": "ConfigMapList",
         "secrets": "SecretList", "secret": "SecretList", "daemonsets": "DaemonSetList", "ds": "DaemonSetList",
         "deployments": "DeploymentList", "deploy": "DeploymentList"}


def _pods_with_dns(flags: dict, ns: "str | None") -> dict:
    data = _call(flags, "GET", f"/api/v1/namespaces/{ns}/pods" if ns else "/api/v1/pods")
    for i, p in enumerate(x for x in data["items"] if x["metadata"]["name"].startswith("coredns-")):
        p["metadata"]["labels"] = {"k8s-app": "kube-dns"}
        p["status"]["podIP"] = f"10.244.0.{10 + i}"
        p["spec"]["containers"][0]["ports"] = [{"name": q["name"], "containerPort": q["port"],
                                                "protocol": q["protocol"]} for q in DNS_PORTS]
    for p in data["items"]:
        ready = p["status"]["phase"] == "Running"
        p["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    return data


def _derived(kind: str, flags: dict) -> list:
    """The objects of `kind` the double can show (for every namespace)."""
    if kind not in ("ServiceList", "EndpointsList"):
        return []
    dns = [p for p in _pods_with_dns(flags, "kube-system")["items"] if p["metadata"]["name"].startswith("coredns-")]
    meta = {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}}
    if kind == "ServiceList":
        return [{"apiVersion": "v1", "kind": "Service", "metadata": meta,
                 "spec": {"clusterIP": DNS_IP, "selector": {"k8s-app": "kube-dns"}, "ports": DNS_PORTS,
                          "type": "ClusterIP"}}]
    ready = [{"ip": p["status"]["podIP"], "nodeName": p["spec"]["nodeName"]} for p in dns
             if p["status"]["phase"] == "Running"]
    waiting = [{"ip": p["status"]["podIP"]} for p in dns if p["status"]["phase"] != "Running"]
    subset = {"ports": [{"name": q["name"], "port": q["port"], "protocol": q["protocol"]} for q in DNS_PORTS]}
    if ready:
        subset["addresses"] = ready
    if waiting:
        subset["notReadyAddresses"] = waiting
    return [{"apiVersion": "v1", "kind": "Endpoints", "metadata": meta, "subsets": [subset] if dns else []}]


def doctor_get(words: list, flags: dict) -> bool:
    """The reads doctor makes that the handlers above do not answer; False to let them answer."""
    what = words[1] if len(words) > 1 else ""
    if "raw" in flags:
        path = flags["raw"]
        if path.startswith("/readyz") or path.startswith("/livez"):
            _call(flags, "GET", "/api/v1/nodes")  # answers only when the apiserver double does
            checks = ["ping", "log", "etcd", "etcd-readiness", "informer-sync", "poststarthook/start-apiextensions"]
            print("\n".join(f"[+]{c} ok" for c in checks) + ("\nreadyz check passed" if "verbose" in path else ""))
        else:
            print(json.dumps(_call(flags, "GET", path), indent=2))
        return True
    ns = None if flags.get("all-namespaces") else flags.get("namespace", "default")
    names = words[2:]
    if what in ("pods", "pod", "po") and names and flags.get("output") == "json":
        items = [p for p in _pods_with_dns(flags, ns)["items"] if p["metadata"]["name"] in names]
        if not items:
            kd.die(f'Error from server (NotFound): pods "{names[0]}" not found')
        print(json.dumps(items[0], indent=2))
        return True
    if what in ("pods", "pod", "po") and flags.get("output") == "json":
        print(json.dumps(_pods_with_dns(flags, ns), indent=2))
        return True
    if what not in LISTS:
        return False
    kind = LISTS[what]
    items = [o for o in _derived(kind, flags) if ns is None or o["metadata"]["namespace"] == ns]
    if names:
        items = [o for o in items if o["metadata"]["name"] in names]
        if not items and kind == "ConfigMapList":
            return False  # a ConfigMap the apiserver double keeps (kubeadm-config): cmd_get answers it
        if not items:
            kd.die(f'Error from server (NotFound): {what} "{names[0]}" not found')
        print(json.dumps(items[0], indent=2))
        return True
    print(json.dumps({"apiVersion": "v1", "kind": kind, "items": items}, indent=2))
    return True


def doctor_etcdctl(inner: list, flags: dict, json_out: bool = False) -> bool:
    """etcdctl endpoint health [-w json] | alarm list, answered from the apiserver double (its etcd is "healthy"
    while it answers); the text and JSON forms are etcdctl 3.5's."""
    if inner[1:3] == ["endpoint", "health"]:
        _call(flags, "GET", "/etcd/members")
        if json_out:
            print(json.dumps([{"endpoint": "https://127.0.0.1:2379", "health": True, "took": "1.2ms"}]))
        else:
            print("https://127.0.0.1:2379 is healthy: successfully committed proposal: took = 1.2ms")
        return True
    if inner[1:3] == ["alarm", "list"]:
        _call(flags, "GET", "/etcd/members")
        return True  # no alarm: etcdctl prints nothing
    return False


def main(argv: list) -> None:
    words, flags = parse_args(argv)
    if not words or "help" in flags or "h" in flags:
        print(HELP)
        return
    kd.record(LOG, {"argv": argv})
    if words[0] == "version":
        print(f"Client Version: v{kd.KUBE_VERSION} (kubectl TEST DOUBLE)")
        if "client" not in flags:
            v = _call(flags, "GET", "/version")
            print("Server Version: {}".format(v["gitVersion"]))
    elif words[0] == "cluster-info":
        server, _, _ = _conn(flags)
        _call(flags, "GET", "/api/v1/nodes")
        print(f"Kubernetes control plane (apiserver TEST DOUBLE) is running at {server}")
    elif words[0] == "apply":
        cmd_apply(flags)
    elif words[0] == "get":
        cmd_get(words, flags)
    elif words[0] == "rollout":
        cmd_rollout(words, flags)
    elif words[0] in ("cordon", "drain", "delete"):
        cmd_node(words, flags)
    elif words[0] in ("uncordon", "annotate"):
        cmd_uncordon_annotate(words, flags)
    elif words[0] == "exec":
        cmd_exec(argv)
    else:
        kd.die("error: the kubectl TEST DOUBLE does not implement {!r}\n{}".format(" ".join(words), HELP))


if __name__ == "__main__":
    main(sys.argv[1:])
