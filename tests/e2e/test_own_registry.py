"""Your own registry on the rig: a second registry on node3 (Debian's docker-registry with TLS from a throwaway
CA; a push instance with htpasswd and an anonymous read-only instance on the same storage, as a Harbor public
project behaves), `./install.py push-images --to` it from node1, the images pulled back by digest from a node,
then an install of node1 + node2 with `--registry` whose runtime config points at it: no bundled registry, every
image the kubelet double pulls comes through containerd's hosts.toml from node3. Zero leaks.

kubeadm/kubelet/kubectl/crictl are TEST DOUBLES (tests/e2e/content/doubles); containerd and ctr are real.
"""

from __future__ import annotations

import json
import shlex

from rig import TIMER, LeakTrap

from installer.extregistry import fingerprint
from tests.e2e import scenario
from tests.e2e.test_install import run
from tests.images.tls_registry import PASSWORD, USER, htpasswd_line, make_ca

PUSH_PORT, PULL_PORT = 5444, 5443
PREFIX = "k8s"
WORK = "/root/own-registry"
STORAGE = "/var/lib/own-registry"


def _config(node3_ip: str, port: int, auth: bool) -> str:
    cfg: dict = {"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
                 "storage": {"filesystem": {"rootdirectory": STORAGE}},
                 "http": {"addr": f"{node3_ip}:{port}",
                          "tls": {"certificate": f"{WORK}/server.pem", "key": f"{WORK}/server.key"}}}
    if auth:
        cfg["auth"] = {"htpasswd": {"realm": "own", "path": f"{WORK}/htpasswd"}}
    else:
        cfg["storage"]["maintenance"] = {"readonly": {"enabled": True}}
    return json.dumps(cfg)


def _start_registry(node3, tmp_path):  # noqa: ANN001, ANN202
    ca, cert, key = make_ca(tmp_path, "own", ip=node3.ip)
    node3.sh(f"mkdir -p {WORK} {STORAGE}")
    node3.copy_in("/usr/bin/docker-registry", f"{WORK}/docker-registry")
    node3.write_file(f"{WORK}/server.pem", cert.read_text())
    node3.write_file(f"{WORK}/server.key", key.read_text(), mode="0600")
    node3.write_file(f"{WORK}/htpasswd", htpasswd_line(), mode="0600")
    node3.write_file(f"{WORK}/push.yml", _config(node3.ip, PUSH_PORT, auth=True))
    node3.write_file(f"{WORK}/pull.yml", _config(node3.ip, PULL_PORT, auth=False))
    for unit, cfg in (("own-registry-push", "push.yml"), ("own-registry-pull", "pull.yml")):
        node3.exec_background(unit, [f"{WORK}/docker-registry", "serve", f"{WORK}/{cfg}"])
    for port in (PUSH_PORT, PULL_PORT):  # bounded wait: 50 x 0.2 s
        node3.sh(f"for i in $(seq 50); do curl -sk -o /dev/null https://{node3.ip}:{port}/v2/ && break; "
                 "sleep 0.2; done; true")
    return ca


def _stop_registry(node3) -> None:  # noqa: ANN001
    for unit in ("own-registry-push", "own-registry-pull"):
        node3.stop_background(unit)
    node3.sh(f"rm -rf {WORK} {STORAGE}")


FETCH = r"""
import hashlib, json, ssl, sys, urllib.request
url, ca, accept = sys.argv[1], sys.argv[2], sys.argv[3]
req = urllib.request.Request(url, headers={"Accept": accept})
with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca), timeout=30) as r:
    body = r.read()
got = "sha256:" + hashlib.sha256(body).hexdigest()
print(json.dumps({"digest": got, "header": r.headers.get("Docker-Content-Digest")}))
"""


