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
from tests.images.helpers import TokenServer, free_port
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



# -- install/plan --registry ------------------------------------------------------------------------------
def _bundle_with_images(tmp_path, runtime="containerd"):
    from tests.installer.conftest import make_bundle
    b = make_bundle(str(tmp_path / "bundle"), runtime=runtime, k8s="1.28.2" if runtime == "docker" else "1.30.4")
    src = write_bundle(tmp_path / "imgs", bundle_images())
    shutil.rmtree(b.path("images"))
    shutil.copytree(str(src / "images"), b.path("images"))
    return b


def test_install_registry_options_parse_and_come_back_from_the_record(tmp_path):
    ca = make_ca(tmp_path)[0]
    creds = tmp_path / "creds"
    creds.write_text("u:SECRETPW\n")
    args = cli.parse(["install", "--control-plane", "10.0.0.11", "--registry", "harbor.example.com/k8s",
                      "--registry-ca", str(ca), "--registry-credentials", str(creds)])
    opts = cli.options_of(args, None)
    assert (opts.registry, opts.registry_ca, opts.registry_credentials) == ("harbor.example.com/k8s", str(ca),
                                                                           str(creds))
    recorded = {"options": {"registry": "harbor.example.com/k8s", "registry_ca": str(ca)}}
    again = cli.options_of(cli.parse(["plan"]), recorded)  # add-node, re-runs: from the cluster record
    assert again.registry == "harbor.example.com/k8s" and again.registry_ca == str(ca)
    assert again.registry_credentials is None
    with pytest.raises(InstallerError, match="need --registry"):
        cli.options_of(cli.parse(["install", "--registry-ca", str(ca)]), None)
    with pytest.raises(InstallerError, match="--registry 'http://x'"):
        cli.options_of(cli.parse(["plan", "--registry", "http://x"]), None)


def test_runtime_config_points_at_your_registry_with_its_ca(tmp_path):
    from installer.changes import Callback, WriteFile
    from installer.phases.registry import read_ca
    from installer.phases.runtime import Runtime
    from tests.installer.conftest import make_bundle, make_ctx
    ca = make_ca(tmp_path)[0]
    ctx = make_ctx(make_bundle(str(tmp_path / "b")), registry="harbor.example.com/k8s", registry_ca=str(ca))
    read_ca(ctx)
    w = ctx.inventory.workers[0]
    changes = Runtime().plan(ctx, w, ctx.facts[w.label])
    files = dict((c.path, c.content) for c in changes if isinstance(c, WriteFile))
    k8s = files["/etc/containerd/certs.d/registry.k8s.io/hosts.toml"]
    assert '[host."https://harbor.example.com/v2/k8s/registry.k8s.io"]' in k8s and "override_path = true" in k8s
    assert 'ca = "/etc/containerd/certs.d/harbor.example.com/ca.crt"' in k8s
    assert '[host."https://harbor.example.com/v2/k8s/docker.io"]' in \
        files["/etc/containerd/certs.d/docker.io/hosts.toml"]
    assert files["/etc/containerd/certs.d/harbor.example.com/ca.crt"] == ca.read_text()
    assert files["/etc/pki/ca-trust/source/anchors/airgap-registry-ca.crt"] == ca.read_text()
    assert not any("10.0.0.11:5000" in p for p in files)
    assert ctx.local_ref("registry.k8s.io/pause:3.9") == "harbor.example.com/k8s/registry.k8s.io/pause:3.9"
    # no CA given: the system trust store is enough, nothing is written for it and no late CA step
    ctx = make_ctx(make_bundle(str(tmp_path / "c")), registry="reg.example.com:8443")
    read_ca(ctx)
    changes = Runtime().plan(ctx, w, ctx.facts[w.label])
    files = dict((c.path, c.content) for c in changes if isinstance(c, WriteFile))
    assert '[host."https://reg.example.com:8443/v2/registry.k8s.io"]' in \
        files["/etc/containerd/certs.d/registry.k8s.io/hosts.toml"]
    assert "ca = " not in files["/etc/containerd/certs.d/registry.k8s.io/hosts.toml"]
    assert not [c for c in changes if isinstance(c, Callback)]
    assert "/etc/pki/ca-trust/source/anchors/airgap-registry-ca.crt" not in files


def test_docker_runtime_and_kubeadm_use_your_registry(tmp_path):
    from installer.changes import WriteFile
    from installer.phases.kubeadm_init import kubeadm_config
    from installer.phases.registry import read_ca
    from installer.phases.runtime import Runtime
    from tests.installer.conftest import make_bundle, make_ctx
    ca = make_ca(tmp_path)[0]
    ctx = make_ctx(make_bundle(str(tmp_path / "b"), runtime="docker", k8s="1.28.2"),
                   registry="harbor.example.com", registry_ca=str(ca))
    read_ca(ctx)
    w = ctx.inventory.workers[0]
    files = dict((c.path, c.content) for c in Runtime().plan(ctx, w, ctx.facts[w.label]) if isinstance(c, WriteFile))
    assert files["/etc/docker/certs.d/harbor.example.com/ca.crt"] == ca.read_text()
    assert '"https://harbor.example.com"' in files["/etc/docker/daemon.json"]
    assert "--pod-infra-container-image=harbor.example.com/registry.k8s.io/pause:3.9" in \
        files["/etc/systemd/system/cri-docker.service.d/10-airgap.conf"]
    assert "imageRepository: harbor.example.com/registry.k8s.io" in kubeadm_config(ctx, ctx.first_cp)


