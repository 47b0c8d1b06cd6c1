#!/usr/bin/env bash
# Installs what the builder, its tests and the test rig need on a Debian 12 machine (root), then the
# project itself into .venv. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  make git
  rpm createrepo-c dnf dnf-plugins-core          # yum repo stand-ins and dnf as the reference solver
  docker-registry skopeo umoci                   # registry stand-in, image tools for tests and benchmarks
  gnupg openssl apache2-utils                    # bundle signatures, the installer's CA, htpasswd
  docker.io debootstrap iptables iproute2 openssh-client  # the multi-node rig (systemd containers)
  # real programs the rig's RPMs carry into the hosts (tests/e2e/content)
  containerd runc containernetworking-plugins socat ethtool libdevmapper1.02.1
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,docker]'
echo "setup: ready (.venv)"
