"""Your own registry: --registry/--to parsing, credentials files, the CA fingerprint, the auth header logic
(basic and bearer against a real token service), and ./install.py push-images against a real docker-registry
with TLS (throwaway CA) and htpasswd, pulled back by digest with skopeo."""

import json
import shutil
import subprocess

import pytest

from installer import cli
from installer.errors import InstallerError
from installer.extregistry import OwnRegistry, fingerprint, load_credentials, parse_target
from installer.registry_push import Layout, Pusher, Registry, parse_challenge, scope_for
from tests.images.helpers import Registry as PlainRegistry
from tests.images.helpers import TokenServer, digest_of, free_port
from tests.images.tls_registry import PASSWORD, USER, TLSRegistry, bundle_images, make_ca, write_bundle

needs_registry = pytest.mark.skipif(not (shutil.which("docker-registry") and shutil.which("skopeo")),
                                    reason="docker-registry and skopeo are needed")


@pytest.mark.parametrize(("text", "address", "prefix"), [
    ("harbor.example.com/k8s", "harbor.example.com", "k8s"),
    ("https://harbor.example.com:443/k8s/el9/", "harbor.example.com", "k8s/el9"),
    ("10.0.0.5:5000", "10.0.0.5:5000", ""),
    ("[fd00::5]:5000/p", "[fd00::5]:5000", "p"),
])
def test_registry_address_forms(text, address, prefix):
    t = parse_target(text)
    assert (t.address, t.prefix) == (address, prefix)
    assert t.path == (address + "/" + prefix if prefix else address)


@pytest.mark.parametrize("text", ["http://reg:5000", "reg:99999", "reg/Upper", "", "reg:5000/a//b", "-bad-/x"])
def test_bad_registry_addresses_are_refused_clearly(text):
    with pytest.raises(InstallerError) as e:
        parse_target(text, "--registry")
    assert str(e.value).startswith("--registry %r" % text) and "harbor.example.com/k8s" in str(e.value)


def test_credentials_files(tmp_path):
    line = tmp_path / "creds"
    line.write_text("robot$k8s:pa:ss\n")
    assert load_credentials(str(line), "h:5000") == ("robot$k8s", "pa:ss")
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"auths": {"h:5000": {"auth": "dTpwdw=="}, "other": {"username": "x",
                                                                                   "password": "y"}}}))
    assert load_credentials(str(cfg), "h:5000") == ("u", "pw")
    assert load_credentials(str(cfg), "other") == ("x", "y")
    with pytest.raises(InstallerError, match="no auths entry for nope.*entries: h:5000, other"):
        load_credentials(str(cfg), "nope")
    bad = tmp_path / "bad"
    bad.write_text("just-a-password-SECRET\n")
    with pytest.raises(InstallerError) as e:
        load_credentials(str(bad), "h")
    assert "user:password" in str(e.value) and "SECRET" not in str(e.value)
    with pytest.raises(InstallerError, match="cannot read"):
        load_credentials(str(tmp_path / "missing"), "h")


def test_ca_fingerprint_matches_openssl(tmp_path):
    ca = make_ca(tmp_path)[0]
    out = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(ca)],
                         capture_output=True, text=True, check=True).stdout
    assert fingerprint(ca.read_text()) == out.strip().split("=", 1)[1]
    not_pem = tmp_path / "x.pem"
    not_pem.write_text("hello")
    with pytest.raises(InstallerError, match="--registry-ca .* is not a PEM certificate"):
        OwnRegistry("h:5000", str(not_pem))


def test_auth_header_logic():
    assert parse_challenge('Bearer realm="https://h/service/token",service="harbor-registry",scope="a:b:c"') == (
        "bearer", {"realm": "https://h/service/token", "service": "harbor-registry", "scope": "a:b:c"})
    assert parse_challenge('Basic realm="r"') == ("basic", {"realm": "r"})
    assert scope_for("https://h/v2/p/registry.k8s.io/pause/blobs/uploads/", "POST") == \
        "repository:p/registry.k8s.io/pause:pull,push"
    assert scope_for("https://h/v2/p/x/manifests/1", "HEAD") == "repository:p/x:pull"
    assert scope_for("https://h/v2/", "GET") == ""
    reg = Registry("https://h", "u", "p")
    assert reg.auth_for("https://h/v2/x/manifests/1", "HEAD") == "Basic dTpw"  # pre-emptive basic
    reg.challenge = ("bearer", {"realm": "https://h/token"})
    assert reg.auth_for("https://h/v2/x/manifests/1", "HEAD") is None  # needs a token for that scope
    reg.tokens["repository:x:pull"] = ("Bearer T", 1e12)
    assert reg.auth_for("https://h/v2/x/manifests/1", "HEAD") == "Bearer T"
    assert reg.auth_for("https://h/v2/x/blobs/uploads/", "POST") is None  # push scope is another token
    assert Registry("https://h").auth_for("https://h/v2/", "GET") is None


