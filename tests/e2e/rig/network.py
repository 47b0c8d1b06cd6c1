"""The rig network: an internal docker bridge network; the nodes have no route out of it."""

from __future__ import annotations

import ipaddress
import json
import shutil
from dataclasses import dataclass
from typing import Any

from .docker_engine import DockerEngine
from .util import RigError, log, run

NET_NAME = "airgap-rig-net"
SUBNET = "192.168.251.0/24"
LABEL = "airgap-rig=1"


@dataclass
class RigNetwork:
    engine: DockerEngine
    name: str = NET_NAME
    subnet: str = SUBNET

    def address(self, host_part: int) -> str:
        """The address .host_part in the subnet, e.g. address(11) -> 192.168.251.11."""
        return str(ipaddress.ip_network(self.subnet)[host_part])

    @property
    def gateway(self) -> str:
        """The bridge's own address (the test machine's side). Not a router: the network is internal."""
        return self.address(1)

    def exists(self) -> bool:
        return self.engine.docker("network", "inspect", self.name, check=False, timeout=30).returncode == 0

    def inspect(self) -> dict[str, Any]:
        cp = self.engine.docker("network", "inspect", self.name, timeout=30)
        return json.loads(cp.stdout)[0]

    def is_internal(self) -> bool:
        return bool(self.inspect().get("Internal"))

    def create(self) -> None:
        if self.exists():
            self.remove()
        self._check_no_overlap()
        self.engine.docker(
            "network", "create", "--internal", "--driver", "bridge", "--subnet", self.subnet,
            "--gateway", self.gateway, "--label", LABEL, "--opt", "com.docker.network.bridge.name=airgap-rig0",
            self.name, timeout=60,
        )
        if not self.is_internal():
            raise RigError(f"docker network {self.name} is not internal")
        log(f"network {self.name} {self.subnet} (internal) created")

    def remove(self) -> None:
        if self.exists():
            self.engine.docker("network", "rm", self.name, check=False, timeout=60)

    def _check_no_overlap(self) -> None:
        if not shutil.which("ip"):
            return
        cp = run(["ip", "-o", "-4", "addr", "show"], check=False, timeout=10)
        net = ipaddress.ip_network(self.subnet)
        for line in cp.stdout.splitlines():
            parts = line.split()
            if "inet" in parts:
                iface = ipaddress.ip_interface(parts[parts.index("inet") + 1])
                if iface.network.overlaps(net) and parts[1] != "airgap-rig0":
                    raise RigError(f"{self.subnet} is already used on this machine by {parts[1]} ({iface})")
