"""Version pins (installer/pins.py): the bundle repo excludes Kubernetes and the runtime, pinned installs pass
--disableexcludes, versionlock where the plugin is (detected from real probe output), status reports drift.
The exclude is also checked with the real dnf against the test upstream repos: `dnf upgrade` leaves kubelet."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from installer import facts as facts_mod
from installer import pins
from installer.changes import InstallPackages
from installer.journal import Journal
from installer.phases.media_repo import MediaRepo
from installer.phases.packages import RequestedPackages
from installer.phases.runtime import Runtime
from installer.phases.status import pin_report, pins_bundle
from installer.render import yumrepo
from installer.reset import reset_steps
from tests.installer.conftest import make_bundle, make_ctx
from tests.installer.test_packages_dns_helm import FakeConn

FIXTURES = Path(__file__).parent / "fixtures"


class NoLocksYet(FakeConn):
    """A host whose versionlock list has none of our entries (the change's `unless` check fails)."""

    def run(self, cmd, check=True, **kw):
        res = super().run(cmd, check, **kw)
        if "versionlock list" in cmd and "grep" in cmd:
            res.ok = False
        return res
EL9_CONF = "/etc/dnf/plugins/versionlock.conf"
EL7_CONF = "/etc/yum/pluginconf.d/versionlock.conf"


def probe(name: str, files: dict[str, str] | None = None):
    """A real probe output (fixtures/), with watched files added as the probe prints them."""
    text = (FIXTURES / name).read_text()
    extra = "".join(f"==> file {p}\n{base64.b64encode(c.encode()).decode()}\n" for p, c in (files or {}).items())
    return facts_mod.parse(text.replace("==> end", extra + "==> end"))


def test_the_bundle_repo_excludes_the_pinned_packages_and_the_media_repo_does_not(tmp_path):
    b = make_bundle(str(tmp_path / "b"))  # ships containerd.io and docker-ce, no runc
    ctx = make_ctx(b)
    files = MediaRepo().repo_files(ctx, ctx.first_cp, ctx.facts[ctx.first_cp.label])
    bundle_repo = files[yumrepo.BUNDLE_REPO_FILE]
    assert "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni containerd.io docker-ce\n" in bundle_repo
    assert "exclude" not in files[yumrepo.MEDIA_REPO_FILE]
    assert "exclude" not in yumrepo.bundle_repo("file:///x", [], 9)  # no pins given: none written


def test_pinned_installs_disable_excludes_and_others_do_not(tmp_path):
    b = make_bundle(str(tmp_path / "b"), manifest_packages=["socat"])
    ctx = make_ctx(b)
    w = ctx.inventory.workers[0]
    kube = [c for c in Runtime().plan(ctx, w, ctx.facts[w.label]) if isinstance(c, InstallPackages)][0]
    assert " install --disableexcludes=all --disableplugin=versionlock " in kube.command()
    assert pins.install_flags() == "--disableexcludes=all --disableplugin=versionlock"
    other = RequestedPackages().plan(ctx, w, ctx.facts[w.label])[0]
    assert other.command().endswith("install socat")


@pytest.mark.parametrize(("fixture", "files", "expected"), [
    ("probe-rocky-9.3.txt", {}, False),
    ("probe-rocky-9.3.txt", {EL9_CONF: "[main]\nenabled = 1\nlocklist = /etc/dnf/plugins/versionlock.list\n"}, True),
    ("probe-rocky-9.3.txt", {EL9_CONF: "[main]\nenabled=0\n"}, False),
    ("probe-centos-7.9.txt", {EL7_CONF: "[main]\nenabled = 1\nlocklist = /etc/yum/pluginconf.d/versionlock.list\n"},
     True),
    ("probe-rocky-8.9.txt", {}, False),
])
def test_versionlock_is_detected_from_the_plugin_config_never_required(fixture, files, expected):
    assert pins.has_versionlock(probe(fixture, files)) is expected


def test_versionlock_entries_are_written_after_the_install_and_reset_deletes_them(tmp_path):
    b = make_bundle(str(tmp_path / "b"))
    ctx = make_ctx(b)
    w = ctx.inventory.workers[0]
    assert not [c for c in Runtime().plan(ctx, w, ctx.facts[w.label]) if "versionlock" in c.describe()]
    assert set(pins.VERSIONLOCK_CONFS) <= set(Runtime().watched_files(ctx, w))  # gathered, so it can be seen
    ctx.facts[w.label] = probe("probe-rocky-9.3.txt", {EL9_CONF: "[main]\nenabled = 1\n"})
    changes = Runtime().plan(ctx, w, ctx.facts[w.label])
    [lock] = [c for c in changes if "versionlock" in c.describe()]
    assert lock.describe() == "versionlock containerd.io kubeadm kubectl kubelet at the installed versions"
    assert "versionlock add containerd.io kubeadm kubectl kubelet" in lock.cmd
    assert lock.cmd.startswith("if ") and "versionlock list >/dev/null 2>&1; then" in lock.cmd  # no plugin: no-op
    conn = NoLocksYet(installed=[])
    journal = Journal(conn)
    assert lock.apply(conn, journal)
    assert lock.cmd in conn.commands
    steps = [cmd for _, cmd in reset_steps(journal, has_kubeadm=False)]
    assert any("versionlock delete containerd.io kubeadm kubectl kubelet" in s and s.endswith("fi") for s in steps)


def test_relock_moves_the_entries_to_the_upgraded_versions():
    nevras = ["kubelet-1.31.5-150500.1.1.x86_64", "kubeadm-1.31.5-150500.1.1.x86_64", "kubectl-0:1.31.5-1.x86_64"]
    delete, add = pins.relock_commands(nevras)
    assert "versionlock delete kubeadm kubectl kubelet >/dev/null 2>&1 || true" in delete
    assert ("versionlock add kubeadm-1.31.5-150500.1.1.x86_64 kubectl-0:1.31.5-1.x86_64 "
            "kubelet-1.31.5-150500.1.1.x86_64") in add
    assert all(c.startswith("if ") for c in (delete, add))  # nothing happens on a host without the plugin
    assert pins.relock_commands([]) == []
    assert pins.relock_commands(nevras, probe("probe-rocky-9.3.txt")) == []  # the host has no plugin
    with_plugin = probe("probe-rocky-9.3.txt", {EL9_CONF: "[main]\nenabled = 1\n"})
    assert pins.relock_commands(nevras, with_plugin) == [delete, add]


def test_status_reports_each_pinned_package_and_names_drift(tmp_path):
    b = make_bundle(str(tmp_path / "b"))
    b.data["packages"] += [{"name": n, "version": "1.30.4"} for n in ("kubelet", "kubectl")]
    f = probe("probe-rocky-9.3.txt")  # a real EL9 worker: kube 1.30.4, containerd.io 1.6.28
    lines = pin_report(b, f, {"kubernetes": "1.30.4"})
    assert lines[0] == "version pins: 1 drifted (containerd.io); no versionlock plugin (repo exclude only)"
    assert "  kubelet 1.30.4 installed, bundle says 1.30.4: ok" in lines
    assert "  kubeadm 1.30.4 installed, bundle says 1.30.4: ok" in lines
    [drift] = [ln for ln in lines if "containerd.io" in ln and "DRIFT" in ln]
    assert drift.startswith("  containerd.io 1.6.28 installed, bundle says 1.7.20: DRIFT")
    assert "--disableexcludes=all" in drift and "containerd.io-1.7.20" in drift
    # the cluster record wins over the bundle for the Kubernetes release (after an upgrade it says the new one)
    moved = pin_report(b, f, {"kubernetes": "1.31.5"})
    assert "  kubelet 1.30.4 installed, bundle says 1.31.5: DRIFT" in " ".join(moved)
    assert pin_report(make_bundle(str(tmp_path / "bin"), install="binaries"), f, None) == []


def test_status_after_an_upgrade_judges_pins_by_the_recorded_bundle_not_the_old_one_it_runs_from(tmp_path):
    old = make_bundle(str(tmp_path / "old"))  # ships containerd.io 1.7.20
    new = make_bundle(str(tmp_path / "new"))
    new.data["packages"][0]["version"] = "1.6.28"  # what the upgrade put on the host
    (tmp_path / "new" / "bundle.json").write_text(json.dumps(new.data))
    f = probe("probe-rocky-9.3.txt")  # containerd.io 1.6.28 installed
    record = {"kubernetes": "1.30.4", "bundle": {"dir": str(tmp_path / "new")}}
    assert pins_bundle(old, record).root == str(tmp_path / "new")
    assert pin_report(pins_bundle(old, record), f, record)[0].startswith("version pins: all ok")
    assert "DRIFT" in " ".join(pin_report(old, f, record))  # what status said from the old bundle
    assert pins_bundle(old, {"bundle": {"dir": str(tmp_path / "gone")}}) is old
    assert pins_bundle(old, {"bundle": {"dir": old.root}}) is old and pins_bundle(old, None) is old


FAKE_DNF = """#!/bin/sh
# TEST DOUBLE of dnf's versionlock plugin: list/delete/add NAME on $LOCKS; `add` locks the version in $INSTALLED
echo "dnf $*" >> "$CALLS"
[ "$1" = "-q" ] && shift
[ "$1" = versionlock ] && [ -z "$NO_PLUGIN" ] || { echo "No such command: $1" >&2; exit 1; }
case "$2" in
  list) cat "$LOCKS" ;;
  delete) grep -v "^$3-[0-9]" "$LOCKS" > "$LOCKS.tmp"; mv "$LOCKS.tmp" "$LOCKS" ;;
  add) awk -v n="$3" '$1 == n {print $1 "-0:" $2 "-150500.1.1.*"}' "$INSTALLED" >> "$LOCKS" ;;
esac
"""


FAKE_RPM = """#!/bin/sh
# TEST DOUBLE of `rpm -q --qf '%{VERSION}-%{RELEASE}' NAME`, from $INSTALLED; every call counted in $CALLS
echo "rpm $*" >> "$CALLS"
awk -v n="$4" '$1 == n {printf "%s-150500.1.1", $2}' "$INSTALLED"
"""


def test_an_upgrade_moves_the_versionlock_entries_of_dependencies_it_pulled_along(tmp_path):
    from installer.upgrade.phases import install_kube

    (tmp_path / "bin").mkdir()
    for name, text in (("dnf", FAKE_DNF), ("rpm", FAKE_RPM)):
        (tmp_path / "bin" / name).write_text(text)
        (tmp_path / "bin" / name).chmod(0o755)
    locks, installed = tmp_path / "locks", tmp_path / "installed"
    locks.write_text("kubelet-0:1.30.4-150500.1.1.*\ncri-tools-0:1.30.1-150500.1.1.*\n")
    installed.write_text("kubelet 1.30.4\ncri-tools 1.32.1\nkubernetes-cni 1.4.0\n")  # kubeadm 1.31 pulled cri-tools
    calls = tmp_path / "calls"
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}", LOCKS=str(locks), INSTALLED=str(installed),
               CALLS=str(calls))
    [cmd] = pins.follow_installed(["kubelet", "cri-tools", "kubernetes-cni"])
    subprocess.run(["sh", "-c", cmd], env=env, check=True, timeout=30)
    assert sorted(locks.read_text().split()) == ["cri-tools-0:1.32.1-150500.1.1.*", "kubelet-0:1.30.4-150500.1.1.*"]
    # kubelet's entry is at the installed version already: not rewritten (only cri-tools' delete and add)
    assert [c for c in calls.read_text().splitlines() if " delete " in c or " add " in c] == [
        "dnf -q versionlock delete cri-tools", "dnf -q versionlock add cri-tools"]
    before = locks.read_text()
    subprocess.run(["sh", "-c", cmd], env=dict(env, NO_PLUGIN="1"), check=True, timeout=30)  # no plugin: nothing
    assert locks.read_text() == before and pins.follow_installed([]) == []
    # the upgrade's package step: the asked packages relocked, the other kube packages' entries follow what is installed
    text = install_kube(["kubeadm"], (1, 31, 1))
    assert "versionlock add kubeadm-1.31.1" in text and "versionlock add cri-tools" in text
    assert "versionlock add kubeadm >" not in text


