"""Push the bundle's OCI image layout into a registry through the Registry HTTP API v2 (urllib only).

* blobs already in the target repository are skipped (HEAD), blobs already pushed to another repository
  are cross-mounted, the rest are uploaded monolithically (small) or in chunks (large);
* manifests are PUT with their exact bytes and media type, so every digest is the one in bundle.json;
* each image goes to ``<original registry host>/<repository>:<tag>`` (e.g. registry.k8s.io/pause:3.9),
  plus the bare ``<repository>`` for docker.io images when docker's registry-mirrors needs it.
"""

import base64
import hashlib
import json
import os
import ssl

try:
    from urllib.request import Request, build_opener, HTTPSHandler, HTTPHandler, HTTPErrorProcessor
    from urllib.error import URLError
    from urllib.parse import urljoin, urlencode
except ImportError:  # pragma: no cover - Python 2 is not supported
    raise

from installer.bundle import split_ref
from installer.errors import InstallerError

REF_ANNOTATION = "io.airgap-bundler.image.ref"
NAME_ANNOTATION = "org.opencontainers.image.ref.name"
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
CHUNK = 16 * 1024 * 1024


class _NoRaise(HTTPErrorProcessor):
    """Return every response (4xx/5xx included) so the caller looks at the status itself."""

    def http_response(self, request, response):
        return response

    https_response = http_response


class Registry(object):
    def __init__(self, base_url, username=None, password=None, cafile=None, insecure=False, chunk_size=CHUNK):
        self.base = base_url.rstrip("/")
        self.auth = None
        if username is not None:
            token = base64.b64encode(("%s:%s" % (username, password or "")).encode("utf-8")).decode("ascii")
            self.auth = "Basic " + token
        ctx = None
        if self.base.startswith("https://"):
            ctx = ssl.create_default_context(cafile=cafile)
            if insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
        self.opener = build_opener(HTTPSHandler(context=ctx), HTTPHandler(), _NoRaise())
        self.chunk_size = chunk_size
        self.stats = {"blobs_uploaded": 0, "blobs_skipped": 0, "blobs_mounted": 0, "bytes_uploaded": 0,
                      "manifests": 0}

    def request(self, method, url, data=None, headers=None, expect=()):
        if not url.startswith("http"):
            url = urljoin(self.base + "/", url.lstrip("/"))
        req = Request(url, data=data, method=method)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        if self.auth:
            req.add_header("Authorization", self.auth)
        try:
            resp = self.opener.open(req, timeout=300)
        except (URLError, OSError) as e:
            raise InstallerError("cannot reach the registry at %s: %s" % (self.base, getattr(e, "reason", e)),
                                 phase="registry", hint="Check that the registry service is running") from None
        body = resp.read()
        resp.close()
        if expect and resp.status not in expect:
            msg = body.decode("utf-8", "replace")[:500]
            if resp.status == 401:
                raise InstallerError("the registry at %s refused the push credentials" % self.base,
                                     phase="registry", command="%s %s" % (method, url), stderr=msg,
                                     hint="The credentials are in /etc/airgap-registry/push-credentials")
            raise InstallerError("registry API %s %s answered HTTP %d" % (method, url, resp.status),
                                 phase="registry", command="%s %s" % (method, url), stderr=msg)
        return resp.status, resp.headers, body

    def ping(self):
        status, _, _ = self.request("GET", "/v2/")
        return status

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
        except (IOError, OSError, ValueError) as e:
            raise InstallerError("cannot read the image store %s/index.json: %s" % (root, e),
                                 hint="The bundle is damaged: unpack it again") from None

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


def target_repos(ref, docker_bare=False):
    """Repositories an image is pushed to and the tag/digest reference to use."""
    host, repo, tag = split_ref(ref)
    repos = ["%s/%s" % (host, repo)]
    if docker_bare and host == "docker.io":
        repos.append(repo)
    return repos, tag


class Pusher(object):
    def __init__(self, registry, layout, log=None):
        self.reg = registry
        self.layout = layout
        self.log = log or (lambda msg: None)
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

    def push_manifest(self, repo, desc, reference):
        """Push a manifest (and for an index, every child present in the layout) with its exact bytes."""
        digest = desc["digest"]
        media_type = desc.get("mediaType") or "application/vnd.oci.image.manifest.v1+json"
        data = self.layout.read_blob(digest)
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise InstallerError("manifest %s in the image store does not match its digest" % digest,
                                 hint="The bundle is damaged: unpack it again")
        doc = json.loads(data.decode("utf-8"))
        media_type = doc.get("mediaType") or media_type
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

    def push_all(self, docker_bare=False, only=None):
        """Push every image in the layout; returns the number of manifests that changed."""
        changed = 0
        for ref, desc in self.layout.images():
            if only and ref not in only:
                continue
            repos, tag = target_repos(ref, docker_bare)
            reference = tag[1:] if tag.startswith("@") else tag
            for repo in repos:
                if self.push_manifest(repo, desc, reference):
                    changed += 1
                    self.log("pushed %s as %s:%s" % (ref, repo, reference))
        return changed