def test_record_keeps_address_and_ca_fingerprint_never_credentials(tmp_path):
    from installer.record import ClusterRecord
    from tests.installer.conftest import make_bundle, make_ctx
    ca = make_ca(tmp_path)[0]
    creds = tmp_path / "creds"
    creds.write_text("robot:SECRETPW\n")
    ctx = make_ctx(make_bundle(str(tmp_path / "b")), registry="harbor.example.com/k8s", registry_ca=str(ca),
                   registry_credentials=str(creds))
    rec = ClusterRecord()
    rec.start("install", ctx)
    assert rec.data["registry"] == {"address": "harbor.example.com", "prefix": "k8s",
                                    "ca_sha256": fingerprint(ca.read_text())}
    assert rec.data["options"]["registry"] == "harbor.example.com/k8s"
    text = json.dumps(rec.data)
    assert "SECRETPW" not in text and str(creds) not in text and "robot" not in text


def test_add_node_probes_your_registry(tmp_path):
    from installer.addnode import reach_targets
    from tests.installer.conftest import make_bundle, make_ctx
    ctx = make_ctx(make_bundle(str(tmp_path / "b")), registry="harbor.example.com/k8s")
    assert ("the image registry", "harbor.example.com", 443) in reach_targets(ctx)
    ctx = make_ctx(make_bundle(str(tmp_path / "c")), registry="[fd00::5]:5000")
    assert ("the image registry", "fd00::5", 5000) in reach_targets(ctx)


@pytest.fixture
def public_registry(tmp_path):
    r = TLSRegistry(tmp_path / "public", public=True)
    yield r
    r.stop()


@needs_registry
def test_registry_phase_checks_then_pushes_only_what_is_missing(public_registry, tmp_path):
    from installer.changes import Callback
    from installer.phases.registry import RegistryPhase
    from tests.installer.conftest import make_ctx
    b = _bundle_with_images(tmp_path)
    target = "%s/k8s" % public_registry.host
    ctx = make_ctx(b, registry=target, registry_ca=str(public_registry.ca))
    with pytest.raises(InstallerError) as e:  # images missing, no credentials: stop before any host change
        RegistryPhase().prepare(ctx)
    assert "3 of the bundle's images are missing" in str(e.value) and "push-images --to %s" % target in str(e.value)
    ctx = make_ctx(b, registry=target, registry_ca=str(public_registry.ca),
                   registry_credentials=str(public_registry.credentials_file()))
    phase = RegistryPhase()
    phase.prepare(ctx)
    cp = ctx.first_cp
    assert phase.watched_files(ctx, cp) == []
    [push] = phase.plan(ctx, cp, ctx.facts[cp.label])
    assert isinstance(push, Callback) and "push 3 image(s)" in push.describe()
    assert push.apply(None, None)
    for ref, img in bundle_images().items():
        host, rest = ref.split("/", 1)
        assert public_registry.skopeo_raw("k8s/%s/%s@%s" % (host, rest.rsplit(":", 1)[0], img.digest)) == img.top[0]
    ctx = make_ctx(b, registry=target, registry_ca=str(public_registry.ca))  # everything there: no credentials needed
    RegistryPhase().prepare(ctx)
    assert ctx.own_missing == [] and RegistryPhase().plan(ctx, cp, ctx.facts[cp.label]) == []
    other = make_ca(tmp_path, "other")[0]
    with pytest.raises(InstallerError) as e:
        RegistryPhase().prepare(make_ctx(b, registry=target, registry_ca=str(other)))
    assert "is not trusted" in str(e.value) and "--registry-ca FILE" in str(e.value)
    assert "--registry-ca" in str(e.value)


@needs_registry
def test_your_registry_must_allow_anonymous_pulls(tls_registry, tmp_path):
    from installer.phases.registry import RegistryPhase
    from tests.installer.conftest import make_ctx
    ctx = make_ctx(_bundle_with_images(tmp_path), registry=tls_registry.host, registry_ca=str(tls_registry.ca),
                   registry_credentials=str(tls_registry.credentials_file()))
    with pytest.raises(InstallerError) as e:
        RegistryPhase().prepare(ctx)
    msg = str(e.value)
    assert "refuses reads without credentials (HTTP 401" in msg and "make the project public" in msg
    assert PASSWORD not in msg


def test_docker_runtime_refuses_a_registry_path_before_contacting_it(tmp_path):
    from installer.phases.registry import RegistryPhase
    from tests.installer.conftest import make_bundle, make_ctx
    ctx = make_ctx(make_bundle(str(tmp_path / "b"), runtime="docker", k8s="1.28.2"),
                   registry="127.0.0.1:%d/k8s" % free_port())
    with pytest.raises(InstallerError) as e:
        RegistryPhase().prepare(ctx)
    assert "registry-mirrors take a host only" in str(e.value) and "--registry 127.0.0.1:" in str(e.value)