@needs_registry
def test_bearer_token_push_with_prefix(tmp_path):
    tokens = TokenServer(tmp_path, {USER: PASSWORD})
    reg = None
    try:
        reg = PlainRegistry(tmp_path / "r", auth=tokens.registry_auth())
        root = write_bundle(tmp_path / "b", bundle_images())
        client = Registry("http://%s" % reg.host, USER, PASSWORD)
        Pusher(client, Layout(str(root / "images")), prefix="proj").push_all()
        assert client.challenge[0] == "bearer"
        assert any(q.get("scope") == "repository:proj/registry.k8s.io/pause:pull,push" for q in tokens.requests)
        again = Registry("http://%s" % reg.host, USER, PASSWORD)
        missing = Pusher(again, Layout(str(root / "images")), prefix="proj").missing()
        assert len(missing) == 3 and all(not m[2] and not m[3] for m in missing)
        with pytest.raises(InstallerError, match="refused the push credentials"):
            Pusher(Registry("http://%s" % reg.host, USER, "wrong"), Layout(str(root / "images")),
                   prefix="proj2").push_all()
    finally:
        if reg is not None:
            reg.stop()
        tokens.stop()


@pytest.fixture
def tls_registry(tmp_path):
    r = TLSRegistry(tmp_path / "reg")
    yield r
    r.stop()


def _run(capsys, *argv):
    code = cli.main(list(argv) + ["--skip-bundle-check"])
    out = capsys.readouterr()
    return code, " ".join((out.out + out.err).split())


@needs_registry
def test_push_images_plan_push_and_pull_back_by_digest(tls_registry, tmp_path, capsys):
    images = bundle_images()
    root = write_bundle(tmp_path / "bundle", images)
    creds = tls_registry.credentials_file()
    to = ["--to", "%s/k8s" % tls_registry.host, "--ca", str(tls_registry.ca), "--credentials", str(creds),
          "--bundle", str(root)]
    code, out = _run(capsys, "plan", "push-images", *to)
    assert code == 0 and "3 of 3 image(s) to push" in out, out
    assert not (tls_registry.storage / "docker" / "registry" / "v2" / "repositories").exists()  # plan sent nothing
    code, out = _run(capsys, "push-images", *to)
    assert "3/3 " in out and "5 manifest(s) written" in out and PASSWORD not in out, out
    for ref, img in images.items():
        host, rest = ref.split("/", 1)
        name = rest.rsplit(":", 1)[0]
        assert tls_registry.skopeo_raw("k8s/%s/%s@%s" % (host, name, img.digest)) == img.top[0]
    code, out = _run(capsys, "plan", "push-images", *to)
    assert code == 0 and "every image is already in" in out, out
    code, out = _run(capsys, "push-images", *to)
    assert code == 0 and "0 manifest(s) written, 0 blob(s) uploaded (0.0 MB), 10 already present" in out, out


@needs_registry
def test_push_images_errors_name_the_fix(tls_registry, tmp_path, capsys):
    root = write_bundle(tmp_path / "bundle", bundle_images())
    other = make_ca(tmp_path, "other")[0]
    base = ["push-images", "--bundle", str(root)]
    code, out = _run(capsys, *base, "--to", tls_registry.host, "--ca", str(other),
                     "--credentials", str(tls_registry.credentials_file()))
    assert code == 1 and "is not trusted" in out and "give the right CA with --ca FILE" in out, out
    code, out = _run(capsys, *base, "--to", tls_registry.host)
    assert code == 1 and "is not trusted" in out and "with --ca FILE" in out, out
    code, out = _run(capsys, *base, "--to", tls_registry.host, "--ca", str(tls_registry.ca))
    assert code == 1 and "HTTP 401" in out and "--credentials FILE" in out, out
    code, out = _run(capsys, *base, "--to", tls_registry.host, "--ca", str(tls_registry.ca),
                     "--credentials", str(tls_registry.credentials_file("wrong-" + PASSWORD)))
    assert code == 1 and "HTTP 401" in out and "Check the user and password" in out and PASSWORD not in out, out
    code, out = _run(capsys, *base, "--to", "127.0.0.1:%d" % free_port(), "--ca", str(tls_registry.ca))
    assert code == 1 and "cannot reach the registry" in out and "Check the address and port" in out, out
    code, out = _run(capsys, *base, "--to", "x/Bad", "--ca", str(tls_registry.ca))
    assert code == 1 and "--to 'x/Bad'" in out, out


def test_digest_helper_is_the_registrys():
    assert digest_of(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
