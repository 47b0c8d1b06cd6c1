"""Push the bundle's OCI image layout into a registry through the Registry HTTP API v2 (urllib only).

* blobs already in the target repository are skipped (HEAD), blobs already pushed to another repository
  are cross-mounted, the rest are uploaded monolithically (small) or in chunks (large);
* manifests are PUT with their exact bytes and media type, so every digest is the one in bundle.json;
* each image goes to ``[<prefix>/]<original registry host>/<repository>:<tag>`` (e.g. registry.k8s.io/pause:3.9;
  the prefix is a Harbor project or a path in your own registry), plus the bare ``<repository>`` for docker.io
  images when docker's registry-mirrors needs it;
* authentication: HTTP basic, or the bearer-token dance (Harbor, distribution with a token service), answered
  per repository scope; TLS is checked against a CA file when one is given.
"""

import base64
import hashlib
import json
import os
import re
import ssl
import time

try:
    from urllib.request import Request, build_opener, HTTPSHandler, HTTPHandler, HTTPErrorProcessor
    from urllib.error import URLError
    from urllib.parse import urljoin, urlencode, urlsplit
except ImportError:  # pragma: no cover - Python 2 is not supported
    raise

from installer.bundle import split_ref
from installer.errors import InstallerError

REF_ANNOTATION = "io.airgap-bundler.image.ref"
NAME_ANNOTATION = "org.opencontainers.image.ref.name"
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
CHUNK = 16 * 1024 * 1024
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')
_REPO_PATH = re.compile(r"^/v2/(.+?)/(?:manifests|blobs|tags)/")


class _NoRaise(HTTPErrorProcessor):
    """Return every response (4xx/5xx included) so the caller looks at the status itself."""

    def http_response(self, request, response):
        return response

    https_response = http_response


def parse_challenge(header):
    """'Bearer realm="...",service="..."' -> ('bearer', {'realm': ..., 'service': ...})."""
    scheme, _, rest = (header or "").strip().partition(" ")
    params = {}
    for m in _PARAM.finditer(rest):
        params[m.group(1).lower()] = m.group(2) if m.group(2) is not None else m.group(3)
    return scheme.lower(), params


def scope_for(url, method):
    """The token scope a request needs: repository:NAME:pull for reads, pull,push for writes ('' for /v2/)."""
    m = _REPO_PATH.match(urlsplit(url).path)
    if not m:
        return ""
    return "repository:%s:%s" % (m.group(1), "pull" if method in ("GET", "HEAD") else "pull,push")


def basic_header(username, password):
    return "Basic " + base64.b64encode(("%s:%s" % (username, password or "")).encode("utf-8")).decode("ascii")


def _tls_reason(err):
    """The ssl error inside a URLError (None when it is not a TLS problem)."""
    reason = getattr(err, "reason", err)
    if isinstance(reason, ssl.SSLError):
        return reason
    return None