# -- the real dnf, against the test upstream's repos ------------------------------------------------------------
def _dnf(root: Path, reposdir: Path, *args: str) -> subprocess.CompletedProcess:
    conf = root / "etc" / "dnf" / "dnf.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("[main]\n")
    # --noplugins: the host's dnf plugins (e.g. `local`, which keeps installed RPMs in a host-wide repo) stay out
    cmd = ["dnf", "-c", str(conf), "--installroot", str(root), "--releasever", "9", f"--setopt=reposdir={reposdir}",
           "--noplugins", "--nogpgcheck", "-y", f"--setopt=cachedir={root}/var/cache/dnf",
           "--setopt=install_weak_deps=False", "--setopt=best=True", "--setopt=metadata_expire=0",
           "--setopt=module_platform_id=platform:el9", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=dict(os.environ, LC_ALL="C.UTF-8"))


def _installed(root: Path, name: str) -> str:
    r = subprocess.run(["rpm", "--root", str(root), "-q", "--qf", "%{VERSION}", name], capture_output=True,
                       text=True)
    return r.stdout.strip()


@pytest.mark.skipif(not shutil.which("dnf"), reason="needs dnf (the test upstream's tools)")
def test_dnf_upgrade_does_not_move_pinned_packages_installed_with_the_flags(tmp_path, yum_repos):
    reposdir = tmp_path / "repos.d"
    reposdir.mkdir()
    bundle = make_bundle(str(tmp_path / "b"))
    (reposdir / "airgap-bundle.repo").write_text(yumrepo.bundle_repo(yum_repos.url("extras"), [], 9,
                                                                     exclude=pins.exclude_value(bundle)))
    (reposdir / "airgap-media.repo").write_text(yumrepo.media_repo([("airgap-media", "media",
                                                                     yum_repos.url("media"), [])]))
    root = tmp_path / "root"
    old = ["kubeadm-1.29.8", "kubelet-1.29.8", "kubectl-1.29.8"]
    refused = _dnf(root, reposdir, "install", *old)
    assert refused.returncode != 0 and "exclud" in (refused.stdout + refused.stderr).lower()
    installed = _dnf(root, reposdir, "install", *pins.install_flags().split(), *old)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert _installed(root, "kubelet") == "1.29.8"
    upgraded = _dnf(root, reposdir, "upgrade")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert _installed(root, "kubelet") == "1.29.8" and _installed(root, "kubeadm") == "1.29.8"
    # the same upgrade without the pins moves them (so the check above means something)
    (reposdir / "airgap-bundle.repo").write_text(yumrepo.bundle_repo(yum_repos.url("extras"), [], 9))
    moved = _dnf(root, reposdir, "upgrade")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert _installed(root, "kubelet") == "1.30.4"
