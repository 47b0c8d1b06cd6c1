"""installer.certs: kubeadm's check-expiration output in its real formats (fixtures/certs), openssl end dates
of real certificates (made here with openssl), the per-host report and the status/plan warnings."""

import datetime
import os
import subprocess

import pytest

from installer import certs
from installer.ssh import Local

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "certs")


def fixture(name):
    with open(os.path.join(FIX, name)) as f:
        return f.read()


def test_parse_kubeadm_1_30_both_tables():
    rows = certs.parse_check_expiration(fixture("kubeadm-1.30-check-expiration.txt"))
    names = [r["name"] for r in rows if not r["authority"]]
    assert names[0] == "admin.conf" and "super-admin.conf" in names and len(names) == 11
    cas = [r for r in rows if r["authority"]]
    assert [r["name"] for r in cas] == ["ca", "etcd-ca", "front-proxy-ca"]
    api = next(r for r in rows if r["name"] == "apiserver-etcd-client")
    assert api["expires"] == datetime.datetime(2027, 1, 4, 12, 42) and api["ca"] == "etcd-ca"
    assert not api["external"] and not api["missing"]
    assert cas[0]["expires"] == datetime.datetime(2036, 1, 2, 12, 42)


def test_parse_expired_and_missing_rows():
    rows = certs.parse_check_expiration(fixture("kubeadm-1.19-check-expiration-expired.txt"))
    missing = [r for r in rows if r["missing"]]
    assert [r["name"] for r in missing] == ["front-proxy-client"]
    admin = next(r for r in rows if r["name"] == "admin.conf")
    assert admin["ca"] == "" and admin["expires"] == datetime.datetime(2020, 10, 15, 8, 25)
    now = datetime.datetime(2021, 1, 1)
    assert certs.status_of(admin["expires"], now) == "expired"
    assert certs.days_left(admin["expires"], now) < 0


def test_parse_1_16_format_without_ca_column():
    rows = certs.parse_check_expiration(fixture("kubeadm-1.16-check-expiration.txt"))
    assert len(rows) == 6 and all(r["ca"] == "" and not r["authority"] for r in rows)
    assert rows[2]["name"] == "apiserver-kubelet-client" and rows[2]["expires"].day == 26


def test_parse_enddate_formats():
    assert certs.parse_enddate("notAfter=Dec  7 01:42:00 2119 GMT\n") == datetime.datetime(2119, 12, 7, 1, 42)
    assert certs.parse_enddate("notAfter=May 17 09:48:03 2020 GMT") == datetime.datetime(2020, 5, 17, 9, 48, 3)
    assert certs.parse_enddate("unable to load certificate") is None


def make_cert(path, days):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", path + ".key", "-out",
                    path, "-days", str(days), "-subj", "/CN=test"], check=True, capture_output=True)


@pytest.fixture(scope="module")
def host_root(tmp_path_factory):
    """A host's files (read only by the tests): certificates made once for the module."""
    root = str(tmp_path_factory.mktemp("certs") / "host")
    make_cert(root + "/etc/kubernetes/pki/ca.crt", 3650)
    make_cert(root + "/etc/kubernetes/pki/apiserver.crt", 365)
    make_cert(root + "/etc/kubernetes/pki/etcd/server.crt", 365)
    make_cert(root + "/var/lib/kubelet/pki/kubelet.crt", 30)  # expiring
    make_cert(root + "/etc/airgap-registry/pki/ca.crt", 3650)
    make_cert(root + "/etc/airgap-registry/pki/registry.crt", 3650)
    with open(root + "/var/lib/kubelet/pki/kubelet-client-current.pem", "w") as f:
        f.write("not a certificate\n")
    return root


