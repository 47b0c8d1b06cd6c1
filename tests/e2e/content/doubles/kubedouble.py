# TEST DOUBLE -- not Kubernetes. Shared code of the airgap-bundler e2e test doubles of kubeadm,
# kubelet and kubectl (and crictl). Installed as /usr/lib/airgap-e2e/kubedouble.py by each of their
# RPMs (identical content, so rpm lets the packages share the file).
#
# Design (see tests/e2e/content/README.md):
#   * `kubeadm init` (double) writes a real CA + apiserver certificate (openssl), kubeconfigs, static
#     pod manifests, /var/lib/kubelet/config.yaml and restarts kubelet.service;
#   * the kubelet double, on a host with /etc/kubernetes/manifests/kube-apiserver.yaml, serves the
#     "apiserver double" (HTTPS on the advertise address, port 6443, its state in
#     /var/lib/kube-apiserver-double/state.json) -- like a kubelet running the static apiserver pod;
#   * `kubeadm join` (double) on another host really crosses the network: fetches cluster-info from
#     the control-plane endpoint, checks the CA public-key hash, registers the node with the token;
#   * every kubelet double registers/heartbeats its node and pulls the images of the pods the
#     apiserver double assigns to it (through crictl -> ctr -> containerd's registry mirror config);
#   * the kubectl double asks the apiserver double (server + CA + token from the kubeconfig).
# Python 3.6+ standard library only.

import base64
import datetime
import json
import os
import re
import shlex
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

DOUBLE_BANNER = "TEST DOUBLE (airgap-bundler e2e), not the real program"
KUBE_VERSION = "@KUBE_VERSION@"  # replaced when the RPM is built
# What `kubeadm config images list` prints for KUBE_VERSION with the default repository (JSON list).
_IMAGES = r'''@KUBEADM_IMAGES@'''
KUBEADM_IMAGES = [] if _IMAGES.startswith("@") else json.loads(_IMAGES)


def pin(version: str, images: list) -> None:
    """Set this program's version (each double's RPM calls it right after the import): the library file is
    version-free so kubeadm, kubelet and kubectl of different versions can be installed side by side (an
    upgrade installs kubeadm first), as with the real RPMs."""
    global KUBE_VERSION, KUBEADM_IMAGES
    KUBE_VERSION, KUBEADM_IMAGES = version, list(images)
API_PORT = 6443
ADMIN_TOKEN_FILE = "/etc/kubernetes/pki/admin-double.token"
STATE_DIR = "/var/lib/kubeadm-double"
APISERVER_STATE = "/var/lib/kube-apiserver-double/state.json"


def root() -> str:
    """KUBE_DOUBLE_ROOT: run the doubles against a directory instead of / (the content tests). Without it, a
    double unpacked from its RPM into a scratch root (<root>/usr/bin/kubeadm, as the builder does to ask it
    for its images) keeps its log inside that root instead of writing the build machine's /var/log."""
    env = os.environ.get("KUBE_DOUBLE_ROOT")
    if env:
        return env
    head, sep, _ = os.path.realpath(sys.argv[0]).rpartition("/usr/bin/")
    return head if sep and head else "/"


def on_host() -> bool:
    return root() in ("", "/")


def p(path: str) -> str:
    r = root()
    return path if r in ("", "/") else os.path.join(r, path.lstrip("/"))


STARTED = time.time()  # when this double's process imported its helpers (≈ its start)


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def record(log: str, entry: dict) -> None:
    """Append one JSON line to /var/log/<log> (every invocation of a double is recorded)."""
    path = p("/var/log/" + log)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # t0/elapsed: this invocation's start (epoch) and seconds so far, for bench/rig_scale.py's doubles' time
    entry = dict(entry, time=now_iso(), pid=os.getpid(), t0=round(STARTED, 3),
                 elapsed=round(time.time() - STARTED, 3))
    with open(path, "a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")


def write(path: str, text: str, mode: int = 0o644) -> str:
    full = p(path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    tmp = full + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, full)
    return full


def read(path: str, default: "str | None" = None) -> "str | None":
    try:
        with open(p(path)) as f:
            return f.read()
    except OSError:
        return default


def load_json(path: str, default: object) -> object:
    text = read(path)
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def die(msg: str, code: int = 1) -> None:
    sys.stderr.write(msg.rstrip("\n") + "\n")
    sys.exit(code)


# ----------------------------------------------------------------------------------------- YAML subset
class YAMLError(ValueError):
    pass


