#!/usr/bin/python3
# TEST DOUBLE of crictl (cri-tools) for the airgap-bundler e2e rig -- NOT the real crictl.
# Debian 12 has no cri-tools. This double maps the crictl calls the installer and the kubelet
# double make onto Debian's real `ctr` in containerd's k8s.io namespace:
#   crictl pull IMAGE     -> ctr -n k8s.io images pull --hosts-dir <config_path of config.toml> IMAGE
#                            (so the pull really goes through the registry mirror config, hosts.toml
#                            with its CA, that the installer wrote for containerd)
#   crictl images [-o json|-q], crictl info, crictl version, crictl ps/pods (empty), crictl rmi;
#   crictl ps --name=REGEX [--state=running] [-q]: one container per static pod manifest in place.
# Calls are recorded as JSON lines in /var/log/crictl-double.log.
import hashlib
import json
import os
import re
import subprocess
import sys

LOG = "/var/log/crictl-double.log"
HELP = """crictl -- TEST DOUBLE (airgap-bundler e2e), not the real crictl.
    pull IMAGE | images [-o json] [-q] | info | version | ps | pods | rmi IMAGE
    Implemented with ctr -n k8s.io against containerd (endpoint from /etc/crictl.yaml)."""


def record(entry: dict) -> None:
    import time
    try:
        os.makedirs(os.path.dirname(LOG), exist_ok=True)
        with open(LOG, "a") as f:
            f.write(json.dumps(dict(entry, time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))) + "\n")
    except OSError:
        pass


def endpoint(flags: dict) -> str:
    ep = flags.get("runtime-endpoint") or flags.get("r") or os.environ.get("CONTAINER_RUNTIME_ENDPOINT")
    if not ep:
        try:
            with open("/etc/crictl.yaml") as f:
                m = re.search(r"(?m)^runtime-endpoint:\s*(\S+)", f.read())
                ep = m.group(1) if m else None
        except OSError:
            pass
    return (ep or "unix:///run/containerd/containerd.sock").replace("unix://", "", 1)


def hosts_dir() -> str:
    try:
        with open("/etc/containerd/config.toml") as f:
            m = re.search(r'(?m)^\s*config_path\s*=\s*"([^"]*)"', f.read())
            if m and m.group(1):
                return m.group(1)
    except OSError:
        pass
    return "/etc/containerd/certs.d"


