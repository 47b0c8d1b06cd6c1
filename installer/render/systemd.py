"""systemd units the installer writes: repo HTTP server, registries, media mount, and the
runtime/kubelet units for bundles built with `install: binaries`."""

UNIT_DIR = "/etc/systemd/system"


def repo_server_unit(python, address, port, directory):
    """Read-only HTTP for the bundle repo and the media. http.server only serves GET/HEAD and maps paths
    inside `directory` (no '..' traversal); the unit has no write access anywhere."""
    return """# Written by airgap-installer.
[Unit]
Description=airgap-installer: yum repositories over HTTP for the cluster
After=network-online.target opt-airgap-media.mount
Wants=network-online.target

[Service]
WorkingDirectory={d}
ExecStart={py} -m http.server {port} --bind {addr}
User=nobody
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=full
ProtectHome=yes
ReadOnlyDirectories=/
Restart=on-failure

[Install]
WantedBy=multi-user.target
""".format(d=directory, py=python, port=port, addr=address)


def media_mount_unit(what, where="/opt/airgap/media", iso=False):
    return """# Written by airgap-installer.
[Unit]
Description=airgap-installer: OS install media

[Mount]
What={what}
Where={where}
Type=iso9660
Options=ro{loop}

[Install]
WantedBy=multi-user.target
""".format(what=what, where=where, loop=",loop" if iso else "")


def registry_unit(name, binary, config, description):
    return """# Written by airgap-installer.
[Unit]
Description={desc}
After=network-online.target
Wants=network-online.target

[Service]
ExecStart={bin} serve {cfg}
Restart=on-failure
NoNewPrivileges=yes
ProtectSystem=full
ProtectHome=yes

[Install]
WantedBy=multi-user.target
""".format(desc=description, bin=binary, cfg=config)


def containerd_unit(bindir="/usr/local/bin"):
    return """# Written by airgap-installer (install: binaries).
[Unit]
Description=containerd container runtime
After=network.target local-fs.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart={b}/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
LimitNOFILE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
""".format(b=bindir)


def docker_unit(bindir="/usr/local/bin"):
    return """# Written by airgap-installer (install: binaries).
[Unit]
Description=Docker Application Container Engine
After=network-online.target containerd.service
Wants=network-online.target

[Service]
Type=notify
ExecStart={b}/dockerd
ExecReload=/bin/kill -s HUP $MAINPID
Restart=always
Delegate=yes
KillMode=process
LimitNOFILE=infinity
LimitNPROC=infinity
TasksMax=infinity

[Install]
WantedBy=multi-user.target
""".format(b=bindir)


def cri_dockerd_units(pause_image, bindir="/usr/local/bin"):
    service = """# Written by airgap-installer.
[Unit]
Description=CRI interface for Docker (cri-dockerd)
After=network-online.target docker.service
Requires=cri-docker.socket docker.service

[Service]
Type=notify
ExecStart={b}/cri-dockerd --container-runtime-endpoint fd:// --pod-infra-container-image={p}
Restart=always
Delegate=yes
KillMode=process

[Install]
WantedBy=multi-user.target
""".format(b=bindir, p=pause_image)
    socket = """# Written by airgap-installer.
[Unit]
Description=CRI Docker Socket for the API
PartOf=cri-docker.service

[Socket]
ListenStream=%t/cri-dockerd.sock
SocketMode=0660
SocketUser=root
SocketGroup=root

[Install]
WantedBy=sockets.target
"""
    return {UNIT_DIR + "/cri-docker.service": service, UNIT_DIR + "/cri-docker.socket": socket}


def kubelet_units(bindir="/usr/local/bin"):
    unit = """# Written by airgap-installer (install: binaries).
[Unit]
Description=kubelet: The Kubernetes Node Agent
Wants=network-online.target
After=network-online.target

[Service]
ExecStart={b}/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
""".format(b=bindir)
    dropin = """# Written by airgap-installer (install: binaries), as kubeadm's RPM ships it.
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/sysconfig/kubelet
ExecStart=
ExecStart={b}/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
""".format(b=bindir)
    return {UNIT_DIR + "/kubelet.service": unit, UNIT_DIR + "/kubelet.service.d/10-kubeadm.conf": dropin}
