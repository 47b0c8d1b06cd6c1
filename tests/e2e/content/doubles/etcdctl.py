#!/usr/bin/python3
# TEST DOUBLE of etcdctl for the airgap-bundler e2e rig -- NOT the real etcdctl.
#
# Shipped inside the e2e stand-in of the etcd image (usr/local/bin/etcdctl, tests/e2e/content/images.py), where
# the installer finds it as it finds the real one in registry.k8s.io/etcd. Records every call as a JSON line
# in /var/log/etcdctl-double.log. Knows: member list [-w json], endpoint health, snapshot save FILE, snapshot
# status FILE [-w json], snapshot restore FILE --name --initial-cluster --initial-cluster-token
# --initial-advertise-peer-urls --data-dir. The "etcd" it talks to is the apiserver double's member list (over
# /etc/kubernetes/admin.conf); a snapshot is a small real file: a header line the restore checks, then JSON.
import hashlib
import json
import os
import sys
import time
import zlib

_here = os.path.dirname(os.path.realpath(__file__))
sys.path[:0] = [_here, "/usr/lib/airgap-e2e"]
import kubedouble as kd  # noqa: E402

LOG = "etcdctl-double.log"
HEADER = b"AIRGAP-E2E-ETCD-SNAPSHOT v1\n"
ADMIN = "/etc/kubernetes/admin.conf"


def parse(argv: list) -> "tuple[list, dict]":
    words, flags, i = [], {}, 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("-"):
            k, eq, v = a.lstrip("-").partition("=")
            if not eq and i + 1 < len(argv) and not argv[i + 1].startswith("-") and k not in ("debug",):
                v = argv[i + 1]
                i += 1
            flags[k] = v or "true"
        else:
            words.append(a)
        i += 1
    if "w" in flags:
        flags["write-out"] = flags.pop("w")
    return words, flags


def api(path: str) -> object:
    try:
        server, ca, token = kd.read_kubeconfig(ADMIN)
    except (RuntimeError, KeyError, TypeError, IndexError, ValueError) as e:
        raise kd.APIError(0, f"no etcd to talk to: cannot read {ADMIN} ({e})") from None
    return kd.api(server, "GET", path, token=token, ca_pem=ca, timeout=10)


def members() -> list:
    """The apiserver double's etcd members with peer/client URLs from the nodes' addresses."""
    listed = api("/etcd/members")["members"]
    nodes = {n["metadata"]["name"]: n for n in api("/api/v1/nodes")["items"]}
    out = []
    for m in listed:
        addrs = (nodes.get(m["name"]) or {}).get("status", {}).get("addresses", [])
        ip = next((a["address"] for a in addrs if a["type"] == "InternalIP" and a["address"]), "127.0.0.1")
        out.append({"ID": m["ID"], "name": m["name"], "peerURLs": [f"https://{ip}:2380"],
                    "clientURLs": [f"https://{ip}:2379"]})
    return out


def fail(entry: dict, msg: str) -> None:
    kd.record(LOG, dict(entry, result="error", error=msg))
    kd.die(f"Error: {msg}")


