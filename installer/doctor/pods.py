"""Pods layer (--pod NS/NAME): its events and container states, classified: ImagePullBackOff -> is the image
in the bundle and in the bundled registry; x509 -> the node's trust store and containerd hosts.toml;
CrashLoopBackOff -> the previous container's exit code and log tail; Pending -> the scheduler's reason
(taints, resources)."""

import json

from installer import constants as C
from installer.bundle import split_ref
from installer.doctor import cluster
from installer.doctor.findings import ERROR, WARNING, excerpt, finding, layer_check
from installer.render.containerd import CERTS_D
from installer.ssh import quote

LAYER = "pods"
PULL_REASONS = ("ImagePullBackOff", "ErrImagePull", "ErrImageNeverPull", "InvalidImageName")


def parse_target(text):
    """'NS/NAME' (or NAME: the default namespace) -> (ns, name)."""
    ns, _, name = (text or "").rpartition("/")
    return ns or "default", name


def same_image(a, b):
    """Two references to the same image (docker.io defaults, a local-registry prefix of the bundled registry)."""
    return split_ref(a) == split_ref(b)


def in_bundle(image, bundle_refs, registry):
    """The bundle reference `image` stands for (also when spelt with the bundled registry's address), or None."""
    candidates = [image]
    if image.startswith(registry + "/"):
        candidates.append(image[len(registry) + 1:])
    for c in candidates:
        for ref in bundle_refs:
            if same_image(c, ref):
                return ref
    return None


def warning_events(events_json):
    rows = []
    for e in sorted((events_json or {}).get("items", []),
                    key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or ""):
        if e.get("type") == "Warning":
            rows.append("%s %s (x%s): %s" % (e.get("lastTimestamp") or e.get("eventTime") or "",
                                             e.get("reason"), e.get("count") or 1, e.get("message", "")))
    return rows