def ctr(sock: str, *args: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(["ctr", "--address", sock, "--namespace", "k8s.io"] + list(args),
                          capture_output=True, text=True)


def normalize(ref: str) -> str:
    first = ref.split("/", 1)[0]
    if "/" not in ref or ("." not in first and ":" not in first and first != "localhost"):
        ref = "docker.io/" + ("library/" + ref if "/" not in ref else ref)
    if ":" not in ref.rsplit("/", 1)[-1] and "@" not in ref:
        ref += ":latest"
    return ref


def is_docker(sock: str) -> bool:
    """cri-dockerd's socket: the images live in dockerd (runtime: docker), not in containerd's k8s.io."""
    return sock.endswith("cri-dockerd.sock")


def docker_images() -> list:
    r = subprocess.run(["docker", "images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        sys.exit(1)
    by_id: dict = {}
    for line in r.stdout.splitlines():
        ref, _, digest = line.partition(" ")
        img = by_id.setdefault(digest, {"id": digest, "repoTags": [], "repoDigests": [], "size": "0",
                                        "uid": None, "username": "", "spec": None, "pinned": False})
        if not ref.endswith(":<none>"):
            img["repoTags"].append(normalize(ref))
    return [i for i in by_id.values() if i["repoTags"]]


def images(sock: str) -> list:
    if is_docker(sock):
        return docker_images()
    r = ctr(sock, "images", "ls")
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        sys.exit(1)
    by_digest: dict = {}
    for line in r.stdout.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 3:
            continue
        ref, digest = cols[0], cols[2]
        img = by_digest.setdefault(digest, {"id": digest, "repoTags": [], "repoDigests": [], "size": "0",
                                            "uid": None, "username": "", "spec": None, "pinned": False})
        if ref.startswith("sha256:"):
            continue
        if "@sha256:" in ref:
            img["repoDigests"].append(ref)
        else:
            img["repoTags"].append(ref)
            img["repoDigests"].append("{}@{}".format(ref.rsplit(":", 1)[0], digest))
    return [i for i in by_digest.values() if i["repoTags"] or i["repoDigests"]]


def ps_static_pods(flags: dict) -> None:
    """`ps --name=REGEX [--state=running] [-q]`: the kubelet double runs no containers, but a kubelet runs one per
    static pod manifest, so a container "runs" while its manifest is in /etc/kubernetes/manifests (its ID changes
    when the manifest is put back: what a restart looks like)."""
    d = "/etc/kubernetes/manifests"
    pat = re.compile(flags["name"])
    rows = []
    for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        name = f[:-5] if f.endswith(".yaml") else None
        if name and pat.search(name):
            st = os.stat(os.path.join(d, f))
            rows.append((hashlib.sha256(f"{name}:{st.st_ctime_ns}".encode()).hexdigest()[:13], name))
    state = flags.get("state", "").lower()
    if state and state != "running":
        rows = []
    record({"ps": flags["name"], "state": state or None, "containers": [n for _, n in rows]})
    for cid, name in rows:
        print(cid if "q" in flags or "quiet" in flags else f"{cid}   Running   {name}   (crictl TEST DOUBLE)")


def main(argv: list) -> None:
    flags: dict = {}
    words = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-r", "--runtime-endpoint", "-i", "--image-endpoint", "-o", "--output", "-t", "--timeout",
                 "-c", "--config") and i + 1 < len(argv):
            flags[a.lstrip("-")] = argv[i + 1]
            i += 1
        elif a.startswith("-"):
            k, _, v = a.lstrip("-").partition("=")
            flags[k] = v or "true"
        else:
            words.append(a)
        i += 1
    if not words or "help" in flags or "h" in flags:
        print(HELP)
        return
    record({"argv": argv})
    sock = endpoint(flags)
    cmd = words[0]
    if cmd == "pull":
        if len(words) < 2:
            sys.exit("crictl pull: IMAGE missing")
        ref = normalize(words[1])
        if is_docker(sock):  # dockerd pulls with its own registry-mirrors and certs.d
            r = subprocess.run(["docker", "pull", ref], capture_output=True, text=True)
        else:
            r = ctr(sock, "images", "pull", "--hosts-dir", hosts_dir(), ref)
        record({"pull": ref, "rc": r.returncode, "stderr": r.stderr[-2000:]})
        if r.returncode != 0:
            sys.stderr.write('E pulling image failed: rpc error: code = Unknown desc = failed to pull and unpack '
                             f'image "{ref}": {r.stderr.strip()}\n')
            sys.exit(1)
        digest = next((i["id"] for i in images(sock) if ref in i["repoTags"]), "")
        print(f"Image is up to date for {digest}")
    elif cmd in ("images", "image", "img"):
        imgs = images(sock)
        if flags.get("o") == "json" or flags.get("output") == "json":
            print(json.dumps({"images": imgs}, indent=2))
        elif "q" in flags or "quiet" in flags:
            for i in imgs:
                print(i["id"])
        else:
            print(f"{'IMAGE':<60} {'TAG':<20} IMAGE ID")
            for i in imgs:
                for t in i["repoTags"]:
                    name, _, tag = t.rpartition(":")
                    print(f"{name:<60} {tag:<20} {i['id'][7:20]}")
    elif cmd == "inspecti":  # exit 0 when the image is here (the installer's pre-pull skips it)
        refs = [normalize(r) for r in words[1:]]
        have = {t for i in images(sock) for t in i["repoTags"]}
        if not refs or any(r not in have for r in refs):
            sys.stderr.write("E no such image (crictl TEST DOUBLE)\n")
            sys.exit(1)
        print(json.dumps({"status": {"repoTags": refs}}))
    elif cmd == "rmi":
        for ref in words[1:]:
            ctr(sock, "images", "rm", normalize(ref))
    elif cmd == "ps" and "name" in flags:
        ps_static_pods(flags)
    elif cmd in ("ps", "pods"):
        print(json.dumps({"containers" if cmd == "ps" else "items": []}) if flags.get("o") == "json" else
              "CONTAINER ID   IMAGE   CREATED   STATE   NAME   (crictl TEST DOUBLE: no pods run here)")
    elif cmd in ("info", "version"):
        probe = ["docker", "version"] if is_docker(sock) else ["ctr", "--address", sock, "version"]
        r = subprocess.run(probe, capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write(f"E validate service connection: {r.stderr.strip()}\n")
            sys.exit(1)
        server = re.search(r"Server:\s*\n\s*Version:\s*(\S+)", r.stdout)
        if cmd == "version":
            print("Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  %s\nRuntimeApiVersion:  v1\n"
                  "(crictl TEST DOUBLE)" % (server.group(1) if server else "unknown"))
        else:
            cni = os.path.isdir("/etc/cni/net.d") and bool(os.listdir("/etc/cni/net.d"))
            print(json.dumps({"status": {"conditions": [
                {"type": "RuntimeReady", "status": True},
                {"type": "NetworkReady", "status": cni,
                 "reason": "" if cni else "NetworkPluginNotReady"}]},
                "config": {"registry": {"configPath": hosts_dir()}}, "note": "crictl TEST DOUBLE"}, indent=2))
    else:
        sys.exit(f"crictl TEST DOUBLE: {cmd!r} is not implemented")


if __name__ == "__main__":
    main(sys.argv[1:])
