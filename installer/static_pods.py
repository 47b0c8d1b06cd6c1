"""Stopping and starting kubeadm's static pods on a control plane, the way kubeadm's documentation says to
restart them: move the manifest out of /etc/kubernetes/manifests (the kubelet stops the pod), wait until its
container is gone, move it back, wait until it runs again. Where a manifest is while it is out is a fixed
place under the installer's own directory, so an interrupted run finds it and puts it back."""

import time

from installer.constants import KUBE_DIR, KUBECTL
from installer.errors import InstallerError
from installer.ssh import quote

MANIFESTS = "/etc/kubernetes/manifests"
PAUSED = KUBE_DIR + "/paused-manifests"
ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
STOP_TIMEOUT = 120   # the kubelet looks at its manifest directory every 20 s (fileCheckFrequency)
START_TIMEOUT = 300
POLL = 2


def manifest(pod):
    return "%s/%s.yaml" % (MANIFESTS, pod)


def paused(pod):
    return "%s/%s.yaml" % (PAUSED, pod)


def present(conn):
    """The kubeadm static pods of this host, in restart order: those whose manifest is in place or moved out by
    an interrupted run."""
    return [p for p in ORDER if conn.exists(manifest(p)) or conn.exists(paused(p))]


def running(conn, pod):
    res = conn.run("crictl ps --name=%s --state=running -q" % quote("^%s$" % pod), check=False, timeout=60)
    return res.ok and bool(res.stdout.strip())


def _wait(pred, timeout, poll=POLL):
    deadline = time.time() + timeout
    while True:
        if pred():
            return True
        if time.time() >= deadline:
            return False
        time.sleep(poll)


def stop(conn, pod, timeout=STOP_TIMEOUT):
    """Move the manifest out and wait until the pod's container is gone."""
    if conn.exists(manifest(pod)):
        conn.check("mkdir -p %s && mv -f %s %s" % (quote(conn.path(PAUSED)), quote(conn.path(manifest(pod))),
                                                  quote(conn.path(paused(pod)))), "moving the %s manifest out" % pod)
    if not _wait(lambda: not running(conn, pod), timeout):
        start_manifest(conn, pod)
        raise InstallerError("the static pod %s did not stop within %d s after its manifest was moved out"
                             % (pod, timeout), host=conn.label, command="crictl ps --name %s" % pod,
                             hint="Its manifest is back in %s; see journalctl -u kubelet" % MANIFESTS)


def start_manifest(conn, pod):
    if conn.exists(paused(pod)):
        conn.check("mv -f %s %s" % (quote(conn.path(paused(pod))), quote(conn.path(manifest(pod)))),
                   "moving the %s manifest back" % pod)


def start(conn, pod, timeout=START_TIMEOUT):
    """Move the manifest back and wait until the pod runs again (and, for the API server, answers)."""
    start_manifest(conn, pod)

    def ready():
        if not running(conn, pod):
            return False
        return pod != "kube-apiserver" or conn.run("%s get nodes -o name" % KUBECTL, check=False, timeout=30).ok
    if not _wait(ready, timeout):
        raise InstallerError("the static pod %s is not running and ready %d s after its manifest was put back"
                             % (pod, timeout), host=conn.label, command="crictl ps --name %s" % pod,
                             hint="See journalctl -u kubelet and crictl logs; the manifest is in %s" % MANIFESTS)


def restart(conn, pod, stop_timeout=STOP_TIMEOUT, start_timeout=START_TIMEOUT):
    stop(conn, pod, stop_timeout)
    start(conn, pod, start_timeout)