def classify_pod(pod, events_json, target, command, events_command, bundle_refs=(), registry="",
                 registry_codes=None, node_trust=None, previous_logs=None, hosts_toml=None, taints=None):
    """Findings for one pod. registry_codes: {image: HTTP code of its manifest in the bundled registry};
    node_trust: the `trust` section of the pod's node probe; previous_logs: {container: (command, text)};
    hosts_toml: {image: (command, text)} of containerd's mirror file for the image's registry on the node;
    taints: (command, text) listing the nodes' taints."""
    out = []
    if pod is None:
        return [finding("POD-NOT-FOUND", ERROR, LAYER, target, "no such pod", "Check the name and namespace "
                        "(kubectl get pods -A | grep NAME)", command, "NotFound")]
    status = pod.get("status") or {}
    node = (pod.get("spec") or {}).get("nodeName")
    events = warning_events(events_json)
    statuses = list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])
    for cs in statuses:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason, message = waiting.get("reason", ""), waiting.get("message", "")
        cname, image = cs.get("name"), cs.get("image", "")
        line = "container %s: %s: %s" % (cname, reason, message)
        pulls = [e for e in events if "pull" in e.lower() and (image in e or "x509" in e)]
        if reason in PULL_REASONS:
            text = "\n".join([line] + pulls[-3:])
            if "x509" in message or any("x509" in e for e in pulls):
                f = finding("POD-IMAGE-X509", ERROR, LAYER, target, "%s cannot be pulled: the registry's "
                            "certificate is not trusted on %s" % (image, node),
                            "On %s: the registry CA must be at %s (update-ca-trust extract) and "
                            "/etc/containerd/certs.d/<registry>/hosts.toml must name it (ca = ...); re-running "
                            "./install.py restores both" % (node, C.TRUST_ANCHOR), command, text)
                if node_trust is not None:
                    f.add("ls -1 %s /etc/containerd/certs.d" % C.TRUST_ANCHOR, node_trust.strip(), node)
                if (hosts_toml or {}).get(image):
                    f.add(hosts_toml[image][0], hosts_toml[image][1].strip(), node)
                out.append(f)
                continue
            ref = in_bundle(image, bundle_refs, registry)
            if ref is None:
                out.append(finding("POD-IMAGE-NOT-IN-BUNDLE", ERROR, LAYER, target, "%s is not in the bundle, so "
                                   "the air-gapped cluster cannot pull it" % image,
                                   "Add it to spec.images of the bundle manifest and rebuild (bundler build), or "
                                   "push it to the registry yourself", command, text))
                continue
            code = (registry_codes or {}).get(ref)
            if code not in (None, "200"):
                out.append(finding("POD-IMAGE-NOT-IN-REGISTRY", ERROR, LAYER, target, "%s is in the bundle but the "
                                   "bundled registry answers %s for it" % (ref, code),
                                   "Put the bundle's images back into the registry: ./install.py (registry phase)",
                                   command, text).add("curl -sI --cacert %s %s" % (
                                       C.CA_CERT, cluster.manifest_url(registry, ref)), "%s %s" % (code, ref)))
                continue
            out.append(finding("POD-IMAGE-PULL-FAILED", ERROR, LAYER, target, "%s cannot be pulled (%s) although "
                               "it is in the bundle and the registry" % (image, reason),
                               "Check the node's mirror configuration (/etc/containerd/certs.d/*/hosts.toml) and "
                               "that it reaches the registry (see NODE-REGISTRY-* findings)", command, text))
        elif reason == "CrashLoopBackOff":
            last = (cs.get("lastState") or {}).get("terminated") or {}
            f = finding("POD-CRASHLOOP", ERROR, LAYER, target, "container %s keeps crashing (exit code %s, %s; "
                        "%s restarts)" % (cname, last.get("exitCode"), last.get("reason"), cs.get("restartCount")),
                        "Read the previous log below; exit 137/OOMKilled: raise the memory limit; 1/Error: the "
                        "application's own error (configuration, a dependency it cannot reach)",
                        command, "%s\nlastState.terminated: exitCode=%s reason=%s finishedAt=%s" % (
                            line, last.get("exitCode"), last.get("reason"), last.get("finishedAt")))
            logs = (previous_logs or {}).get(cname)
            if logs:
                f.add(logs[0], excerpt(logs[1]))
            out.append(f)
        elif reason and reason not in ("ContainerCreating", "PodInitializing"):
            out.append(finding("POD-CONTAINER-WAITING", ERROR, LAYER, target, "container %s is waiting: %s"
                               % (cname, reason), "See the message and events", command, line))
    if status.get("phase") == "Pending" and not node:
        cond = next((c for c in status.get("conditions", []) if c.get("type") == "PodScheduled"), {})
        sched = [e for e in events if "FailedScheduling" in e]
        msg = cond.get("message") or (sched[-1] if sched else "")
        fix = "The scheduler's reason is quoted: "
        if "taint" in msg:
            fix += "add a toleration to the pod, or remove the taint (kubectl taint nodes NODE KEY-)"
        elif "Insufficient" in msg:
            fix += "lower the pod's requests or add nodes (./install.py add-node)"
        elif "affinity" in msg or "selector" in msg:
            fix += "no node matches its nodeSelector/affinity: label a node or fix the selector"
        else:
            fix += "fix what it names"
        out.append(finding("POD-UNSCHEDULABLE", ERROR, LAYER, target, "the pod is Pending and not scheduled",
                           fix, command, "PodScheduled=%s %s: %s" % (cond.get("status"), cond.get("reason"), msg)))
        if sched:
            out[-1].add(events_command, "\n".join(sched[-2:]))
        if taints and "taint" in msg:
            out[-1].add(taints[0], taints[1])
    if not out and events:
        out.append(finding("POD-WARNING-EVENTS", WARNING, LAYER, target, "%d warning event(s)" % len(events),
                           "Read them", events_command, "\n".join(events[-4:])))
    return out