class Registry(object):
    """One registry over HTTPS (or HTTP): requests answered with basic auth or per-scope bearer tokens.

    `cred_hint` and `ca_hint` end the errors for refused credentials and an untrusted certificate (they name
    the option or file that fixes it)."""

    def __init__(self, base_url, username=None, password=None, cafile=None, insecure=False, chunk_size=CHUNK,
                 cred_hint="The credentials are in /etc/airgap-registry/push-credentials", ca_hint=None,
                 timeout=300):
        self.base = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.cred_hint = cred_hint
        self.ca_hint = ca_hint or ("Give the CA certificate that signed the registry's certificate (PEM)"
                                   if not cafile else "The CA file %s did not sign the registry's certificate: "
                                   "give the right CA (PEM)" % cafile)
        self.timeout = timeout
        self.challenge = None  # ('basic'|'bearer', params) once the registry asked
        self.tokens = {}  # scope -> (header, expiry)
        ctx = None
        if self.base.startswith("https://"):
            try:
                ctx = ssl.create_default_context(cafile=cafile)
            except (IOError, OSError, ssl.SSLError) as e:
                raise InstallerError("cannot use %s as the registry CA: %s" % (cafile, e),
                                     hint="Give a PEM file with the CA certificate that signed the registry's "
                                          "certificate") from None
            if insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
        self.opener = build_opener(HTTPSHandler(context=ctx), HTTPHandler(), _NoRaise())
        self.chunk_size = chunk_size
        self.stats = {"blobs_uploaded": 0, "blobs_skipped": 0, "blobs_mounted": 0, "bytes_uploaded": 0,
                      "manifests": 0}

    @property
    def auth(self):
        """The Authorization header sent before any challenge (basic credentials, sent pre-emptively)."""
        if self.username is None:
            return None
        return basic_header(self.username, self.password)

    @property
    def netloc(self):
        return urlsplit(self.base).netloc

    def _open(self, method, url, data, headers, auth):
        req = Request(url, data=data, method=method)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        if auth:
            req.add_header("Authorization", auth)
        try:
            resp = self.opener.open(req, timeout=self.timeout)
        except (URLError, OSError) as e:
            tls = _tls_reason(e)
            if tls is not None:
                raise InstallerError("the TLS certificate of the registry %s is not trusted (%s)"
                                     % (self.netloc, getattr(tls, "reason", None) or tls), phase="registry",
                                     hint=self.ca_hint) from None
            raise InstallerError("cannot reach the registry at %s: %s" % (self.base, getattr(e, "reason", e)),
                                 phase="registry", hint="Check the address and port, that the registry is "
                                 "running and that this host can reach it (firewall, routes)") from None
        body = resp.read()
        resp.close()
        return resp.status, resp.headers, body

    def auth_for(self, url, method):
        """The Authorization header for a request, from the challenge seen so far (None: send none)."""
        if self.challenge is None:
            return self.auth
        if self.challenge[0] == "basic":
            return self.auth
        tok = self.tokens.get(scope_for(url, method))
        if tok and tok[1] > time.time():
            return tok[0]
        return None

    def answer(self, header, url, method):
        """After a 401: the Authorization header that answers its challenge (None: nothing better to send)."""
        scheme, params = parse_challenge(header)
        if scheme == "basic":
            self.challenge = ("basic", params)
            return self.auth
        if scheme != "bearer" or not params.get("realm"):
            return None
        self.challenge = ("bearer", params)
        scope = scope_for(url, method) or params.get("scope", "")
        query = {"service": params.get("service", "")}
        if scope:
            query["scope"] = scope
        realm = params["realm"]
        status, _, body = self._open("GET", _add_query(realm, query), None, {}, self.auth)
        if status != 200:
            return None  # the registry's own 401 below names the problem
        try:
            doc = json.loads(body.decode("utf-8"))
            token = doc.get("token") or doc.get("access_token")
            ttl = max(int(doc.get("expires_in") or 60), 60)
        except (ValueError, AttributeError):
            token, ttl = None, 0
        if not token:
            raise InstallerError("the registry's token service %s returned no token" % realm, phase="registry")
        value = "Bearer " + token
        self.tokens[scope] = (value, time.time() + ttl - 30)
        return value

    def request(self, method, url, data=None, headers=None, expect=()):
        if not url.startswith("http"):
            url = urljoin(self.base + "/", url.lstrip("/"))
        sent = self.auth_for(url, method)
        status, rheaders, body = self._open(method, url, data, headers, sent)
        if status == 401 and rheaders.get("WWW-Authenticate"):
            better = self.answer(rheaders.get("WWW-Authenticate"), url, method)
            if better and better != sent:
                status, rheaders, body = self._open(method, url, data, headers, better)
        if expect and status not in expect:
            msg = body.decode("utf-8", "replace")[:500]
            if status == 401:
                raise InstallerError("the registry at %s refused the push credentials (HTTP 401%s)"
                                     % (self.base, "" if self.username is not None else "; none were given"),
                                     phase="registry", command="%s %s" % (method, url), stderr=msg,
                                     hint=self.cred_hint)
            if status == 403:
                raise InstallerError("the registry at %s accepted the credentials but denies %s %s (HTTP 403): "
                                     "the account may not push there" % (self.base, method, urlsplit(url).path),
                                     phase="registry", command="%s %s" % (method, url), stderr=msg,
                                     hint="Give the account push permission on that repository or project "
                                          "(in Harbor: the Developer role or higher), or use another prefix")
            raise InstallerError("registry API %s %s answered HTTP %d" % (method, url, status),
                                 phase="registry", command="%s %s" % (method, url), stderr=msg)
        return status, rheaders, body

    def ping(self):
        status, _, _ = self.request("GET", "/v2/")
        return status

    def check_push(self, repo):
        """Start a blob upload in repo and cancel it: proves the credentials may push there, stores nothing."""
        _, headers, _ = self.request("POST", "/v2/%s/blobs/uploads/" % repo, expect=(202,))
        location = headers.get("Location")
        if location:
            self.request("DELETE", location)  # cancel; some registries answer 404/405, which is fine
        return True

    def has_blob(self, repo, digest):
        status, _, _ = self.request("HEAD", "/v2/%s/blobs/%s" % (repo, digest))
        return status == 200

    def mount_blob(self, repo, digest, from_repo):
        status, _, _ = self.request("POST", "/v2/%s/blobs/uploads/?%s" % (repo, urlencode(
            {"mount": digest, "from": from_repo})))
        return status == 201

    def upload_blob(self, repo, digest, path, size):
        _, headers, _ = self.request("POST", "/v2/%s/blobs/uploads/" % repo, expect=(202,))
        location = headers["Location"]
        if size <= self.chunk_size:
            with open(path, "rb") as f:
                data = f.read()
            self.request("PUT", _add_query(location, {"digest": digest}), data=data,
                         headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
                         expect=(201,))
        else:
            offset = 0
            with open(path, "rb") as f:
                while True:
                    chunk = f.read(self.chunk_size)
                    if not chunk:
                        break
                    end = offset + len(chunk) - 1
                    _, headers, _ = self.request(
                        "PATCH", location, data=chunk,
                        headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(chunk)),
                                 "Content-Range": "%d-%d" % (offset, end)}, expect=(202,))
                    location = headers["Location"]
                    offset = end + 1
            self.request("PUT", _add_query(location, {"digest": digest}), data=b"",
                         headers={"Content-Length": "0"}, expect=(201,))
        self.stats["blobs_uploaded"] += 1
        self.stats["bytes_uploaded"] += size

    def put_manifest(self, repo, reference, media_type, data):
        _, headers, _ = self.request("PUT", "/v2/%s/manifests/%s" % (repo, reference), data=data,
                                     headers={"Content-Type": media_type}, expect=(201,))
        self.stats["manifests"] += 1
        return headers.get("Docker-Content-Digest")

    def manifest_digest(self, repo, reference, media_type):
        status, headers, body = self.request("HEAD", "/v2/%s/manifests/%s" % (repo, reference),
                                             headers={"Accept": media_type})
        if status != 200:
            return None
        return headers.get("Docker-Content-Digest")


