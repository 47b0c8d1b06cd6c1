"""Is the Vagrant suite runnable here? (Shared by vagrant/tests and tests/vagrant; stdlib only.)"""

from __future__ import annotations

import os
import shutil
import subprocess

SKIP_REASON = "needs a hypervisor (VirtualBox or libvirt) and Vagrant"


def _ok(args: list[str], timeout: float = 30) -> tuple[bool, str]:
    try:
        cp = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False, ""
    return cp.returncode == 0, cp.stdout


def usable_providers() -> list[str]:
    """Vagrant providers that can run VMs here: 'virtualbox' and/or 'libvirt'."""
    if not shutil.which("vagrant"):
        return []
    found = []
    if shutil.which("VBoxManage") and _ok(["VBoxManage", "--version"])[0]:
        found.append("virtualbox")
    ok, plugins = _ok(["vagrant", "plugin", "list"], timeout=120)
    if ok and "vagrant-libvirt" in plugins and shutil.which("virsh") and os.path.exists("/dev/kvm"):
        if _ok(["virsh", "-c", os.environ.get("LIBVIRT_DEFAULT_URI", "qemu:///system"), "version"])[0]:
            found.append("libvirt")
    return found


def vagrant_usable() -> bool:
    return bool(usable_providers())