@layer_check(LAYER)
def check(env, state, target_text):
    ns, name = parse_target(target_text)
    target = "pod/%s/%s" % (ns, name)
    get = "-n %s get pod %s -o json" % (quote(ns), quote(name))
    rc, text, err = env.kubectl(get)
    command = env.kubectl_command(get)
    if rc is None:
        return []
    if rc != 0:
        return [finding("POD-NOT-FOUND", ERROR, LAYER, target, "cannot read the pod", "Check the name and "
                        "namespace (kubectl get pods -A)", command, excerpt(err or text))]
    pod = _json(text)
    if not isinstance(pod, dict):  # kubectl printed something else than the object (a warning, a proxy's page)
        return [finding("POD-NOT-FOUND", ERROR, LAYER, target, "cannot read the pod (kubectl's answer is not a "
                        "JSON object)", "Run the command by hand and check kubectl's output", command,
                        excerpt(text))]
    ev = "-n %s get events --field-selector involvedObject.name=%s -o json" % (quote(ns), quote(name))
    rc, etext, _ = env.kubectl(ev)
    events = _json(etext) if rc == 0 else None
    refs = [i["ref"] for i in env.ctx.bundle.images]
    status = pod.get("status") or {}
    statuses = list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])
    codes, logs, trust = {}, {}, None
    pulling = [cs for cs in statuses if ((cs.get("state") or {}).get("waiting") or {}).get("reason") in PULL_REASONS]
    serve = env.ctx.serve_host
    if pulling and serve.label in env.connections:
        wanted = [r for r in (in_bundle(cs.get("image", ""), refs, env.ctx.registry) for cs in pulling) if r]
        if wanted:
            rc, rtext = env.run(serve.label, cluster.registry_script(env.ctx.registry, wanted))
            for ln in rtext.splitlines():
                code, _, ref = ln.strip().partition(" ")
                codes[ref] = code
    node = (pod.get("spec") or {}).get("nodeName")
    probe = (state.get("probes") or {})
    label = next((h.label for h in env.hosts if env.node_name(h) == node), None)
    if pulling and label:
        trust = (probe.get(label) or {}).get("trust")
        if trust is None:
            trust = env.run(label, "ls -1 %s /etc/containerd/certs.d 2>&1" % C.TRUST_ANCHOR)[1]
    tomls = {}
    for cs in pulling:
        if label and "x509" in json.dumps(cs) + (etext or ""):
            reg = split_ref(cs.get("image", ""))[0]
            cmd = "cat %s 2>&1" % quote("%s/%s/hosts.toml" % (CERTS_D, reg))
            tomls[cs.get("image", "")] = (cmd, env.run(label, cmd)[1])
    taints = None
    if status.get("phase") == "Pending" and not node and state.get("nodes_json"):
        taints = (state.get("nodes_cmd", "kubectl get nodes -o json"), node_taints(state["nodes_json"]))
    for cs in statuses:
        if ((cs.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff":
            args = "-n %s logs %s -c %s --previous --tail=20" % (quote(ns), quote(name), quote(cs["name"]))
            rc, ltext, lerr = env.kubectl(args)
            logs[cs["name"]] = (env.kubectl_command(args), ltext if rc == 0 else lerr)
    return classify_pod(pod, events, target, command, env.kubectl_command(ev), refs, env.ctx.registry, codes,
                        trust, logs, tomls, taints)


def node_taints(nodes_json):
    """'NODE: key=value:Effect, ...' per node (for a pod the scheduler refuses over taints)."""
    rows = []
    for item in (nodes_json or {}).get("items", []):
        ts = ["%s%s:%s" % (t.get("key"), "=" + t["value"] if t.get("value") else "", t.get("effect"))
              for t in (item.get("spec") or {}).get("taints") or []]
        rows.append("%s: %s" % (item["metadata"]["name"], ", ".join(ts) or "no taints"))
    return "\n".join(rows)


def _json(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None