def test_push_images_to_your_registry_then_install_with_it(rig, containerd_bundle, upstream, clean_trap, tmp_path):
    tarball, _ = containerd_bundle
    node1, node2, node3 = rig.nodes.nodes
    before3 = scenario.snapshot(node3)
    with TIMER.stage("e2e own registry: node3 registry (TLS + htpasswd / read-only), deliver bundle"):
        ca = _start_registry(node3, tmp_path)
        bundle_dir = rig.deliver_bundle(tarball)
        scenario.put_media(node1, upstream)
        node1.exec(["rm", "-f", f"{bundle_dir}/cluster.json"])
        for node in (node1, node2):
            node.write_file("/root/own-ca.pem", ca.read_text())
        node1.write_file("/root/own-creds", f"{USER}:{PASSWORD}\n", mode="0600")
    bundle = json.loads(node1.read_file(f"{bundle_dir}/bundle.json"))
    push_to = f"{node3.ip}:{PUSH_PORT}/{PREFIX}"
    pull_from = f"{node3.ip}:{PULL_PORT}/{PREFIX}"
    push = f"cd {bundle_dir} && ./install.py push-images --to {push_to} --ca /root/own-ca.pem " \
           "--credentials /root/own-creds"
    try:
        with TIMER.stage("e2e own registry: push-images (errors, plan, push, re-run)"):
            untrusted = run(node1, f"cd {bundle_dir} && ./install.py push-images --to {push_to} "
                                   "--credentials /root/own-creds")
            assert untrusted.returncode == 1 and "is not trusted" in untrusted.stdout, untrusted.stdout[-2000:]
            assert "--ca FILE" in " ".join(untrusted.stdout.split())
            node1.write_file("/root/bad-creds", f"{USER}:wrong\n", mode="0600")
            refused = run(node1, push.replace("/root/own-creds", "/root/bad-creds"))
            assert refused.returncode == 1 and "HTTP 401" in refused.stdout, refused.stdout[-2000:]
            plan = run(node1, push.replace("push-images", "plan push-images"))
            n = len(bundle["images"])
            assert plan.returncode == 0 and f"{n} of {n} image(s) to push" in plan.stdout, plan.stdout[-3000:]
            pushed = run(node1, push)
            assert pushed.returncode == 0, pushed.stdout[-3000:]
            assert f"{n}/{n} " in pushed.stdout and PASSWORD not in pushed.stdout
            again = run(node1, push)
            assert again.returncode == 0 and "0 manifest(s) written, 0 blob(s) uploaded" in again.stdout, \
                again.stdout[-2000:]
        with TIMER.stage("e2e own registry: pulled back by digest from node2"):
            node2.write_file("/root/fetch.py", FETCH)
            for img in bundle["images"]:
                host, rest = img["ref"].split("/", 1)
                repo = rest.rsplit(":", 1)[0]
                url = f"https://{pull_from.split('/')[0]}/v2/{PREFIX}/{host}/{repo}/manifests/{img['digest']}"
                got = json.loads(node2.sh(f"python3 /root/fetch.py {shlex.quote(url)} /root/own-ca.pem "
                                          f"{shlex.quote(img['mediaType'])}"))
                assert got == {"digest": img["digest"], "header": img["digest"]}, (img["ref"], got)
        with TIMER.stage("e2e own registry: install node1 + node2 with --registry"):
            first = run(node1, scenario.install_command(
                bundle_dir, ["--control-plane", node1.ip, "--workers", node2.ip],
                extra=("--registry", pull_from, "--registry-ca", "/root/own-ca.pem")))
        assert first.returncode == 0, first.stdout[-6000:]
        assert f"your registry {pull_from}: reachable, TLS trusted with CA" in first.stdout
        assert "every image of the bundle present" in first.stdout
        record = json.loads(node1.read_file("/etc/airgap-bundler/cluster.json"))
        assert record["registry"] == {"address": f"{node3.ip}:{PULL_PORT}", "prefix": PREFIX,
                                      "ca_sha256": fingerprint(ca.read_text())}
        assert PASSWORD not in json.dumps(record) and "own-creds" not in json.dumps(record)
        for node in (node1, node2):
            hosts = node.read_file("/etc/containerd/certs.d/registry.k8s.io/hosts.toml")
            assert f'[host."https://{node3.ip}:{PULL_PORT}/v2/{PREFIX}/registry.k8s.io"]' in hosts, hosts
            assert node.read_file(f"/etc/containerd/certs.d/{node3.ip}:{PULL_PORT}/ca.crt") == ca.read_text()
            assert node.exec(["systemctl", "is-active", "airgap-registry"], check=False).stdout.strip() != "active"
        assert node1.exec(["test", "-e", "/etc/airgap-registry"], check=False).returncode != 0  # not installed
        with TIMER.stage("e2e own registry: ctr pulls by digest through hosts.toml on node2"):
            pause = [i for i in bundle["images"] if "/pause:" in i["ref"]][0]
            name = pause["ref"].rsplit(":", 1)[0] + "@" + pause["digest"]
            pulled = node2.exec(["ctr", "-n", "own-registry-test", "images", "pull", "--hosts-dir",
                                 "/etc/containerd/certs.d", name], check=False, timeout=120)
            listed = node2.sh("ctr -n own-registry-test images ls -q")
            node2.exec(["ctr", "-n", "own-registry-test", "images", "rm", name], check=False)
            assert pulled.returncode == 0, pulled.stdout + pulled.stderr
            assert name in listed
            storage = node3.sh(f"ls {STORAGE}/docker/registry/v2/repositories/{PREFIX}")
            assert "registry.k8s.io" in storage
    finally:
        with TIMER.stage("e2e own registry: reset, stop node3's registry"):
            reset = run(node1, f"cd {bundle_dir} && ./install.py reset -y")
            node1.sh("rm -f /root/own-ca.pem /root/own-creds /root/bad-creds")
            node2.sh("rm -f /root/own-ca.pem /root/fetch.py")
            _stop_registry(node3)
    assert reset.returncode == 0, reset.stdout[-3000:]
    assert scenario.snapshot(node3) == before3
    assert clean_trap.connections() == [], LeakTrap.describe(clean_trap.connections())
