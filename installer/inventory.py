"""Which hosts to install and how to reach them: quick flags or an ansible-style INI file.

INI format (documented in docs/installer.md)::

    [all:vars]
    ansible_user=centos
    ansible_ssh_private_key_file=/root/.ssh/id_ed25519

    [control_plane]
    cp1 ansible_host=10.0.0.11

    [workers]
    w1 ansible_host=10.0.0.12 ansible_port=2222
    10.0.0.13

Every error names the file and line and, for a typo, the closest valid word.
"""

import difflib
import ipaddress
import os
import re

from installer.errors import InstallerError

ROLE_CONTROL_PLANE = "control_plane"
ROLE_WORKER = "worker"

# Accepted group names -> role. Ansible/kubespray spellings are accepted so existing files work.
GROUPS = {
    "control_plane": ROLE_CONTROL_PLANE,
    "kube_control_plane": ROLE_CONTROL_PLANE,
    "masters": ROLE_CONTROL_PLANE,
    "workers": ROLE_WORKER,
    "kube_node": ROLE_WORKER,
    "nodes": ROLE_WORKER,
}

# Accepted host variables -> Host attribute.
HOST_KEYS = {
    "ansible_host": "address",
    "address": "address",
    "ansible_user": "user",
    "ansible_ssh_user": "user",
    "user": "user",
    "ansible_port": "port",
    "ansible_ssh_port": "port",
    "port": "port",
    "ansible_ssh_private_key_file": "key",
    "key": "key",
    "name": "name",
    "node_name": "name",
    "ansible_become": "become",
}

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class Host(object):
    """One machine: how to reach it (address, port, user, key) and its role in the cluster."""

    def __init__(self, address, role, name=None, user="root", port=22, key=None, alias=None, become=None):
        self.address = address
        self.role = role
        self.name = name
        self.user = user or "root"
        self.port = int(port or 22)
        self.key = key
        self.alias = alias or address
        self.become = become
        self.local = False  # set by the runner when this host is the machine running install.py

    @property
    def label(self):
        """How the host is named in output and errors."""
        return self.name or self.alias

    @property
    def is_control_plane(self):
        return self.role == ROLE_CONTROL_PLANE

    def __repr__(self):
        return "Host(%r, %r, name=%r)" % (self.address, self.role, self.name)


class Inventory(object):
    def __init__(self, hosts, source="command line", needs_control_plane=True):
        """`needs_control_plane` False: hosts joining an existing cluster (add-node) need none among them."""
        self.hosts = list(hosts)
        self.source = source
        self.needs_control_plane = needs_control_plane
        self.validate()

    @property
    def control_planes(self):
        return [h for h in self.hosts if h.role == ROLE_CONTROL_PLANE]

    @property
    def workers(self):
        return [h for h in self.hosts if h.role == ROLE_WORKER]

    @property
    def first_control_plane(self):
        return self.control_planes[0]

    def validate(self):
        if not self.control_planes and self.needs_control_plane:
            raise InstallerError(
                "the inventory (%s) has no control-plane host" % self.source,
                hint="Name at least one host under [control_plane], or pass --control-plane ADDRESS")
        seen_addr = {}
        seen_name = {}
        for h in self.hosts:
            key = (h.address, h.port)
            if key in seen_addr:
                raise InstallerError(
                    "the inventory (%s) lists host %s twice (as %s and as %s)"
                    % (self.source, h.address, seen_addr[key], h.alias),
                    hint="A host may appear in only one group; list each address once")
            seen_addr[key] = h.alias
            if h.name:
                if not _NAME_RE.match(h.name) or len(h.name) > 63 and "." not in h.name:
                    raise InstallerError(
                        "the inventory (%s) gives host %s the node name %r, which is not a valid "
                        "lowercase DNS name" % (self.source, h.address, h.name),
                        hint="Use lowercase letters, digits, '-' and '.'")
                if h.name in seen_name:
                    raise InstallerError(
                        "the inventory (%s) gives the node name %r to both %s and %s"
                        % (self.source, h.name, seen_name[h.name], h.address),
                        hint="Node names must be unique")
                seen_name[h.name] = h.address


def _split_addresses(text):
    return [a.strip() for a in (text or "").split(",") if a.strip()]


def from_flags(control_plane, workers, user="root", port=22, key=None):
    """Inventory from --control-plane A[,B] --workers C,D."""
    hosts = []
    for addr in _split_addresses(control_plane):
        hosts.append(Host(addr, ROLE_CONTROL_PLANE, user=user, port=port, key=key))
    for addr in _split_addresses(workers):
        hosts.append(Host(addr, ROLE_WORKER, user=user, port=port, key=key))
    for h in hosts:
        _check_address(h.address, "--control-plane/--workers")
    return Inventory(hosts, source="--control-plane/--workers")


