"""The leak trap: a listener on the rig network that stands in for the whole internet.

The nodes' /etc/hosts maps the real upstream names (UPSTREAM_NAMES) to TRAP_IP, and their DNS
server is the trap, which answers every name with TRAP_IP. The trap listens on TCP 80, 443, 5000,
53 and UDP 53, 123 and records every connection / datagram (peer, port, first bytes, TLS SNI,
HTTP Host header, DNS query name). A correct air-gapped install makes it record nothing.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .docker_engine import DockerEngine
from .network import LABEL, RigNetwork
from .util import RigError, log, wait_until

TRAP_HOST_PART = 250
TRAP_CONTAINER = "airgap-rig-trap"

# Names an installer or a container runtime could reach for if something is misconfigured.
UPSTREAM_NAMES = (
    "registry.k8s.io", "registry-1.docker.io", "docker.io", "index.docker.io", "auth.docker.io",
    "production.cloudflare.docker.com", "quay.io", "ghcr.io", "pkgs.k8s.io", "prod-cdn.packages.k8s.io",
    "download.docker.com", "dl.k8s.io", "cdn.dl.k8s.io", "github.com", "objects.githubusercontent.com",
    "mirrorlist.centos.org", "vault.centos.org", "dl.rockylinux.org", "mirrors.rockylinux.org",
    "mirror.centos.org", "gcr.io", "k8s.gcr.io", "us-docker.pkg.dev", "storage.googleapis.com",
    "dl.fedoraproject.org", "mirrors.fedoraproject.org", "get.helm.sh", "deb.debian.org",
)

Connection = dict[str, Any]


@dataclass
class LeakTrap:
    engine: DockerEngine
    network: RigNetwork
    image: str
    workdir: Path
    container: str = TRAP_CONTAINER
    names: tuple[str, ...] = UPSTREAM_NAMES
    _started: bool = field(default=False, repr=False)

    @property
    def ip(self) -> str:
        return self.network.address(TRAP_HOST_PART)

    @property
    def log_path(self) -> Path:
        return self.workdir / "connections.jsonl"

    def add_host_args(self) -> list[str]:
        """`docker run` arguments that point the upstream names at the trap (hosts file and DNS)."""
        args = ["--dns", self.ip]
        for n in self.names:
            args += ["--add-host", f"{n}:{self.ip}"]
        return args

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(__file__).with_name("trap_server.py"), self.workdir / "trap_server.py")
        (self.workdir / "ready").unlink(missing_ok=True)
        self.log_path.write_text("")
        self.engine.docker("rm", "-f", self.container, check=False, timeout=60)
        self.engine.docker(
            "run", "-d", "--name", self.container, "--hostname", "leak-trap", "--label", LABEL,
            "--network", self.network.name, "--ip", self.ip, "-v", f"{self.workdir}:/trap",
            "--entrypoint", "python3", self.image, "-u", "/trap/trap_server.py", "/trap/connections.jsonl", self.ip,
            timeout=120,
        )
        self._started = True
        wait_until("the leak trap to listen", self._ready, timeout=30, interval=0.3)
        log(f"leak trap listening at {self.ip} (tcp 80 443 5000 53, udp 53 123)")

    def _ready(self) -> bool:
        if (self.workdir / "ready").exists():
            return True
        state = self.engine.docker("inspect", "-f", "{{.State.Status}}", self.container, check=False, timeout=20)
        if state.stdout.strip() not in ("running", "created"):
            logs = self.engine.docker("logs", "--tail", "50", self.container, check=False, timeout=20)
            raise RigError(f"leak trap container is {state.stdout.strip()}: {logs.stdout}{logs.stderr}")
        return False

    def stop(self) -> None:
        self.engine.docker("rm", "-f", self.container, check=False, timeout=60)
        self._started = False

    def connections(self) -> list[Connection]:
        """Everything recorded since start / the last reset(), oldest first."""
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line being written right now
        return out

    def reset(self) -> None:
        """Forget what was recorded so far."""
        with open(self.log_path, "r+") as f:
            f.truncate(0)

    def wait_for(self, predicate: Callable[[Connection], bool], timeout: float = 15) -> list[Connection]:
        """Recorded connections matching predicate, waiting (bounded) until there is at least one.
        Returns [] if none showed up in time."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.25) + 2):
            hits = [c for c in self.connections() if predicate(c)]
            if hits or time.monotonic() >= deadline:
                return hits
            time.sleep(0.25)
        return []

    @staticmethod
    def describe(conns: list[Connection]) -> str:
        """One line per connection, for assertion messages."""
        lines = []
        for c in conns:
            what = c.get("sni") or c.get("host") or c.get("dns_query") or c.get("first_bytes", "")[:40]
            lines.append(f"{c.get('proto')}/{c.get('port')} from {c.get('peer')}: {what}"
                         + (f" [{c['request_line']}]" if c.get("request_line") else ""))
        return "\n".join(lines) or "(none)"
