"""Fill the bundled registry's filesystem storage straight from the bundle's OCI layout, without HTTP.

Distribution's filesystem driver keeps, under its root directory (layout from its
registry/storage/paths.go):

    docker/registry/v2/blobs/sha256/<first 2 hex>/<hex>/data          every blob, once
    docker/registry/v2/repositories/<repo>/_layers/sha256/<hex>/link  configs and layers the repo may serve
    .../_manifests/revisions/sha256/<hex>/link                        manifests and indexes (children too)
    .../_manifests/tags/<tag>/index/sha256/<hex>/link                 every digest the tag has named
    .../_manifests/tags/<tag>/current/link                            what the tag names now

A link file holds the digest ("sha256:<hex>", no newline). Repositories and tags are the ones the HTTP push
(installer.registry_push) gives, so either way the registry ends up serving the same names and digests.

Blobs are hard-linked from the bundle when it is on the same filesystem and owned by us (no bytes written),
else copied with their sha256 checked on the way. A hard-linked blob is trusted without re-reading it:
install.py checked every file of the bundle against SHA256SUMS (a blob's name is its digest) before any
phase ran; its size is still checked. Manifests and indexes are always read and checked (they are parsed).

Every file is written to a temporary name in its final directory and renamed, in the order the registry
itself uses (blob data, repository links, manifest revisions, tag index, tag current), so a registry reading
the same storage meanwhile (it keeps no cache in our configuration) never sees a tag whose content is
missing, and an interrupted run leaves no half-written blob. A second run writes nothing.
"""

import errno
import hashlib
import json
import os
import re

from installer import fileplace
from installer.errors import InstallerError
from installer.registry_push import INDEX_TYPES, target_repos

V2 = ("docker", "registry", "v2")
TMP_SUFFIX = ".airgap-tmp"
BUFSIZE = 1 << 20
DAMAGED = "The bundle is damaged: unpack it again"
# Distribution's grammar for repository names and tags (the HTTP API refuses anything else with NAME_INVALID
# or TAG_INVALID); checked here too, so that a name can never reach outside the storage directory.
REPO_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def _split(digest):
    alg, _, hexd = digest.partition(":")
    if alg != "sha256" or len(hexd) != 64 or any(c not in "0123456789abcdef" for c in hexd):
        raise InstallerError("the image store names an unsupported digest %r" % digest, hint=DAMAGED)
    return alg, hexd


