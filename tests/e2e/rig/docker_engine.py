"""A Docker engine for the rig: an existing reachable one, or a dockerd started by hand.

PID 1 is not systemd on the CI machine, so nothing starts dockerd for us. We start it with its own
socket, data-root, exec-root and pidfile under the rig work dir, so it never collides with an
engine somebody else runs, and we stop it at the end if (and only if) we started it.

Host network hygiene (see TEST-RIG.md, "dockerd sets the iptables FORWARD policy to DROP"):
dockerd only touches net.ipv4.ip_forward and the FORWARD policy when it enables IP forwarding
itself. The rig network is `--internal` (no route out; node <-> node is bridged, host <-> node is
local), so forwarding is never needed: we start dockerd with `--ip-forward=false --bridge=none`.
The host's FORWARD policy, ip_forward and docker0 stay as they were, and other bridges on the
machine keep working. We still check the policy before and after and restore it if it changed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .util import RigError, log, run, wait_until

READY_TIMEOUT = float(os.environ.get("AIRGAP_RIG_DOCKERD_TIMEOUT", "60"))


def _forward_policy() -> str | None:
    if not shutil.which("iptables"):
        return None
    cp = run(["iptables", "-w", "5", "-S", "FORWARD"], check=False, timeout=20)
    for line in cp.stdout.splitlines():
        if line.startswith("-P FORWARD "):
            return line.split()[2]
    return None


@dataclass
class DockerEngine:
    """A handle to a Docker engine; `docker()` runs the docker CLI against it."""

    host: str  # a DOCKER_HOST value, e.g. unix:///var/tmp/airgap-rig/dockerd/docker.sock
    started_by_us: bool = False
    workdir: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _forward_policy_before: str | None = field(default=None, repr=False)

    @property
    def env(self) -> dict[str, str]:
        """Environment for tools that talk to this engine (docker CLI, testinfra's docker:// backend)."""
        return {"DOCKER_HOST": self.host}

    def docker(
        self, *args: str, timeout: float = 120, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run(["docker", *args], timeout=timeout, check=check, env=self.env, input=input)

    def docker_argv(self, *args: str) -> list[str]:
        return ["docker", "--host", self.host, *args]

    def ping(self) -> bool:
        return self.docker("version", "--format", "{{.Server.Version}}", timeout=15, check=False).returncode == 0

    def stop(self) -> None:
        """Stop dockerd if we started it (SIGTERM, bounded wait, then SIGKILL)."""
        if not self.started_by_us:
            return
        pid: int | None = None
        if self._proc is not None:
            pid = self._proc.pid
        elif self.workdir and (self.workdir / "docker.pid").exists():
            with contextlib.suppress(ValueError):
                pid = int((self.workdir / "docker.pid").read_text().strip())
        if pid is not None:
            log(f"stopping dockerd (pid {pid})")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if self._proc is not None:
                    if self._proc.poll() is not None:
                        break
                elif not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.3)
            else:
                log("dockerd did not stop in 30s: SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                if self._proc is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self._proc.wait(timeout=10)
        self.started_by_us = False
        if self.workdir is not None:
            _unmount_below(self.workdir)
        after = _forward_policy()
        if self._forward_policy_before and after and after != self._forward_policy_before:
            log(f"restoring iptables FORWARD policy {after} -> {self._forward_policy_before}")
            run(["iptables", "-w", "5", "-P", "FORWARD", self._forward_policy_before], check=False, timeout=20)


def _unmount_below(root: Path) -> None:
    """dockerd leaves mounts under its exec-root (netns/default) when it stops: remove them."""
    prefix = str(root.resolve()) + "/"
    mounts = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mp = line.split()[4].replace("\\040", " ")
            if mp.startswith(prefix):
                mounts.append(mp)
    for mp in sorted(set(mounts), key=len, reverse=True):
        run(["umount", mp], check=False, timeout=30)


def _candidate_hosts() -> list[str]:
    hosts = []
    if os.environ.get("DOCKER_HOST"):
        hosts.append(os.environ["DOCKER_HOST"])
    if Path("/var/run/docker.sock").is_socket():
        hosts.append("unix:///var/run/docker.sock")
    return hosts


def missing_prerequisites() -> list[str]:
    """What is missing to get an engine (empty when an engine is reachable or can be started)."""
    missing = []
    if not shutil.which("docker"):
        missing.append("the docker CLI (apt-get install docker.io)")
    if any(DockerEngine(h).ping() for h in _candidate_hosts()) if shutil.which("docker") else False:
        return missing
    if not shutil.which("dockerd"):
        missing.append("dockerd (apt-get install docker.io) or a reachable DOCKER_HOST")
    elif os.geteuid() != 0:
        missing.append("root, to start dockerd by hand (or a reachable DOCKER_HOST)")
    return missing


def ensure_engine(workdir: Path, *, extra_args: Sequence[str] = ()) -> DockerEngine:
    """Use a reachable engine (DOCKER_HOST, /var/run/docker.sock, or our own one left running by a
    --keep-rig session); otherwise start dockerd by hand under workdir/dockerd."""
    for host in _candidate_hosts():
        eng = DockerEngine(host)
        if eng.ping():
            log(f"using the existing docker engine at {host}")
            return eng

    ddir = workdir / "dockerd"
    sock = ddir / "docker.sock"
    own = DockerEngine(f"unix://{sock}", started_by_us=False, workdir=ddir)
    if sock.is_socket() and own.ping():
        # left running by an earlier session with --keep-rig; adopt it and stop it when done
        log(f"adopting the rig's dockerd left running at {sock}")
        own.started_by_us = True
        return own

    if not shutil.which("dockerd"):
        raise RigError("no reachable docker engine and no dockerd (apt-get install docker.io)")
    if os.geteuid() != 0:
        raise RigError("no reachable docker engine and not root: cannot start dockerd")

    ddir.mkdir(parents=True, exist_ok=True)
    pidfile = ddir / "docker.pid"
    if pidfile.exists():  # stale pidfile from a killed session: dockerd refuses to start if the pid lives
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            old = int(pidfile.read_text().strip())
            cmdline = Path(f"/proc/{old}/cmdline").read_bytes() if Path(f"/proc/{old}").exists() else b""
            if b"dockerd" in cmdline and str(ddir).encode() in cmdline:
                log(f"killing a stale rig dockerd (pid {old})")
                os.kill(old, signal.SIGTERM)
                time.sleep(3)
        pidfile.unlink(missing_ok=True)
    sock.unlink(missing_ok=True)

    before = _forward_policy()
    args = [
        "dockerd",
        "--host", f"unix://{sock}",
        "--data-root", str(ddir / "data"),
        "--exec-root", str(ddir / "exec"),
        "--pidfile", str(pidfile),
        "--bridge=none",
        "--ip-forward=false",
        "--ip-masq=false",
        "--userland-proxy=false",
        "--log-level=warn",
        *extra_args,
    ]
    logf = open(ddir / "dockerd.log", "ab")  # noqa: SIM115 - handed to the child
    log(f"starting dockerd: {' '.join(args)}")
    proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    logf.close()
    eng = DockerEngine(own.host, started_by_us=True, workdir=ddir, _proc=proc, _forward_policy_before=before)

    def ready() -> bool:
        if proc.poll() is not None:
            tail = (ddir / "dockerd.log").read_text(errors="replace")[-3000:]
            raise RigError(f"dockerd exited with {proc.returncode}:\n{tail}")
        return sock.is_socket() and eng.ping()

    try:
        wait_until("dockerd to answer", ready, timeout=READY_TIMEOUT, interval=0.3)
    except BaseException:
        eng.stop()
        raise
    after = _forward_policy()
    if before and after and before != after:
        log(f"dockerd changed the iptables FORWARD policy {before} -> {after}; restoring {before}")
        run(["iptables", "-w", "5", "-P", "FORWARD", before], check=False, timeout=20)
    return eng