def test_report_without_kubeadm_reads_the_files(host_root):
    rows = certs.expiry_report(Local("n1", host_root), "n1", control_plane=True, serve=True, use_kubeadm=False)
    by = dict((r["name"], r) for r in rows)
    assert by["ca"]["source"] == "ca" and by["ca"]["days"] > 3600
    assert by["apiserver"]["source"] == "kubeadm" and 360 <= by["apiserver"]["days"] <= 365
    assert by["etcd-server"]["path"] == "/etc/kubernetes/pki/etcd/server.crt"
    assert by["kubelet.crt"]["status"] == "warn" and 28 <= by["kubelet.crt"]["days"] <= 30
    assert by["kubelet-client-current.pem"]["status"] == "unreadable"
    assert by["registry server"]["source"] == "registry" and by["registry CA"]["status"] == "ok"
    assert "kubelet-server-current.pem" not in by  # absent files are not rows


def test_report_of_a_worker_is_ca_and_kubelet_only(host_root):
    rows = certs.expiry_report(Local("w", host_root), "w", use_kubeadm=False)
    assert sorted(r["name"] for r in rows) == ["ca", "kubelet-client-current.pem", "kubelet.crt"]


def test_report_uses_kubeadm_when_it_answers(host_root, tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "kubeadm").write_text("#!/bin/sh\ncat %s\n" % os.path.join(FIX, "kubeadm-1.30-check-expiration.txt"))
    (bindir / "kubeadm").chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ["PATH"]))
    now = datetime.datetime(2026, 12, 1)
    rows = certs.expiry_report(Local("n1", host_root), "n1", control_plane=True, now=now)
    kube = [r for r in rows if r["source"] == "kubeadm"]
    assert len(kube) == 11 and all(r["path"] is None and r["status"] == "warn" for r in kube)  # 34 days
    assert kube[0]["days"] == 34 and certs.status_of(datetime.datetime(2027, 1, 4, 12, 42), now) == "warn"
    assert [r["name"] for r in rows if r["source"] == "ca"] == ["ca", "etcd-ca", "front-proxy-ca"]


def test_table_and_describe(host_root):
    rows = certs.expiry_report(Local("n1", host_root), "n1", use_kubeadm=False)
    text = certs.table(rows)
    assert text.splitlines()[0].split() == ["HOST", "SOURCE", "CERTIFICATE", "EXPIRES", "DAYS", "LEFT", "STATUS"]
    warn = next(r for r in rows if r["status"] == "warn")
    assert certs.describe(warn).startswith("kubelet kubelet.crt: ") and "day(s) left" in certs.describe(warn)


def test_certs_check_command_on_a_recorded_cluster(tmp_path, host_root, capsys):
    """./install.py certs check --json end to end on this machine (a Local host rooted in a temp dir: no kubeadm
    here, so the files are read with openssl)."""
    import json

    from installer.cli import main
    from tests.installer.conftest import make_bundle
    b = make_bundle(str(tmp_path / "b"))
    data = {"state": "installed", "bundle": {"name": "k8s"}, "options": {}, "history": [],
            "inventory": {"hosts": [{"address": "127.0.0.1", "role": "control_plane", "nodeName": "cp1"}]}}
    with open(os.path.join(b.root, "cluster.json"), "w") as f:
        json.dump(data, f)
    assert main(["certs", "check", "--json", "--bundle", b.root, "--root", host_root]) == 0
    out = json.loads(capsys.readouterr().out)
    by = dict((r["name"], r) for r in out["certificates"])
    assert out["warnDays"] == 90 and by["kubelet.crt"]["status"] == "warn" and by["apiserver"]["status"] == "ok"
    assert by["registry server"]["host"] == "127.0.0.1"
    assert not os.path.exists(os.path.join(host_root, "etc/airgap-bundler/lock"))
    assert main(["certs", "check", "--bundle", b.root, "--root", host_root]) == 0
    text = capsys.readouterr().out
    assert "HOST" in text and "certs check: 7 certificate(s), 2 below 90 days or expired/missing" in text