def _check_address(address, where):
    if not address or any(c.isspace() for c in address) or address.startswith("-"):
        raise InstallerError("%s: %r is not a host address" % (where, address),
                             hint="Give an IP address or a resolvable host name")
    try:
        ipaddress.ip_address(address)
        return
    except ValueError:
        pass
    if not re.match(r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$", address):
        raise InstallerError("%s: %r is not a host address" % (where, address),
                             hint="Give an IP address or a resolvable host name")


def _suggest(word, choices):
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return (" (did you mean %r?)" % match[0]) if match else ""


def _parse_vars(tokens, path, lineno):
    out = {}
    for tok in tokens:
        if "=" not in tok:
            raise InstallerError(
                "%s line %d: %r is not key=value" % (path, lineno, tok),
                hint="Host lines look like: NAME ansible_host=ADDRESS ansible_user=USER")
        k, v = tok.split("=", 1)
        k = k.strip()
        v = v.strip().strip("'\"")
        if k not in HOST_KEYS:
            raise InstallerError(
                "%s line %d: unknown host variable %r%s" % (path, lineno, k, _suggest(k, HOST_KEYS)),
                hint="Known variables: %s" % ", ".join(sorted(HOST_KEYS)))
        attr = HOST_KEYS[k]
        if attr == "port":
            if not v.isdigit() or not 0 < int(v) < 65536:
                raise InstallerError("%s line %d: %s=%r is not a port number" % (path, lineno, k, v))
        out[attr] = v
    return out


def parse_ini(text, path="inventory.ini", defaults=None):
    """Parse ansible-style INI text into an Inventory. `defaults` are --ssh-user/--ssh-key values."""
    defaults = dict(defaults or {})
    group_vars = {"all": {}}
    members = []  # (group, alias, vars, lineno)
    section = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith(";"):
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise InstallerError("%s line %d: unterminated section header %r" % (path, lineno, line))
            name = line[1:-1].strip()
            base, _, kind = name.partition(":")
            valid = set(GROUPS) | {"all"}
            if base not in valid:
                raise InstallerError(
                    "%s line %d: unknown group [%s]%s" % (path, lineno, base, _suggest(base, valid)),
                    hint="Groups: [control_plane], [workers], [all:vars], [GROUP:vars]")
            if kind not in ("", "vars"):
                raise InstallerError("%s line %d: unsupported section [%s] (only :vars)" % (path, lineno, name))
            if base == "all" and kind != "vars":
                raise InstallerError("%s line %d: list hosts under [control_plane] or [workers], not [all]"
                                     % (path, lineno))
            section = (base, kind)
            continue
        if section is None:
            raise InstallerError("%s line %d: %r is outside any [group]" % (path, lineno, line),
                                 hint="Start the file with [control_plane]")
        base, kind = section
        if kind == "vars":
            group_vars.setdefault(base, {}).update(_parse_vars([line.replace(" = ", "=")], path, lineno))
            continue
        tokens = line.split()
        alias = tokens[0]
        if "=" in alias:
            raise InstallerError("%s line %d: a host line starts with the host name or address, got %r"
                                 % (path, lineno, alias))
        members.append((base, alias, _parse_vars(tokens[1:], path, lineno), lineno))

    hosts = []
    seen = {}
    for group, alias, hvars, lineno in members:
        if alias in seen:
            raise InstallerError(
                "%s line %d: host %r is already listed on line %d" % (path, lineno, alias, seen[alias]),
                hint="A host may appear in only one group")
        seen[alias] = lineno
        merged = {}
        merged.update(defaults)
        merged.update(group_vars.get("all", {}))
        merged.update(group_vars.get(group, {}))
        merged.update(hvars)
        address = merged.get("address") or alias
        _check_address(address, "%s line %d" % (path, lineno))
        name = merged.get("name")
        if name is None and "address" in hvars and not _is_ip(alias):
            name = alias  # 'cp1 ansible_host=10.0.0.11': the alias is the node name
        if name is not None:
            name = name.lower()
        key = merged.get("key")
        if key:
            key = os.path.expanduser(key)
        hosts.append(Host(address, GROUPS[group], name=name, user=merged.get("user"), port=merged.get("port"),
                          key=key, alias=alias, become=merged.get("become")))
    return Inventory(hosts, source=path)


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def load(path, defaults=None):
    try:
        with open(path) as f:
            text = f.read()
    except (IOError, OSError) as e:
        raise InstallerError("cannot read the inventory %s: %s" % (path, e.strerror or e),
                             hint="Pass -i with the path of an existing INI file") from None
    return parse_ini(text, path, defaults)
