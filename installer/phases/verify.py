"""verify (a check phase, last): all nodes Ready, kube-system pods Running, every image on every node from
the bundle."""

import json
import time

from installer.bundle import split_ref
from installer.constants import KUBECTL
from installer.errors import InstallerError
from installer.phases.base import Phase



def node_problems(nodes_json, expected_names):
    """Names of expected nodes that are missing or not Ready, from `kubectl get nodes -o json`."""
    ready = {}
    for item in nodes_json.get("items", []):
        name = item["metadata"]["name"]
        conds = item.get("status", {}).get("conditions", [])
        ready[name] = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
    problems = []
    for n in expected_names:
        if n not in ready:
            problems.append("%s has not joined" % n)
        elif not ready[n]:
            problems.append("%s is not Ready" % n)
    return problems


def pod_problems(pods_json, ignore_nodes=()):
    """Pods not Running; those on `ignore_nodes` (hosts skipped as unreachable) do not count."""
    out = []
    for item in pods_json.get("items", []):
        if (item.get("spec") or {}).get("nodeName") in ignore_nodes:
            continue
        phase = item.get("status", {}).get("phase")
        if phase not in ("Running", "Succeeded"):
            out.append("%s is %s" % (item["metadata"]["name"], phase))
    return out


def foreign_images(images_json, bundle_refs):
    """Images on a node (crictl images -o json) that are not in the bundle."""
    allowed = set()
    for ref in bundle_refs:
        host, repo, tag = split_ref(ref)
        allowed.add("%s/%s" % (host, repo))
    out = []
    for img in images_json.get("images", []):
        names = (img.get("repoTags") or []) + (img.get("repoDigests") or [])
        ok = False
        for n in names:
            h, r, _ = split_ref(n)
            full = "%s/%s" % (h, r)
            if full in allowed or any(full.endswith("/" + a) for a in allowed):
                ok = True
        if names and not ok:
            out.append(names[0])
    return out


class Verify(Phase):
    name = "verify"
    title = "verify the cluster"
    kind = "check"
    check_in_plan = False  # there is no cluster to verify before the install ran

    def hosts(self, ctx):
        return [ctx.first_cp]

    def expected_names(self, ctx):
        """The nodes that must be Ready (hosts skipped as unreachable are not expected to be)."""
        return [ctx.node_name(h) for h in ctx.nodes if h.label not in ctx.skipped]

    def check(self, ctx, timeout=None, interval=5):
        """Poll until healthy or `timeout`; raise InstallerError with what is still wrong."""
        conn = ctx.connections[ctx.first_cp.label]
        names = self.expected_names(ctx)
        deadline = time.time() + (timeout if timeout is not None else ctx.options.verify_timeout)
        while True:
            problems = []
            res = conn.run("%s get nodes -o json" % KUBECTL, check=False)
            problems += node_problems(json.loads(res.stdout), names) if res.ok else ["kubectl get nodes failed"]
            res = conn.run("%s -n kube-system get pods -o json" % KUBECTL, check=False)
            skipped = [ctx.node_name(h) for h in ctx.nodes if h.label in ctx.skipped]
            problems += pod_problems(json.loads(res.stdout), skipped) if res.ok else ["kubectl get pods failed"]
            if not problems or time.time() > deadline:
                break
            time.sleep(interval)
        refs = [i["ref"] for i in ctx.bundle.images]
        for h in ctx.nodes:
            c = ctx.connections.get(h.label) if ctx.is_new(h) else None
            res = c.run("crictl images -o json", check=False) if c else None
            if res is not None and res.ok:
                bad = foreign_images(json.loads(res.stdout), refs)
                if bad:
                    problems.append("%s has images that are not in the bundle: %s" % (h.label, ", ".join(bad[:5])))
        if problems:
            raise InstallerError("the cluster is not healthy: %s" % "; ".join(problems[:10]), phase="verify",
                                 command="%s get nodes,pods -A" % KUBECTL,
                                 hint="Inspect with kubectl on %s, then run ./install.py again" % ctx.first_cp.label)
        return [(None, "cluster verified: all nodes Ready, kube-system pods Running, images from the bundle")]
