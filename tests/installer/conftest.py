import hashlib
import json
import os

import pytest

from installer.bundle import Bundle
from installer.context import Context, Options
from installer.facts import Facts
from installer.inventory import from_flags


def write_sums(root):
    lines = []
    for d, _, files in os.walk(root):
        for f in sorted(files):
            p = os.path.join(d, f)
            rel = os.path.relpath(p, root)
            if rel in ("SHA256SUMS", "SHA256SUMS.asc"):
                continue
            with open(p, "rb") as fh:
                lines.append(f"{hashlib.sha256(fh.read()).hexdigest()}  {rel}\n")
    with open(os.path.join(root, "SHA256SUMS"), "w") as fh:
        fh.write("".join(sorted(lines, key=lambda ln: ln.split("  ", 1)[1])))


def make_bundle(root, os_tag="el9", runtime="containerd", cni="calico", k8s="1.30.4", install="packages",
                manifest_packages=None, helm=False):
    os.makedirs(os.path.join(root, "repo", "repodata"))
    os.makedirs(os.path.join(root, "repo", "gpgkeys"))
    os.makedirs(os.path.join(root, "files"))
    os.makedirs(os.path.join(root, "manifests"))
    os.makedirs(os.path.join(root, "images"))
    with open(os.path.join(root, "repo", "repodata", "repomd.xml"), "w") as f:
        f.write("<repomd/>\n")
    with open(os.path.join(root, "repo", "gpgkeys", "kubernetes.gpg"), "w") as f:
        f.write("KEY\n")
    with open(os.path.join(root, "files", "registry"), "w") as f:
        f.write("#!/bin/sh\n")
    with open(os.path.join(root, "manifests", "calico.yaml"), "w") as f:
        f.write('            # - name: CALICO_IPV4POOL_CIDR\n            #   value: "192.168.0.0/16"\n')
    data = {
        "schemaVersion": 1, "name": "k8s", "version": "1.0.0", "target": {"os": os_tag, "arch": "x86_64"},
        "kubernetes": {"version": k8s}, "runtime": runtime, "cni": cni, "install": install,
        "packages": [
            {"name": "containerd.io", "version": "1.7.20", "path": "repo/Packages/containerd.io.rpm"},
            {"name": "kubeadm", "version": k8s, "path": "repo/Packages/kubeadm.rpm"},
            {"name": "container-selinux", "version": "2.0", "path": "repo/Packages/cs.rpm"},
            {"name": "docker-ce", "version": "26.1.0", "path": "repo/Packages/docker-ce.rpm"},
        ],
        "images": [
            {"ref": "registry.k8s.io/pause:3.9", "digest": "sha256:" + "1" * 64},
            {"ref": f"registry.k8s.io/kube-apiserver:v{k8s}", "digest": "sha256:" + "2" * 64},
            {"ref": "docker.io/calico/node:v3.28.0", "digest": "sha256:" + "3" * 64},
        ],
        "files": [{"name": "registry", "kind": "binary", "path": "files/registry",
                   "sha256": hashlib.sha256(b"#!/bin/sh\n").hexdigest()}],
    }
    if manifest_packages is not None:
        data["manifest"] = {"packages": list(manifest_packages)}
    if helm:
        with open(os.path.join(root, "files", "helm"), "w") as f:
            f.write("#!/bin/sh\necho helm\n")
        data["files"].append({"name": "helm", "kind": "binary", "path": "files/helm", "version": "3.15.4",
                              "sha256": hashlib.sha256(b"#!/bin/sh\necho helm\n").hexdigest()})
    with open(os.path.join(root, "bundle.json"), "w") as f:
        json.dump(data, f)
    write_sums(root)
    return Bundle.load(root)


@pytest.fixture
def bundle(tmp_path):
    return make_bundle(str(tmp_path / "bundle"))


def el9_facts(**over):
    f = Facts({
        "os_id": "rocky", "os_id_like": "rhel centos fedora", "os_version_id": "9.4",
        "os_pretty": "Rocky Linux 9.4", "arch": "x86_64", "hostname": "node", "cpus": 4, "mem_mb": 8000,
        "disk_free_mb": 50000, "time": 1700000000, "swap_active": False, "selinux": "enforcing",
        "modules": ["overlay", "br_netfilter"], "addresses": ["127.0.0.1"], "listening_ports": [22],
        "rpms": {}, "services": {}, "files": {}, "dirs": {}, "fw_ports": [], "bin_sha": {},
        "timezone": "UTC",
    })
    f.update(over)
    return f


def make_ctx(bundle, cp="10.0.0.11", workers="10.0.0.12,10.0.0.13", **opts):
    inventory = from_flags(cp, workers)
    ctx = Context(bundle, inventory, Options(**opts))
    ctx.serve_python = "/usr/bin/python3"
    for i, h in enumerate(ctx.all_hosts):
        ctx.facts[h.label] = el9_facts(hostname="node%d" % i, addresses=["127.0.0.1", h.address])
    ctx.media = {"kind": "iso", "path": "/root/Rocky-9.4-x86_64-dvd.iso", "label": "Rocky-9-4-x86_64-dvd",
                 "major": 9}
    return ctx
