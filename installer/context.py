"""Everything the phases need to know besides a host's facts: bundle, inventory, options, addresses."""

import hashlib
import os
import sys

from installer.bundle import split_ref
from installer.constants import API_PORT, REGISTRY_PORT, REPO_PORT
from installer.render import kubeadm as kubeadm_render


class Options(object):
    """Operator choices from the command line, with the defaults the installer documents."""

    def __init__(self, **kw):
        self.force = kw.get("force", False)
        self.selinux = kw.get("selinux", "enforcing")
        self.firewalld = kw.get("firewalld", "on")
        self.timezone = kw.get("timezone")
        self.iso = kw.get("iso")
        self.media = kw.get("media")
        self.pod_subnet = kw.get("pod_subnet")
        self.control_plane_endpoint = kw.get("control_plane_endpoint")
        self.serve_address = kw.get("serve_address")
        self.verify_timeout = kw.get("verify_timeout", 600)
        self.upstream_dns = kw.get("upstream_dns")  # "IP[,IP]": where CoreDNS forwards non-cluster names
        # your own registry instead of the bundled one (installer.extregistry); credentials are never recorded
        self.registry = kw.get("registry")  # HOST[:PORT][/PREFIX]
        self.registry_ca = kw.get("registry_ca")
        self.registry_credentials = kw.get("registry_credentials")


def upstream_dns_list(text):
    """--upstream-dns 'IP[,IP]' as a list of addresses; a clear error for anything else."""
    import ipaddress

    from installer.errors import InstallerError
    out = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(str(ipaddress.ip_address(part)))
        except ValueError:
            raise InstallerError("--upstream-dns: %r is not an IP address" % part,
                                 hint="Give the nameservers CoreDNS should forward to as IP[,IP], e.g. "
                                      "--upstream-dns 10.0.0.2,10.0.0.3") from None
    return out


class Context(object):
    def __init__(self, bundle, inventory, options=None, serve_host=None, media=None):
        self.bundle = bundle
        self.inventory = inventory
        self.options = options or Options()
        self.serve_host = serve_host or inventory.first_control_plane
        self.media = media  # dict from installer.media.describe(), for the serving host
        self.facts = {}     # host label -> Facts (kept fresh by the runner)
        self.journals = {}  # host label -> Journal
        self.connections = {}
        self.ca_pem = None  # registry CA, once it exists
        self.previous_record = None  # the cluster record of an earlier operation (dict), if any
        self.new_hosts = None  # add-node: labels of the hosts being added (None: not a day-2 operation)
        self.skipped = set()   # --skip-unreachable: labels of hosts this operation neither contacts nor changes
        self.unreachable = {}  # status: label -> why a host that was tried did not answer
        self.recorded_names = {}  # address -> node name from the cluster record (for hosts without facts)
        self.join_token = None  # the operation's bootstrap token (installer.phases.join)
        self.serve_python = sys.executable or "/usr/bin/python3"
        self.own_missing = None  # --registry: [(ref, target, manifests, blobs)] the registry lacks (registry phase)
        self._own = None
        self.log = lambda msg: None

    # -- hosts --------------------------------------------------------------------------------------
    @property
    def nodes(self):
        return self.inventory.hosts

    @property
    def all_hosts(self):
        if self.serve_host in self.nodes:
            return list(self.nodes)
        return [self.serve_host] + list(self.nodes)

    @property
    def first_cp(self):
        return self.inventory.first_control_plane

    def is_serve_host(self, host):
        return host is self.serve_host

    def node_name(self, host):
        if host.name:
            return host.name
        f = self.facts.get(host.label)
        hostname = f.hostname if f is not None else None
        if hostname:
            return hostname.lower()
        return self.recorded_names.get(host.address) or host.address.split(".")[0].lower()

    def is_new(self, host):
        """add-node: the host is being added (every host is, for an install)."""
        return self.new_hosts is None or host.label in self.new_hosts

    @property
    def reachable_hosts(self):
        return [h for h in self.all_hosts if h.label not in self.skipped]

    # -- addresses ------------------------------------------------------------------------------------
    @property
    def serve_address(self):
        return self.options.serve_address or self.serve_host.address

    @property
    def own_registry(self):
        """installer.extregistry.OwnRegistry when --registry names the operator's registry (None: the bundled one)."""
        if not self.options.registry:
            return None
        if self._own is None:
            from installer.extregistry import OwnRegistry
            self._own = OwnRegistry(self.options.registry, self.options.registry_ca, self.options.registry_credentials)
        return self._own

    @property
    def registry(self):
        """host:port of the registry the hosts pull from (how containerd's certs.d and docker name it)."""
        own = self.own_registry
        return own.target.address if own else "%s:%d" % (self.serve_address, REGISTRY_PORT)

    @property
    def registry_path(self):
        """registry[/PREFIX]: where the bundle's images are (the prefix is a Harbor project or path)."""
        own = self.own_registry
        return own.target.path if own else self.registry

    @property
    def repo_url(self):
        return "http://%s:%d" % (self.serve_address, REPO_PORT)

    @property
    def api_endpoint(self):
        return self.options.control_plane_endpoint or "%s:%d" % (self.first_cp.address, API_PORT)

    @property
    def pod_subnet(self):
        return self.options.pod_subnet or kubeadm_render.DEFAULT_POD_SUBNETS.get(self.bundle.cni, "10.244.0.0/16")

    @property
    def bundle_id(self):
        """Identifies the bundle content: sha256 of its SHA256SUMS."""
        p = self.bundle.path("SHA256SUMS")
        if os.path.exists(p):
            with open(p, "rb") as f:
                return hashlib.sha256(f.read()).hexdigest()
        return "unknown"

    # -- cluster DNS -----------------------------------------------------------------------------------
    @property
    def dns(self):
        """How CoreDNS forwards (installer.render.coredns.decide), from --upstream-dns and the cluster hosts'
        /etc/resolv.conf (facts)."""
        from installer.render import coredns
        resolv = dict((h.label, self.facts[h.label].file(coredns.RESOLV_CONF) if self.facts[h.label] else None)
                      for h in self.nodes if h.label in self.facts)
        return coredns.decide(upstream_dns_list(self.options.upstream_dns), resolv)

    # -- images ---------------------------------------------------------------------------------------
    def pause_image(self):
        return self.bundle.find_image("pause") or "registry.k8s.io/pause:3.9"

    def local_ref(self, ref):
        """The same image in the local registry, namespaced by its original registry host."""
        host, repo, tag = split_ref(ref)
        sep = "" if tag.startswith("@") else ":"
        return "%s/%s/%s%s%s" % (self.registry_path, host, repo, sep, tag)