def _add_query(url, params):
    return url + ("&" if "?" in url else "?") + urlencode(params)


class Layout(object):
    """An OCI image layout directory (oci-layout, index.json, blobs/<alg>/<hex>)."""

    def __init__(self, root):
        self.root = root
        try:
            with open(os.path.join(root, "index.json"), "rb") as f:
                self.index = json.loads(f.read().decode("utf-8"))
        except (IOError, OSError, ValueError, RecursionError) as e:
            raise InstallerError("cannot read the image store %s/index.json: %s" % (root, e),
                                 hint="The bundle is damaged: unpack it again") from None
        manifests = self.index.get("manifests", []) if isinstance(self.index, dict) else None
        if not isinstance(manifests, list) or not all(
                isinstance(d, dict) and isinstance(d.get("digest"), str) and isinstance(d.get("annotations", {}), dict)
                for d in manifests):
            raise InstallerError("the image store %s/index.json is not an OCI image index (an object whose "
                                 "manifests[] each have a digest)" % root,
                                 hint="The bundle is damaged: unpack it again")

    def blob_path(self, digest):
        alg, hexd = digest.split(":", 1)
        return os.path.join(self.root, "blobs", alg, hexd)

    def read_blob(self, digest):
        with open(self.blob_path(digest), "rb") as f:
            return f.read()

    def images(self):
        """[(original ref, descriptor)] from index.json (ref.name holds the full reference too)."""
        out = []
        for desc in self.index.get("manifests", []):
            ann = desc.get("annotations", {})
            ref = ann.get(REF_ANNOTATION) or ann.get(NAME_ANNOTATION)
            if ref:
                out.append((ref, desc))
        return out


def target_repos(ref, docker_bare=False, prefix=""):
    """Repositories an image is pushed to and the tag/digest reference to use (under `prefix`, a Harbor
    project or path, when given)."""
    host, repo, tag = split_ref(ref)
    pre = prefix.strip("/") + "/" if prefix and prefix.strip("/") else ""
    repos = ["%s%s/%s" % (pre, host, repo)]
    if docker_bare and host == "docker.io":
        repos.append(pre + repo)
    return repos, tag


