"""Operator mistakes end in one paragraph on stderr and a non-zero exit, never a traceback."""

import os

import pytest

from installer.cli import main

from .conftest import make_bundle


def run(capsys, argv):
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_typo_in_inventory(tmp_path, capsys):
    b = make_bundle(str(tmp_path / "b"))
    inv = tmp_path / "inv.ini"
    inv.write_text("[control_plane]\ncp1 ansible_hsot=10.0.0.11\n")
    rc, out, err = run(capsys, ["plan", "-i", str(inv), "--bundle", b.root, "--root", str(tmp_path / "r")])
    assert rc == 1
    assert err.startswith(f"error: {inv} line 2: unknown host variable 'ansible_hsot' (did you mean 'ansible_host'?)")
    assert "Traceback" not in err and err.count("\n") == 1


def test_no_hosts(tmp_path, capsys):
    b = make_bundle(str(tmp_path / "b"))
    rc, _, err = run(capsys, ["--bundle", b.root])
    assert rc == 1 and "no hosts given" in err


def test_tampered_bundle_stops_before_hosts(tmp_path, capsys):
    b = make_bundle(str(tmp_path / "b"))
    with open(os.path.join(b.root, "manifests", "calico.yaml"), "a") as f:
        f.write("# changed\n")
    # 192.0.2.1 (TEST-NET) would hang if contacted: the bundle check must come first
    rc, out, err = run(capsys, ["install", "--control-plane", "127.0.0.1", "--workers", "192.0.2.1",
                                "--bundle", b.root, "--root", str(tmp_path / "r")])
    assert rc == 1
    assert "manifests/calico.yaml: content differs from SHA256SUMS" in err and "Nothing was changed on any host" in err
    assert "connecting" not in out


def test_el9_bundle_on_this_host_is_refused(tmp_path, capsys):
    """This Debian machine as the only host: preflight refuses it with a clear reason and changes nothing."""
    b = make_bundle(str(tmp_path / "b"))
    media = tmp_path / "dvd"
    (media / "BaseOS" / "repodata").mkdir(parents=True)
    (media / "BaseOS" / "repodata" / "repomd.xml").write_text("<x/>")
    (media / ".treeinfo").write_text("[general]\nversion = 9.4\n")
    root = tmp_path / "r"
    root.mkdir()
    rc, out, err = run(capsys, ["plan", "--control-plane", "127.0.0.1", "--bundle", b.root, "--media", str(media),
                                "--root", str(root)])
    assert rc == 1, out
    assert "preflight found" in err and "the bundle is for el9 but the host runs" in err
    assert "bundle OK" in out
    assert not (root / "etc").exists() and not (root / "var").exists()  # nothing written, not even a log


def test_missing_media(tmp_path, capsys):
    b = make_bundle(str(tmp_path / "b"))
    rc, _, err = run(capsys, ["plan", "--control-plane", "127.0.0.1", "--bundle", b.root, "--iso",
                              str(tmp_path / "nope.iso"), "--root", str(tmp_path / "r")])
    assert rc == 1 and "the ISO file %s does not exist" % (tmp_path / "nope.iso") in err


@pytest.mark.skipif(not os.path.exists("/usr/bin/ssh"), reason="ssh client needed")
def test_unreachable_host(tmp_path, capsys):
    b = make_bundle(str(tmp_path / "b"))
    media = tmp_path / "dvd"
    (media / "BaseOS" / "repodata").mkdir(parents=True)
    (media / "BaseOS" / "repodata" / "repomd.xml").write_text("<x/>")
    # 127.0.0.1 is local; port 1 on 127.0.0.2 refuses the connection
    rc, _, err = run(capsys, ["plan", "--control-plane", "127.0.0.1", "--workers", "127.0.0.2", "--ssh-port", "1",
                              "--bundle", b.root, "--media", str(media), "--root", str(tmp_path / "r")])
    assert rc == 1
    assert "127.0.0.2" in err and ("refused" in err or "unreachable" in err)


def test_plan_and_status_keep_their_log_out_of_the_hosts_log_dir(tmp_path):
    """plan/status change nothing, not even the serving host's /var/log/airgap-installer: a temporary log."""
    from installer.output import Output

    root = tmp_path / "r"
    ro = Output(root=str(root), quiet=True, read_only=True)
    ro.say("hello")
    assert not (root / "var").exists() and os.path.isfile(os.path.join(ro.dir, "install.log"))
    assert ro.shown_dir == ro.dir and "airgap-installer-log-" in ro.dir
    rw = Output(root=str(root), quiet=True)
    assert rw.dir.startswith(str(root / "var" / "log" / "airgap-installer"))
    import shutil
    shutil.rmtree(ro.dir)
