"""containerd config.toml and certs.d/<registry>/hosts.toml (mirrors without name rewriting)."""

CERTS_D = "/etc/containerd/certs.d"

# What containerd calls the upstream endpoint of a registry name.
UPSTREAM_SERVERS = {"docker.io": "https://registry-1.docker.io"}


def _q(s):
    return '"%s"' % str(s).replace("\\", "\\\\").replace('"', '\\"')


def config_toml(sandbox_image, containerd_major=1, certs_dir=CERTS_D):
    """The whole config.toml: CRI enabled, SystemdCgroup, sandbox image, registry config_path."""
    if containerd_major >= 2:
        return "\n".join([
            "# Written by airgap-installer. Changes are overwritten on the next run.",
            "version = 3",
            "",
            '[plugins."io.containerd.cri.v1.images"]',
            '  [plugins."io.containerd.cri.v1.images".pinned_images]',
            "    sandbox = %s" % _q(sandbox_image),
            '  [plugins."io.containerd.cri.v1.images".registry]',
            "    config_path = %s" % _q(certs_dir),
            "",
            '[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]',
            '  runtime_type = "io.containerd.runc.v2"',
            '  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]',
            "    SystemdCgroup = true",
            "",
        ])
    return "\n".join([
        "# Written by airgap-installer. Changes are overwritten on the next run.",
        "version = 2",
        "",
        '[plugins."io.containerd.grpc.v1.cri"]',
        "  sandbox_image = %s" % _q(sandbox_image),
        '  [plugins."io.containerd.grpc.v1.cri".cni]',
        '    bin_dir = "/opt/cni/bin"',
        '    conf_dir = "/etc/cni/net.d"',
        '  [plugins."io.containerd.grpc.v1.cri".containerd]',
        '    default_runtime_name = "runc"',
        '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
        '      runtime_type = "io.containerd.runc.v2"',
        '      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
        "        SystemdCgroup = true",
        '  [plugins."io.containerd.grpc.v1.cri".registry]',
        "    config_path = %s" % _q(certs_dir),
        "",
    ])


def hosts_toml(upstream, registry, ca_path=None, namespaced=True, prefix=""):
    """hosts.toml that sends pulls of `upstream` (e.g. registry.k8s.io) to the local `registry` (host:port).

    With namespaced=True the image is looked up under /v2/<upstream>/<repo> in the local registry (how the
    installer pushes them), so registry.k8s.io/pause and docker.io/library/pause can never collide; under
    /v2/<prefix>/<upstream>/<repo> with a prefix (a Harbor project of your own registry).
    """
    server = UPSTREAM_SERVERS.get(upstream, "https://%s" % upstream)
    if upstream == registry:
        url = "https://%s" % registry
        override = False
    elif namespaced:
        url = "https://%s/v2/%s" % (registry, "/".join(p for p in (prefix.strip("/"), upstream) if p))
        override = True
    else:
        url = "https://%s" % registry
        override = False
    lines = [
        "# Written by airgap-installer: pulls of %s come from the local registry %s." % (upstream, registry),
        "server = %s" % _q(server if upstream != registry else url),
        "",
        "[host.%s]" % _q(url),
        '  capabilities = ["pull", "resolve"]',
    ]
    if ca_path:
        lines.append("  ca = %s" % _q(ca_path))
    if override:
        lines.append("  override_path = true")
    return "\n".join(lines) + "\n"


def hosts_files(upstreams, registry, ca_path, certs_dir=CERTS_D, prefix=""):
    """{path: content} for every upstream registry plus the local registry itself."""
    out = {}
    for up in sorted(set(upstreams) | {registry}):
        out["%s/%s/hosts.toml" % (certs_dir, up)] = hosts_toml(up, registry, ca_path, prefix=prefix)
    return out