class Pusher(object):
    """Push an OCI layout's images: HEAD before every blob and manifest, so a re-run sends only what is missing."""

    def __init__(self, registry, layout, log=None, prefix="", progress=None):
        self.reg = registry
        self.layout = layout
        self.log = log or (lambda msg: None)
        self.progress = progress  # progress(text) after each image, e.g. "3/14 registry.k8s.io/pause:3.9"
        self.prefix = prefix
        self.blob_home = {}  # digest -> a repo that has it (for cross-repo mounts)

    def push_blob(self, repo, digest, size):
        if self.reg.has_blob(repo, digest):
            self.reg.stats["blobs_skipped"] += 1
            self.blob_home.setdefault(digest, repo)
            return
        home = self.blob_home.get(digest)
        if home and home != repo and self.reg.mount_blob(repo, digest, home):
            self.reg.stats["blobs_mounted"] += 1
            return
        path = self.layout.blob_path(digest)
        if not os.path.exists(path):
            raise InstallerError("the image store lacks blob %s" % digest,
                                 hint="The bundle is damaged: unpack it again")
        self.reg.upload_blob(repo, digest, path, os.path.getsize(path))
        self.blob_home[digest] = repo

    def _children(self, desc):
        """(media type, exact bytes, parsed document) of a manifest in the layout, checked against its digest."""
        digest = desc["digest"]
        media_type = desc.get("mediaType") or "application/vnd.oci.image.manifest.v1+json"
        data = self.layout.read_blob(digest)
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise InstallerError("manifest %s in the image store does not match its digest" % digest,
                                 hint="The bundle is damaged: unpack it again")
        doc = json.loads(data.decode("utf-8"))
        return doc.get("mediaType") or media_type, data, doc

    def push_manifest(self, repo, desc, reference):
        """Push a manifest (and for an index, every child present in the layout) with its exact bytes."""
        digest = desc["digest"]
        media_type, data, doc = self._children(desc)
        if media_type in INDEX_TYPES or "manifests" in doc:
            for child in doc.get("manifests", []):
                if os.path.exists(self.layout.blob_path(child["digest"])):
                    self.push_manifest(repo, child, child["digest"])
        else:
            cfg = doc.get("config")
            if cfg:
                self.push_blob(repo, cfg["digest"], cfg.get("size", 0))
            for layer in doc.get("layers", []):
                if layer.get("urls"):
                    continue  # foreign layers are not distributed
                self.push_blob(repo, layer["digest"], layer.get("size", 0))
        existing = self.reg.manifest_digest(repo, reference, media_type)
        if existing == digest:
            return False
        got = self.reg.put_manifest(repo, reference, media_type, data)
        if got and got != digest:
            raise InstallerError("the registry stored %s:%s as %s, expected %s" % (repo, reference, got, digest),
                                 phase="registry")
        return True

    def missing_of(self, repo, desc, reference, seen):
        """What push_manifest would send for one image: ([manifest digests], {blob digest: size}), read-only."""
        media_type, _, doc = self._children(desc)
        manifests, blobs = [], {}
        if media_type in INDEX_TYPES or "manifests" in doc:
            for child in doc.get("manifests", []):
                if os.path.exists(self.layout.blob_path(child["digest"])):
                    m, b = self.missing_of(repo, child, child["digest"], seen)
                    manifests += m
                    blobs.update(b)
        else:
            wanted = ([doc["config"]] if doc.get("config") else []) + [
                layer for layer in doc.get("layers", []) if not layer.get("urls")]
            for d in wanted:
                key = (repo, d["digest"])
                if key not in seen:
                    seen[key] = self.reg.has_blob(repo, d["digest"])
                if not seen[key]:
                    blobs[d["digest"]] = d.get("size", 0)
        if self.reg.manifest_digest(repo, reference, media_type) != desc["digest"]:
            manifests.append(desc["digest"])
        return manifests, blobs

    def selected(self, only=None, docker_bare=False):
        """[(ref, descriptor, repo, reference)] for every image (and target repository) to push."""
        out = []
        for ref, desc in self.layout.images():
            if only and ref not in only:
                continue
            repos, tag = target_repos(ref, docker_bare, self.prefix)
            reference = tag[1:] if tag.startswith("@") else tag
            for repo in repos:
                out.append((ref, desc, repo, reference))
        return out

    def missing(self, docker_bare=False, only=None):
        """[(ref, target 'repo:tag', [missing manifests], {missing blob: size})]: what a push would send."""
        seen = {}
        out = []
        for ref, desc, repo, reference in self.selected(only, docker_bare):
            manifests, blobs = self.missing_of(repo, desc, reference, seen)
            out.append((ref, "%s:%s" % (repo, reference), manifests, blobs))
        return out

    def push_all(self, docker_bare=False, only=None):
        """Push every image in the layout; returns the number of manifests that changed."""
        changed = 0
        todo = self.selected(only, docker_bare)
        for n, (ref, desc, repo, reference) in enumerate(todo, 1):
            if self.push_manifest(repo, desc, reference):
                changed += 1
                self.log("pushed %s as %s:%s" % (ref, repo, reference))
            if self.progress is not None:
                self.progress("%d/%d %s/%s:%s (%d blob(s) uploaded, %.1f MB so far)" % (
                    n, len(todo), self.reg.netloc, repo, reference, self.reg.stats["blobs_uploaded"],
                    self.reg.stats["bytes_uploaded"] / 1e6))
        return changed