def main(argv: list) -> None:
    words, flags = parse(argv)
    entry = {"argv": argv, "command": " ".join(words[:2])}
    if not words or words[0] in ("help", "version") or "help" in flags:
        print("etcdctl version: 3.5.15 (etcdctl TEST DOUBLE, airgap-bundler e2e)\nAPI version: 3.5")
        return
    try:
        if words[:2] == ["member", "list"]:
            ms = members()
            kd.record(LOG, dict(entry, members=[m["name"] for m in ms]))
            if flags.get("write-out") == "json":
                print(json.dumps({"header": {"cluster_id": 1, "member_id": ms[0]["ID"] if ms else 0, "raft_term": 2},
                                  "members": ms}))
            else:
                for m in ms:
                    print("{:x}, started, {}, {}, {}, false".format(m["ID"], m["name"], m["peerURLs"][0],
                                                                    m["clientURLs"][0]))
            return
        if words[:2] == ["endpoint", "health"]:
            ok = api("/healthz") == "ok"
            kd.record(LOG, dict(entry, healthy=ok))
            ep = flags.get("endpoints", "https://127.0.0.1:2379")
            print(f"{ep} is healthy: successfully committed proposal: took = 1.1ms" if ok else f"{ep} is unhealthy")
            sys.exit(0 if ok else 1)
        if words[:2] == ["snapshot", "save"] and len(words) > 2:
            body = {"members": members(), "saved": kd.now_iso(),
                    "apiserverState": kd.load_json(kd.APISERVER_STATE, None)}
            data = HEADER + json.dumps(body, sort_keys=True).encode()
            with open(words[2] + ".part", "wb") as f:
                f.write(data)
            os.replace(words[2] + ".part", words[2])
            kd.record(LOG, dict(entry, file=words[2], sha256=hashlib.sha256(data).hexdigest(),
                                members=[m["name"] for m in body["members"]]))
            print(f"Snapshot saved at {words[2]}")
            return
        if words[:2] == ["snapshot", "status"] and len(words) > 2:
            data = read_snapshot(entry, words[2])
            body = json.loads(data[len(HEADER):])
            st = {"hash": zlib.crc32(data), "revision": 1000 + len(body.get("members", [])),
                  "totalKey": 42, "totalSize": len(data)}
            kd.record(LOG, dict(entry, file=words[2], sha256=hashlib.sha256(data).hexdigest()))
            print(json.dumps(st) if flags.get("write-out") == "json" else
                  "{:x}, {}, {}, {} B".format(st["hash"], st["revision"], st["totalKey"], st["totalSize"]))
            return
        if words[:2] == ["snapshot", "restore"] and len(words) > 2:
            restore(entry, words[2], flags)
            return
    except kd.APIError as e:
        fail(entry, f"context deadline exceeded ({e})")
    fail(entry, "the etcdctl TEST DOUBLE does not implement {!r}".format(" ".join(words)))


def read_snapshot(entry: dict, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        fail(entry, f"open {path}: {e.strerror}")
    if not data.startswith(HEADER):
        fail(entry, "snapshot file integrity check failed (not an etcd snapshot of the TEST DOUBLE)")
    try:
        json.loads(data[len(HEADER):])
    except ValueError:
        fail(entry, "snapshot file integrity check failed (truncated)")
    return data


def restore(entry: dict, path: str, flags: dict) -> None:
    data = read_snapshot(entry, path)
    for need in ("name", "initial-cluster", "initial-advertise-peer-urls", "data-dir"):
        if not flags.get(need):
            fail(entry, f"--{need} is required by this restore (the installer always passes it)")
    d = flags["data-dir"]
    if os.path.exists(d):
        fail(entry, f'data-dir "{d}" exists')
    peers = dict(p.split("=", 1) for p in flags["initial-cluster"].split(","))
    if peers.get(flags["name"]) != flags["initial-advertise-peer-urls"]:
        fail(entry, "--initial-cluster must include {}={}".format(flags["name"], flags["initial-advertise-peer-urls"]))
    os.makedirs(os.path.join(d, "member", "snap"), 0o700)
    with open(os.path.join(d, "member", "snap", "db"), "wb") as f:
        f.write(data)
    info = {"name": flags["name"], "initialCluster": peers, "peerURLs": [flags["initial-advertise-peer-urls"]],
            "clusterToken": flags.get("initial-cluster-token"), "snapshotSha256": hashlib.sha256(data).hexdigest(),
            "restored": kd.now_iso()}
    with open(os.path.join(d, "member", "airgap-e2e-restore.json"), "w") as f:
        json.dump(info, f, indent=1, sort_keys=True)
    kd.record(LOG, dict(entry, file=path, **info))
    print(f"restored snapshot {path} into {d} as member {flags['name']} (etcdctl TEST DOUBLE) {time.time():.0f}")


if __name__ == "__main__":
    main(sys.argv[1:])
