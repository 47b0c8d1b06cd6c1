"""docker daemon.json as the seed deployment had it, plus the registry CA location."""

import json
from collections import OrderedDict


def daemon_json(registry_mirrors=(), insecure_registries=(), data_root=None):
    cfg = OrderedDict([
        ("exec-opts", ["native.cgroupdriver=systemd"]),
        ("log-driver", "json-file"),
        ("log-opts", OrderedDict([("max-size", "100m")])),
        ("storage-driver", "overlay2"),
        ("registry-mirrors", list(registry_mirrors)),
    ])
    if insecure_registries:
        cfg["insecure-registries"] = list(insecure_registries)
    if data_root:
        cfg["data-root"] = data_root
    return json.dumps(cfg, indent=2) + "\n"


def ca_path(registry):
    """Where docker looks for the CA of a registry host:port."""
    return "/etc/docker/certs.d/%s/ca.crt" % registry