class _FakeConn:
    """Files that exist, and the commands run (static pods: a container runs while its manifest is in place)."""

    label = "cp"

    def __init__(self, files):
        self.files = set(files)
        self.ran = []

    def path(self, p):
        return p

    def exists(self, p):
        return p in self.files

    def check(self, cmd, what=None, **kw):
        self.ran.append(cmd)
        if cmd.startswith("mkdir -p") and " mv -f " in cmd:
            src, dst = cmd.split(" mv -f ")[1].split()
            self.files.discard(src)
            self.files.add(dst)
        elif cmd.startswith("mv -f "):
            src, dst = cmd.split()[2:4]
            self.files.discard(src)
            self.files.add(dst)
        return self.run(cmd)

    def run(self, cmd, check=False, **kw):
        from installer.ssh import Result
        if cmd.startswith("crictl ps"):
            pod = cmd.split("'^")[1].split("$'")[0]
            self.ran.append("ps %s" % pod)
            on = "/etc/kubernetes/manifests/%s.yaml" % pod in self.files
            return Result(cmd, 0, "abc\n" if on else "", "")
        return Result(cmd, 0, "", "")


class _Journal:
    def __init__(self, data=None):
        self.data = data or {"phases": {}, "files": {}}
        self.saves = 0

    def save(self):
        self.saves += 1


def test_renew_restarts_pods_one_by_one_and_resumes(bundle):
    from installer import static_pods
    from installer.certs_renew import STATE_KEY, RenewControlPlane
    from tests.installer.conftest import make_ctx
    ctx = make_ctx(bundle)
    ctx.pod_stop_timeout = ctx.pod_start_timeout = 5
    manifests = [static_pods.manifest(p) for p in static_pods.ORDER]
    # an earlier run renewed, restarted etcd, then stopped with the API server's manifest moved out
    conn = _FakeConn(manifests[:1] + [static_pods.paused("kube-apiserver")] + manifests[2:])
    journal = _Journal({"phases": {}, "files": {}, STATE_KEY: {"renewed": True, "restarted": ["etcd"]}})
    ctx.journals["cp"] = journal
    phase = RenewControlPlane()
    assert phase.steps(conn, journal) == [("restart", "kube-apiserver"), ("restart", "kube-controller-manager"),
                                          ("restart", "kube-scheduler"), ("kubeconfig", None)]
    done = phase.run(ctx, ctx.first_cp, conn, None, journal)
    assert done == ["restarted kube-apiserver", "restarted kube-controller-manager", "restarted kube-scheduler"]
    assert "kubeadm certs renew all" not in conn.ran  # not renewed twice
    pods = [c.split()[1] for c in conn.ran if c.startswith("ps ")]
    assert [p for i, p in enumerate(pods) if i == 0 or pods[i - 1] != p] == list(static_pods.ORDER[1:])
    assert set(manifests) <= conn.files and STATE_KEY not in journal.data and journal.data["certs_renewed"]
    fresh = RenewControlPlane().steps(_FakeConn(manifests), _Journal())
    assert fresh[0] == ("renew", None) and [s[1] for s in fresh[1:-1]] == list(static_pods.ORDER)


def test_status_and_plan_warnings_name_each_expiring_certificate(bundle, host_root):
    from tests.installer.conftest import make_ctx
    ctx = make_ctx(bundle, cp="10.0.0.11", workers="10.0.0.12")
    ctx.connections = dict((h.label, Local(h.label, host_root)) for h in ctx.all_hosts)
    ctx.skipped = {"10.0.0.12"}
    out = certs.warnings(ctx)
    assert [label for label, _ in out] == ["10.0.0.11", "10.0.0.11"]
    assert out[0][1].startswith("warning: certificate kubelet kubelet.crt: 2") and "certs renew" in out[0][1]
    assert "kubelet-client-current.pem (/var/lib/kubelet/pki/kubelet-client-current.pem): not a readable" in out[1][1]