class Storage(object):
    """Writes blobs and links into one Distribution storage root (the `rootdirectory` of its config)."""

    def __init__(self, root, layout, link=True):
        self.v2 = os.path.join(root, *V2)
        self.layout = layout
        self.link = link
        self.done_blobs = set()
        self.stats = {"blobs_linked": 0, "blobs_copied": 0, "blobs_present": 0, "bytes_copied": 0,
                      "links_written": 0, "manifests": 0}

    # -- paths --------------------------------------------------------------------------------------
    def blob_data(self, digest):
        alg, hexd = _split(digest)
        return os.path.join(self.v2, "blobs", alg, hexd[:2], hexd, "data")

    def repo_dir(self, repo):
        return os.path.join(self.v2, "repositories", *repo.split("/"))

    def layer_link(self, repo, digest):
        return os.path.join(self.repo_dir(repo), "_layers", *(_split(digest) + ("link",)))

    def revision_link(self, repo, digest):
        return os.path.join(self.repo_dir(repo), "_manifests", "revisions", *(_split(digest) + ("link",)))

    def tag_index_link(self, repo, tag, digest):
        return os.path.join(self.repo_dir(repo), "_manifests", "tags", tag, "index", *(_split(digest) + ("link",)))

    def tag_current_link(self, repo, tag):
        return os.path.join(self.repo_dir(repo), "_manifests", "tags", tag, "current", "link")

    # -- writers ------------------------------------------------------------------------------------
    def write_link(self, path, digest):
        """Make `path` hold exactly `digest`; untouched when it already does."""
        data = digest.encode("ascii")
        try:
            with open(path, "rb") as f:
                if f.read() == data:
                    return False
        except (IOError, OSError):
            pass
        self._makedirs(os.path.dirname(path))
        tmp = fileplace.tmp_beside(path, TMP_SUFFIX)
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, path)
        except (IOError, OSError) as e:
            fileplace.remove_quietly(tmp)
            raise self._write_error(path, e) from None
        self.stats["links_written"] += 1
        return True

    def put_blob(self, digest, size=None):
        """blobs/.../data for `digest`, from the bundle; kept when already there with the right size."""
        if digest in self.done_blobs:
            return
        dest = self.blob_data(digest)
        src = self.layout.blob_path(digest)
        try:
            st = os.stat(src)
        except OSError:
            raise InstallerError("the image store lacks blob %s (%s)" % (digest, src), hint=DAMAGED) from None
        if size is not None and st.st_size != size:
            raise InstallerError("blob %s in the image store has %d bytes, its manifest says %d"
                                 % (digest, st.st_size, size), hint=DAMAGED)
        try:
            have = os.stat(dest)
        except OSError:
            have = None
        if have is not None and have.st_size == st.st_size:
            self.stats["blobs_present"] += 1
            self.done_blobs.add(digest)
            return
        self._makedirs(os.path.dirname(dest))
        tmp = fileplace.tmp_beside(dest, TMP_SUFFIX)
        fileplace.remove_quietly(tmp)
        try:
            if self._may_link(st) and fileplace.try_link(src, tmp):
                self.stats["blobs_linked"] += 1
            else:
                self._copy_checked(digest, src, tmp)
                self.stats["blobs_copied"] += 1
                self.stats["bytes_copied"] += st.st_size
            os.rename(tmp, dest)
        except InstallerError:
            fileplace.remove_quietly(tmp)
            raise
        except (IOError, OSError) as e:
            fileplace.remove_quietly(tmp)
            raise self._write_error(dest, e) from None
        self.done_blobs.add(digest)

    def _may_link(self, st):
        """Share the bundle's inode only when nobody but us can change it afterwards (fileplace.may_link):
        otherwise the served bytes could change under the registry."""
        return self.link and fileplace.may_link(st)

    @staticmethod
    def _copy_checked(digest, src, tmp):
        if "sha256:" + fileplace.copy_hashed(src, tmp, BUFSIZE) != digest:
            raise InstallerError("blob %s in the image store does not match its digest (%s)" % (digest, src),
                                 hint=DAMAGED)

    def _makedirs(self, d):
        try:
            os.makedirs(d)
        except OSError as e:
            if e.errno != errno.EEXIST or not os.path.isdir(d):
                raise self._write_error(d, e) from None

    def _write_error(self, path, error):
        reason = getattr(error, "strerror", None) or error
        return InstallerError("cannot write the registry storage at %s: %s" % (path, reason), phase="registry",
                              hint="Check free space and permissions under %s, then run ./install.py again" % self.v2)

    # -- images -------------------------------------------------------------------------------------
    def read_manifest(self, digest):
        """The manifest's exact bytes (checked against its digest) and its parsed JSON."""
        path = self.layout.blob_path(digest)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except (IOError, OSError):
            raise InstallerError("the image store lacks manifest %s (%s)" % (digest, path), hint=DAMAGED) from None
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise InstallerError("manifest %s in the image store does not match its digest" % digest, hint=DAMAGED)
        try:
            return data, json.loads(data.decode("utf-8"))
        except ValueError:
            raise InstallerError("manifest %s in the image store is not JSON" % digest, hint=DAMAGED) from None

    def put_manifest(self, repo, digest, seen=None):
        """A manifest or index in `repo`: its content first (children, config, layers), its revision last."""
        seen = set() if seen is None else seen
        if digest in seen:
            return
        seen.add(digest)
        data, doc = self.read_manifest(digest)
        if doc.get("mediaType") in INDEX_TYPES or "manifests" in doc:
            for child in doc.get("manifests", []):
                if not os.path.exists(self.layout.blob_path(child["digest"])):
                    raise InstallerError("index %s names manifest %s, which the image store lacks (the registry "
                                         "refuses such an index)" % (digest, child["digest"]), hint=DAMAGED)
                self.put_manifest(repo, child["digest"], seen)
        else:
            refs = [doc["config"]] if doc.get("config") else []
            refs += [layer for layer in doc.get("layers", []) if not layer.get("urls")]  # foreign layers: not ours
            for ref in refs:
                self.put_blob(ref["digest"], ref.get("size"))
            for ref in refs:
                self.write_link(self.layer_link(repo, ref["digest"]), ref["digest"])
        self.put_blob(digest, len(data))
        if self.write_link(self.revision_link(repo, digest), digest):
            self.stats["manifests"] += 1

    def put_image(self, repo, digest, reference):
        """Everything of one image in `repo`, then `reference` (a tag; a digest reference adds no tag).
        True when anything was written."""
        before = self._writes()
        self.put_manifest(repo, digest)
        if not reference.startswith("sha256:"):
            self.write_link(self.tag_index_link(repo, reference, digest), digest)
            self.write_link(self.tag_current_link(repo, reference), digest)
        return self._writes() != before

    def _writes(self):
        return self.stats["links_written"] + self.stats["blobs_linked"] + self.stats["blobs_copied"]


def lay_out(layout, root, docker_bare=False, only=None, link=True, log=None):
    """Put every image of `layout` (an installer.registry_push.Layout) into the storage at `root`.

    Returns the Storage, whose `stats` say what was done; `changed` counts the tags that changed.
    """
    log = log or (lambda msg: None)
    storage = Storage(root, layout, link=link)
    changed = 0
    for ref, desc in layout.images():
        if only and ref not in only:
            continue
        repos, tag = target_repos(ref, docker_bare)
        reference = tag[1:] if tag.startswith("@") else tag
        for repo in repos:
            if not REPO_RE.match(repo) or not (reference.startswith("sha256:") or TAG_RE.match(reference)):
                raise InstallerError("the image store names %r, which is not a valid registry repository and tag "
                                     "(%s:%s)" % (ref, repo, reference), hint=DAMAGED)
            if storage.put_image(repo, desc["digest"], reference):
                changed += 1
                log("stored %s as %s:%s" % (ref, repo, reference))
    storage.stats["changed"] = changed
    return storage
