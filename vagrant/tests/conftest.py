"""testinfra hosts for the Vagrant cluster (cp1, w1, w2), reached through `vagrant ssh-config`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hypervisor import SKIP_REASON, vagrant_usable  # noqa: E402

NAMES = ("cp1", "w1", "w2")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    usable = vagrant_usable()
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.vagrant)
            if not usable:
                item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


@pytest.fixture(scope="session")
def ssh_config() -> str:
    default = Path(__file__).resolve().parents[1] / ".airgap" / "ssh-config"
    path = os.environ.get("AIRGAP_VAGRANT_SSH_CONFIG", str(default))
    if not Path(path).is_file():
        pytest.skip(f"no cluster: {path} missing (run `make -C vagrant vagrant-test BUNDLE=...`)")
    return path


@pytest.fixture(scope="session")
def hosts(ssh_config: str) -> dict[str, Any]:
    import testinfra

    return {n: testinfra.get_host(f"ssh://{n}", ssh_config=ssh_config, sudo=True) for n in NAMES}


@pytest.fixture(scope="session")
def cp1(hosts: dict[str, Any]) -> Any:
    return hosts["cp1"]
