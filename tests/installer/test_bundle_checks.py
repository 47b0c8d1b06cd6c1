import os
import shutil
import subprocess

import pytest

from installer.errors import InstallerError
from installer.media import describe, major_from_label, treeinfo_version
from installer.verify_bundle import verify

from .conftest import make_bundle


def test_verify_ok(tmp_path):
    b = make_bundle(str(tmp_path / "b"))
    assert verify(b.root) >= 5


def test_tampered_file_is_named(tmp_path):
    b = make_bundle(str(tmp_path / "b"))
    with open(os.path.join(b.root, "files", "registry"), "a") as f:
        f.write("evil\n")
    os.remove(os.path.join(b.root, "manifests", "calico.yaml"))
    with pytest.raises(InstallerError) as e:
        verify(b.root)
    msg = str(e.value)
    assert "files/registry: content differs from SHA256SUMS" in msg
    assert "manifests/calico.yaml: listed in SHA256SUMS but missing" in msg
    assert "Nothing was changed on any host" in msg


def test_path_outside_bundle_rejected(tmp_path):
    b = make_bundle(str(tmp_path / "b"))
    with open(os.path.join(b.root, "SHA256SUMS"), "a") as f:
        f.write("%s  ../etc/passwd\n" % ("0" * 64))
    with pytest.raises(InstallerError, match=r"\.\./etc/passwd: SHA256SUMS lists a path with '\.\.'"):
        verify(b.root)


@pytest.mark.skipif(not shutil.which("gpg"), reason="gpg needed")
def test_signature(tmp_path):
    b = make_bundle(str(tmp_path / "b"))
    home = str(tmp_path / "gnupg")
    os.makedirs(home, 0o700)
    env = dict(os.environ, GNUPGHOME=home)
    try:
        _signature_checks(b, home, env, tmp_path)
    finally:  # the gpg-agent this test's key operations started
        subprocess.call(["gpgconf", "--homedir", home, "--kill", "all"], stderr=subprocess.DEVNULL)


def _signature_checks(b, home, env, tmp_path):
    subprocess.check_call(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "test@example", "ed25519",
                           "sign", "never"], env=env, stderr=subprocess.DEVNULL)
    key = str(tmp_path / "key.asc")
    with open(key, "wb") as f:
        f.write(subprocess.check_output(["gpg", "--batch", "--armor", "--export", "test@example"], env=env))
    with pytest.raises(InstallerError, match="SHA256SUMS.asc: missing, but --key was given"):
        verify(b.root, key)
    subprocess.check_call(["gpg", "--batch", "--armor", "--detach-sign", "-o", os.path.join(b.root, "SHA256SUMS.asc"),
                           os.path.join(b.root, "SHA256SUMS")], env=env)
    assert verify(b.root, key) > 0
    with open(os.path.join(b.root, "SHA256SUMS"), "a") as f:
        f.write("%s  extra\n" % ("0" * 64))
    with pytest.raises(InstallerError, match="SHA256SUMS.asc: does not verify with the key"):
        verify(b.root, key)


def _iso(path, label):
    data = bytearray(16 * 2048 + 2048)
    pvd = 16 * 2048
    data[pvd] = 1
    data[pvd + 1:pvd + 6] = b"CD001"
    data[pvd + 40:pvd + 72] = label.ljust(32).encode()
    with open(path, "wb") as f:
        f.write(bytes(data))


def test_media(tmp_path):
    iso = str(tmp_path / "dvd.iso")
    _iso(iso, "Rocky-9-4-x86_64-dvd")
    m = describe(iso=iso)
    assert m["kind"] == "iso" and m["major"] == 9 and m["label"] == "Rocky-9-4-x86_64-dvd"
    assert major_from_label("CentOS 7 x86_64") == 7
    assert major_from_label("RHEL-8-10-0-BaseOS-x86_64") == 8
    notiso = str(tmp_path / "x.iso")
    open(notiso, "w").write("x")
    with pytest.raises(InstallerError, match="not an ISO 9660 image"):
        describe(iso=notiso)
    d = tmp_path / "dvd"
    (d / "BaseOS" / "repodata").mkdir(parents=True)
    (d / "BaseOS" / "repodata" / "repomd.xml").write_text("<x/>")
    (d / ".treeinfo").write_text("[general]\nversion = 9.4\n[release]\nname = Rocky\n")
    assert treeinfo_version(str(d)) == "9.4"
    assert describe(media_dir=str(d))["major"] == 9
    with pytest.raises(InstallerError, match="no yum repository"):
        describe(media_dir=str(tmp_path))
    with pytest.raises(InstallerError, match="no OS install media found"):
        describe(devices=(str(tmp_path / "sr0"),))
