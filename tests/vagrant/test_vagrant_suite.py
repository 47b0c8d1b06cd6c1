"""The Vagrant suite (vagrant/) from the main test collection: skips where no hypervisor and
Vagrant are usable (the CI machine); elsewhere, with BUNDLE=/path/to/bundle.tar.gz set, it runs
`make -C vagrant vagrant-test` (VMs up, install.py, testinfra checks, VMs destroyed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

VAGRANT_DIR = Path(__file__).resolve().parents[2] / "vagrant"
sys.path.insert(0, str(VAGRANT_DIR))
from hypervisor import SKIP_REASON, usable_providers  # noqa: E402

pytestmark = [pytest.mark.vagrant, pytest.mark.slow]


@pytest.mark.skipif(not usable_providers(), reason=SKIP_REASON)
def test_vagrant_suite() -> None:
    bundle = os.environ.get("BUNDLE") or os.environ.get("AIRGAP_BUNDLE")
    if not bundle or not Path(bundle).is_file():
        pytest.skip("set BUNDLE=/path/to/bundle.tar.gz to run the Vagrant suite")
    args = ["make", "-C", str(VAGRANT_DIR), "vagrant-test", f"BUNDLE={Path(bundle).resolve()}"]
    for var in ("BOX", "PROVIDER", "ISO", "INSTALL_ARGS"):
        if os.environ.get(var):
            args.append(f"{var}={os.environ[var]}")
    cp = subprocess.run(args, timeout=int(os.environ.get("AIRGAP_VAGRANT_TIMEOUT", "5400")), check=False)
    assert cp.returncode == 0, f"make vagrant-test failed ({cp.returncode}); VMs: `make -C vagrant destroy`"
