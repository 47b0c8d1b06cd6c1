"""The unpacked bundle as the installer sees it: bundle.json plus the directories next to install.py."""

import json
import os

from installer.errors import InstallerError

OCI_PLATFORMS = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}


class Bundle(object):
    def __init__(self, root, data):
        self.root = os.path.abspath(root)
        self.data = data

    @classmethod
    def load(cls, root):
        path = os.path.join(root, "bundle.json")
        try:
            with open(path) as f:
                data = json.load(f)
        except (IOError, OSError) as e:
            raise InstallerError("cannot read %s: %s" % (path, e.strerror or e),
                                 hint="Run install.py from the unpacked bundle directory, or pass --bundle DIR",
                                 ) from None
        except ValueError as e:
            raise InstallerError("%s is not valid JSON (%s)" % (path, e),
                                 hint="The bundle is damaged: unpack the tarball again") from None
        except RecursionError:
            raise InstallerError("%s is nested too deeply to be a bundle.json" % path,
                                 hint="The bundle is damaged: unpack the tarball again") from None
        return cls(root, cls.check(data, path))

    @staticmethod
    def check(data, path):
        """bundle.json's content (from the file, or a join file's copy), refused naming the section of a wrong
        shape; returns it."""
        if not isinstance(data, dict):
            raise InstallerError("%s is not a JSON object" % path, hint="The bundle is damaged: unpack the tarball "
                                                                       "again")
        if data.get("schemaVersion") != 1:
            raise InstallerError("%s has schemaVersion %r; this installer reads version 1"
                                 % (path, data.get("schemaVersion")),
                                 hint="Use the install.py shipped in the same bundle")
        for key in ("target", "kubernetes"):
            if key not in data or not isinstance(data[key], (dict, type(None))):  # null: packages/images only
                raise InstallerError("%s has no %r section" % (path, key),
                                     hint="The bundle is damaged or was not written by bundler build")
        for key in ("packages", "images", "files"):  # every command reads these lists of objects
            value = data.get(key)
            if value is not None and (not isinstance(value, list) or not all(isinstance(e, dict) for e in value)):
                raise InstallerError("%s: %r is not a list of objects" % (path, key),
                                     hint="The bundle is damaged or was not written by bundler build")
        if not all(isinstance(i.get("ref"), str) for i in data.get("images") or []):
            raise InstallerError("%s: an entry of 'images' has no ref" % path,
                                 hint="The bundle is damaged or was not written by bundler build")
        return data

    def path(self, rel):
        return os.path.join(self.root, rel)

    @property
    def name(self):
        return self.data.get("name", "bundle")

    @property
    def os(self):
        return self.data["target"]["os"]

    @property
    def el_major(self):
        return int(self.os[2:])

    @property
    def arch(self):
        return self.data["target"]["arch"]

    @property
    def k8s_version(self):
        return str(self.data["kubernetes"]["version"]).lstrip("v")

    @property
    def runtime(self):
        return self.data.get("runtime", "containerd")

    @property
    def cni(self):
        return self.data.get("cni", "none")

    @property
    def install_mode(self):
        return self.data.get("install", "packages")

    @property
    def packages(self):
        return self.data.get("packages", [])

    @property
    def requested_packages(self):
        """The package specs of the manifest's spec.packages (as given: NAME[-VERSION[-RELEASE]])."""
        return list((self.data.get("manifest") or {}).get("packages") or [])

    def package_names(self):
        return set(p["name"] for p in self.packages)

    def package_version(self, name):
        for p in self.packages:
            if p["name"] == name:
                return p.get("version")
        return None

    @property
    def images(self):
        return self.data.get("images", [])

    @property
    def files(self):
        return self.data.get("files", [])

    def file(self, name):
        for f in self.files:
            if f.get("name") == name or os.path.basename(f.get("path", "")) == name:
                return f
        return None

    def gpgkeys(self):
        d = self.path("repo/gpgkeys")
        if not os.path.isdir(d):
            return []
        return sorted(n for n in os.listdir(d) if not n.startswith("."))

    def image_registries(self):
        """Registry host names of the bundled images ('registry.k8s.io', 'docker.io', ...)."""
        return sorted(set(split_ref(i["ref"])[0] for i in self.images))

    def find_image(self, repo_suffix):
        """First image whose repository ends with /`repo_suffix` (e.g. 'pause'), or None."""
        for i in self.images:
            host, repo, _ = split_ref(i["ref"])
            if repo == repo_suffix or repo.endswith("/" + repo_suffix):
                return i["ref"]
        return None

    def kube_image_repository(self):
        """Where kubeadm's control-plane images come from, e.g. registry.k8s.io (k8s.gcr.io for old ones)."""
        for i in self.images:
            host, repo, _ = split_ref(i["ref"])
            if repo.endswith("kube-apiserver"):
                return "/".join([host] + repo.split("/")[:-1])
        return "registry.k8s.io"

    def cni_manifest(self):
        d = self.path("manifests")
        if self.cni in ("calico", "flannel"):
            p = os.path.join(d, "%s.yaml" % self.cni)
            if os.path.exists(p):
                return p
        return None


def split_ref(ref):
    """'registry.k8s.io/pause:3.9' -> ('registry.k8s.io', 'pause', '3.9'); docker.io defaults applied.
    The tag part is '@sha256:...' for a digest reference."""
    name, tag = ref, "latest"
    if "@" in name:
        name, tag = name.split("@", 1)
        tag = "@" + tag
    else:
        last = name.rsplit("/", 1)[-1]
        if ":" in last:
            name, tag = name.rsplit(":", 1)
    parts = name.split("/", 1)
    if len(parts) == 2 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        host, repo = parts
    else:
        host, repo = "docker.io", name
    if host == "docker.io" and "/" not in repo:
        repo = "library/" + repo
    return host, repo, tag