def _scalar(tok: str, lineno: int) -> object:
    t = tok.strip()
    if t == "" or t in ("~", "null", "Null", "NULL"):
        return None
    if t[0] == '"':
        try:
            return json.loads(t)
        except ValueError:
            raise YAMLError(f"line {lineno}: bad double-quoted string {t}") from None
    if t[0] == "'":
        if len(t) < 2 or t[-1] != "'":
            raise YAMLError(f"line {lineno}: bad single-quoted string {t}")
        return t[1:-1].replace("''", "'")
    if t == "{}":
        return {}
    if t == "[]":
        return []
    if t[0] in "[{":
        try:
            return json.loads(t)  # flow collections: JSON-compatible ones only
        except ValueError:
            inner = t[1:-1].strip()
            if t[0] == "[" and t[-1] == "]":
                return [_scalar(x, lineno) for x in inner.split(",")] if inner else []
            raise YAMLError(f"line {lineno}: unsupported flow mapping {t}") from None
    if t in ("true", "True", "TRUE"):
        return True
    if t in ("false", "False", "FALSE"):
        return False
    if re.match(r"^[-+]?[0-9]+$", t):
        return int(t)
    if re.match(r"^[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$", t):
        return float(t)
    if t[0] in "&*!|>%@`":
        raise YAMLError(f"line {lineno}: unsupported YAML syntax {t}")
    return t


def _strip_comment(line: str) -> str:
    out, q = [], None
    for i, ch in enumerate(line):
        if q:
            if ch == q:
                q = None
        elif ch in "\"'" and (i == 0 or line[i - 1] in " :-[{,"):
            q = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            break
        out.append(ch)
    return "".join(out).rstrip()


def _split_key(content: str, lineno: int) -> "tuple[str, str] | None":
    """'key: value' -> (key, value); None when the line is not a mapping entry."""
    if content[:1] in "\"'":
        q = content[0]
        end = content.find(q, 1)
        if end > 0 and content[end + 1:end + 2] == ":":
            return content[1:end], content[end + 2:].strip()
        return None
    m = re.match(r"^([^\s:#][^:#]*?)\s*:(\s+(.*))?$", content)
    if not m:
        return None
    return m.group(1), (m.group(3) or "").strip()


def parse_yaml(text: str) -> list:
    """The YAML subset config files use (block mappings and sequences, plain/quoted scalars, empty
    flow collections, comments, '---' documents). Anything else is an error, never a guess."""
    docs, cur = [], []
    for lineno, raw in enumerate(text.splitlines(), 1):
        if raw.rstrip() in ("---", "...") or raw.startswith("--- "):
            if cur:
                docs.append(cur)
            cur = []
            continue
        if "\t" in raw[:len(raw) - len(raw.lstrip())]:
            raise YAMLError(f"line {lineno}: tab in indentation")
        line = _strip_comment(raw)
        if line.strip():
            cur.append((lineno, len(line) - len(line.lstrip()), line.strip()))
    if cur:
        docs.append(cur)
    out = []
    for lines in docs:
        value, pos = _parse_block(lines, 0, lines[0][1])
        if pos != len(lines):
            raise YAMLError(f"line {lines[pos][0]}: unexpected indentation")
        out.append(value)
    return out


def _parse_block(lines: list, pos: int, indent: int) -> "tuple[object, int]":
    lineno, ind, content = lines[pos]
    if content == "-" or content.startswith("- "):
        return _parse_seq(lines, pos, ind)
    if _split_key(content, lineno) is not None:
        return _parse_map(lines, pos, ind)
    return _scalar(content, lineno), pos + 1


def _parse_map(lines: list, pos: int, indent: int) -> "tuple[dict, int]":
    out: dict = {}
    while pos < len(lines):
        lineno, ind, content = lines[pos]
        if ind < indent:
            break
        if ind > indent:
            raise YAMLError(f"line {lineno}: unexpected indentation")
        kv = _split_key(content, lineno)
        if kv is None:
            raise YAMLError(f"line {lineno}: expected 'key: value', got {content!r}")
        key, rest = kv
        if key in out:
            raise YAMLError(f"line {lineno}: duplicate key {key!r}")
        pos += 1
        if rest:
            out[key] = _scalar(rest, lineno)
        elif pos < len(lines) and (lines[pos][1] > ind or (lines[pos][1] == ind and lines[pos][2].startswith("-"))):
            out[key], pos = _parse_block(lines, pos, lines[pos][1])
        else:
            out[key] = None
    return out, pos


def _parse_seq(lines: list, pos: int, indent: int) -> "tuple[list, int]":
    out: list = []
    while pos < len(lines):
        lineno, ind, content = lines[pos]
        if ind < indent or not (content == "-" or content.startswith("- ")):
            if ind > indent:
                raise YAMLError(f"line {lineno}: unexpected indentation")
            break
        if ind > indent:
            raise YAMLError(f"line {lineno}: unexpected indentation")
        rest = content[1:].strip()
        if not rest:
            pos += 1
            if pos < len(lines) and lines[pos][1] > ind:
                item, pos = _parse_block(lines, pos, lines[pos][1])
            else:
                item = None
            out.append(item)
            continue
        child_indent = ind + (len(content) - len(rest))
        if _split_key(rest, lineno) is not None and rest[:1] not in "[{":
            # "- key: v" starts a mapping at the column of "key"
            sub = [(lineno, child_indent, rest)]
            j = pos + 1
            while j < len(lines) and lines[j][1] >= child_indent:
                sub.append(lines[j])
                j += 1
            item, used = _parse_map(sub, 0, child_indent)
            if used != len(sub):
                raise YAMLError(f"line {sub[used][0]}: unexpected indentation")
            out.append(item)
            pos = j
        else:
            out.append(_scalar(rest, lineno))
            pos += 1
    return out, pos


