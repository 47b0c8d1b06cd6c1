"""systemd units and config files as the real RPMs ship them (containerd.io, docker-ce, kubelet, kubeadm)."""

from __future__ import annotations

CONTAINERD_SERVICE = """# Copyright The containerd Authors. (as shipped in the containerd.io RPM)
[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target local-fs.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/bin/containerd

Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5

# Having non-zero Limit*s causes performance problems due to accounting overhead
# in the kernel. We recommend using cgroups to do container-local accounting.
LimitNPROC=infinity
LimitCORE=infinity

# Comment TasksMax if your systemd version does not supports it.
# Only systemd 226 and above support this version.
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
"""

# The containerd.io RPM ships a config that disables the CRI plugin; installers must replace it.
CONTAINERD_CONFIG = """#   Copyright 2018-2022 Docker Inc.

#   Licensed under the Apache License, Version 2.0 (the "License");
#   you may not use this file except in compliance with the License.

disabled_plugins = ["cri"]

#root = "/var/lib/containerd"
#state = "/run/containerd"
#subreaper = true
#oom_score = 0

#[grpc]
#  address = "/run/containerd/containerd.sock"
#  uid = 0
#  gid = 0
"""

DOCKER_SERVICE = """[Unit]
Description=Docker Application Container Engine
Documentation=https://docs.docker.com
After=network-online.target docker.socket firewalld.service containerd.service time-set.target
Wants=network-online.target containerd.service
Requires=docker.socket

[Service]
Type=notify
# the default is not to use systemd for cgroups because the delegate issues still
# exists and systemd currently does not support the cgroup feature set required
# for containers run by docker
ExecStart=/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock
ExecReload=/bin/kill -s HUP $MAINPID
TimeoutStartSec=0
RestartSec=2
Restart=always
StartLimitBurst=3
StartLimitInterval=60s
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
Delegate=yes
KillMode=process
OOMScoreAdjust=-500

[Install]
WantedBy=multi-user.target
"""

DOCKER_SOCKET = """[Unit]
Description=Docker Socket for the API

[Socket]
ListenStream=/run/docker.sock
SocketMode=0660
SocketUser=root
SocketGroup=docker

[Install]
WantedBy=sockets.target
"""

KUBELET_SERVICE = """[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""

_KUBELET_KUBECONFIG_ARGS = ("--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf "
                            "--kubeconfig=/etc/kubernetes/kubelet.conf")
KUBEADM_DROPIN = "\n".join([
    "# Note: This dropin only works with kubeadm and kubelet v1.11+",
    "[Service]",
    f'Environment="KUBELET_KUBECONFIG_ARGS={_KUBELET_KUBECONFIG_ARGS}"',
    'Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"',
    '# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, populating the '
    "KUBELET_KUBEADM_ARGS variable dynamically",
    "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env",
    "# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, "
    "the user should use",
    "# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS "
    "should be sourced from this file.",
    "EnvironmentFile=-/etc/sysconfig/kubelet",
    "ExecStart=",
    "ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS "
    "$KUBELET_EXTRA_ARGS",
    "",
])

# EL's update-ca-trust is a script around p11-kit; the rig's Debian userland keeps its trust store with
# update-ca-certificates. This adapter (real, not a double: the store really changes) feeds the EL
# anchor directory into Debian's store and writes EL's extracted bundle paths.
UPDATE_CA_TRUST = """#!/bin/sh
# update-ca-trust for the airgap-bundler e2e rig (ca-certificates RPM of the test media): an EL-to-Debian
# adapter. EL anchors in /etc/pki/ca-trust/source/anchors are added to Debian's trust store
# (update-ca-certificates), and the EL bundle paths are written from Debian's bundle.
set -e
case "${1:-extract}" in
  extract|"") ;;
  enable|check) exit 0 ;;
  *) echo "usage: update-ca-trust [extract]" >&2; exit 1 ;;
esac
dst=/usr/local/share/ca-certificates/el-ca-trust
rm -rf "$dst"
mkdir -p "$dst"
for f in /etc/pki/ca-trust/source/anchors/* /usr/share/pki/ca-trust-source/anchors/*; do
  [ -f "$f" ] || continue
  b=$(basename "$f"); cp "$f" "$dst/${b%.*}.crt"
done
update-ca-certificates --fresh >/dev/null
mkdir -p /etc/pki/ca-trust/extracted/pem /etc/pki/ca-trust/extracted/openssl /etc/pki/tls/certs
cp /etc/ssl/certs/ca-certificates.crt /etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem
cp /etc/ssl/certs/ca-certificates.crt /etc/pki/ca-trust/extracted/openssl/ca-bundle.trust.crt
ln -sf /etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem /etc/pki/tls/certs/ca-bundle.crt
"""

EBTABLES_WRAPPER = """#!/bin/sh
# ebtables of the airgap-bundler e2e media: EL9's ebtables is the nft variant; the rig's Debian
# userland has it as ebtables-nft (package iptables).
exec /usr/sbin/ebtables-nft "$@"
"""


def systemd_post(*units: str) -> str:
    """%systemd_post as EL7-EL9 spells it (guarded: no systemd in a chroot means nothing to do)."""
    u = " ".join(units)
    return (f'if [ $1 -eq 1 ] ; then\n  systemctl --no-reload preset {u} >/dev/null 2>&1 || :\nfi\n'
            "systemctl daemon-reload >/dev/null 2>&1 || :\n")


def systemd_preun(*units: str) -> str:
    u = " ".join(units)
    return (f"if [ $1 -eq 0 ] ; then\n  systemctl --no-reload disable --now {u} >/dev/null 2>&1 || :\nfi\n")


def systemd_postun_restart(*units: str) -> str:
    u = " ".join(units)
    return (f"systemctl daemon-reload >/dev/null 2>&1 || :\nif [ $1 -ge 1 ] ; then\n"
            f"  systemctl try-restart {u} >/dev/null 2>&1 || :\nfi\n")


LDCONFIG = "/sbin/ldconfig >/dev/null 2>&1 || :\n"
