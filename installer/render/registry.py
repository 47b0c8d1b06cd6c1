"""Config for the bundled registry (distribution). Two instances share one storage directory:

* the cluster-facing one: TLS on ADDRESS:5000, read-only storage, anonymous pulls;
* the push one: TLS on 127.0.0.1:5001, htpasswd auth (credentials the installer generates, root-only).
"""

from collections import OrderedDict

from installer.render.yamlgen import dump

STORAGE = "/var/lib/airgap-registry"
CONFIG_DIR = "/etc/airgap-registry"


def config_yml(addr, cert, key, storage=STORAGE, read_only=False, htpasswd=None, tls=True):
    storage_cfg = OrderedDict([
        ("filesystem", OrderedDict([("rootdirectory", storage)])),
        ("delete", OrderedDict([("enabled", False)])),
    ])
    if read_only:
        storage_cfg["maintenance"] = OrderedDict([("readonly", OrderedDict([("enabled", True)])),
                                                  ("uploadpurging", OrderedDict([("enabled", False)]))])
    http = OrderedDict([("addr", addr)])
    if tls:
        http["tls"] = OrderedDict([("certificate", cert), ("key", key)])
    http["headers"] = OrderedDict([("X-Content-Type-Options", ["nosniff"])])
    cfg = OrderedDict([
        ("version", "0.1"),
        ("log", OrderedDict([("level", "info")])),
        ("storage", storage_cfg),
        ("http", http),
    ])
    if htpasswd:
        cfg["auth"] = OrderedDict([("htpasswd", OrderedDict([("realm", "airgap-registry"), ("path", htpasswd)]))])
    return "# Written by airgap-installer.\n" + dump(cfg)