# ----------------------------------------------------------------------------------------- kubeconfig
def kubeconfig(server: str, ca_pem: str, user: str, token: str, cluster: str = "kubernetes") -> str:
    ca = base64.b64encode(ca_pem.encode()).decode()
    return "\n".join([
        "# TEST DOUBLE kubeconfig written by the kubeadm double (airgap-bundler e2e): token auth.",
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        "- cluster:",
        f"    certificate-authority-data: {ca}",
        f"    server: {server}",
        f"  name: {cluster}",
        "contexts:",
        "- context:",
        f"    cluster: {cluster}",
        f"    user: {user}",
        f"  name: {user}@{cluster}",
        f"current-context: {user}@{cluster}",
        "preferences: {}",
        "users:",
        f"- name: {user}",
        "  user:",
        f"    token: {token}",
        "",
    ])


def read_kubeconfig(path: str) -> "tuple[str, str, str]":
    """(server, CA PEM, token) of a kubeconfig the kubeadm double wrote."""
    text = read(path)
    if text is None:
        raise RuntimeError(f"cannot read kubeconfig {path}")
    cfg = parse_yaml(text)[0]
    cluster = cfg["clusters"][0]["cluster"]
    user = cfg["users"][0]["user"]
    ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
    return cluster["server"], ca, user.get("token", "")


# ----------------------------------------------------------------------------------------- HTTP client
class APIError(RuntimeError):
    def __init__(self, status: int, msg: str) -> None:
        super().__init__(f"{msg} (HTTP {status})")
        self.status = status


def api(server: str, method: str, path: str, body: object = None, token: str = "", ca_pem: "str | None" = None,
        timeout: float = 10) -> object:
    """JSON request to the apiserver double. ca_pem=None: no server verification (discovery only)."""
    if ca_pem is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(cadata=ca_pem)
        ctx.check_hostname = False  # SANs are checked by the CA pin; addresses vary in the rig
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.rstrip("/") + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            raw = r.read()
    except urllib.error.HTTPError as e:
        raise APIError(e.code, e.read().decode(errors="replace").strip() or str(e)) from e
    except (urllib.error.URLError, OSError, socket.timeout) as e:
        raise APIError(0, "cannot reach {}: {}".format(server, getattr(e, "reason", e))) from e
    return json.loads(raw.decode() or "null")


# ----------------------------------------------------------------------------------------- openssl
def openssl(args: "list[str]", input_: "bytes | None" = None) -> bytes:
    proc = subprocess.run(["openssl"] + args, input=input_, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError("openssl {} failed: {}".format(" ".join(args), proc.stderr.decode(errors="replace")))
    return proc.stdout


def ca_pubkey_hash(ca_pem: str) -> str:
    """sha256:<hex> of the CA's SubjectPublicKeyInfo (what --discovery-token-ca-cert-hash pins)."""
    import hashlib
    pub = openssl(["x509", "-pubkey", "-noout"], ca_pem.encode())
    der = openssl(["pkey", "-pubin", "-outform", "der"], pub)
    return "sha256:" + hashlib.sha256(der).hexdigest()


# ----------------------------------------------------------------------------------------- misc
def flags_of(argv: "list[str]") -> "dict[str, str]":
    """--a=b / --a b / --flag (-> 'true') into a dict; positional words under '' joined by spaces."""
    out: dict = {}
    pos = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--") and "=" in a:
            k, v = a[2:].split("=", 1)
            out[k] = v
        elif a.startswith("-") and len(a) > 1:
            k = a.lstrip("-")
            if i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                out[k] = argv[i + 1]
                i += 1
            else:
                out[k] = "true"
        else:
            pos.append(a)
        i += 1
    out[""] = " ".join(pos)
    return out


def env_args(text: str, var: str) -> "list[str]":
    """Arguments of VAR="..." in an EnvironmentFile (kubeadm-flags.env)."""
    for line in (text or "").splitlines():
        if line.startswith(var + "="):
            return shlex.split(line.split("=", 1)[1].strip().strip('"').strip("'"))
    return []


def hostname() -> str:
    return socket.gethostname().strip().lower()


def wait_for(pred, timeout: float, interval: float = 1.0) -> bool:
    deadline = time.time() + timeout
    while True:
        if pred():
            return True
        if time.time() > deadline:
            return False
        time.sleep(interval)
