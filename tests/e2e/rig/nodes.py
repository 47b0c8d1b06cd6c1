"""The rig's hosts: systemd containers (kind-style) on the internal rig network.

Each node runs /sbin/init with the flags TEST-RIG.md measured (no --privileged: CAP_SYS_RESOURCE
is missing on the CI machine), has sshd with root key login, and resolves the real upstream names
to the leak trap. `Node.exec()` runs a command in it (docker exec), `Node.copy_in()` copies files in
(docker cp), `Node.testinfra()` gives a testinfra host (docker:// backend).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .docker_engine import DockerEngine
from .network import LABEL, RigNetwork
from .util import RigError, log, run, wait_until

NODE_FLAGS = (
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
    "-v", "/var/lib/containerd", "-v", "/var/lib/docker",  # no overlayfs on overlayfs for runtimes
    "--stop-signal", "SIGRTMIN+3",
)
BOOT_TIMEOUT = float(os.environ.get("AIRGAP_RIG_BOOT_TIMEOUT", "120"))


@dataclass
class Node:
    engine: DockerEngine
    name: str  # host name: node1, node2, ...
    ip: str
    container: str  # docker container name: airgap-rig-node1, ...
    role: str = "worker"

    # --- running things ---
    def exec(
        self,
        cmd: str | Sequence[str],
        *,
        check: bool = True,
        timeout: float = 120,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the node as root. A str runs under `bash -c` (login-like PATH)."""
        argv = ["bash", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        opts: list[str] = ["-i"] if input is not None else []
        for k, v in (env or {}).items():
            opts += ["-e", f"{k}={v}"]
        if workdir:
            opts += ["-w", workdir]
        return self.engine.docker("exec", *opts, self.container, *argv, timeout=timeout, check=check, input=input)

    def sh(self, cmd: str, *, timeout: float = 120) -> str:
        """Run a shell command, fail on error, return its stdout stripped."""
        return self.exec(cmd, timeout=timeout).stdout.strip()

    def exec_background(self, unit: str, cmd: Sequence[str]) -> None:
        """Start a long-running process as a transient systemd unit (stop it with stop_background)."""
        self.exec(["systemd-run", "--unit", unit, "--collect", "--quiet", *cmd], timeout=30)

    def stop_background(self, unit: str) -> None:
        self.exec(["systemctl", "stop", unit], check=False, timeout=60)

    # --- files ---
    def copy_in(self, src: str | os.PathLike[str], dest: str, *, timeout: float = 600) -> None:
        """docker cp a host file or directory into the node (dest: a path in the node)."""
        self.engine.docker("cp", str(src), f"{self.container}:{dest}", timeout=timeout)

    def copy_out(self, src: str, dest: str | os.PathLike[str], *, timeout: float = 600) -> None:
        self.engine.docker("cp", f"{self.container}:{src}", str(dest), timeout=timeout)

    def write_file(self, path: str, content: str, mode: str = "0644") -> None:
        q = shlex.quote(path)
        self.exec(f"mkdir -p \"$(dirname {q})\" && cat > {q} && chmod {mode} {q}", input=content, timeout=30)

    def read_file(self, path: str) -> str:
        return self.exec(["cat", path], timeout=30).stdout

    # --- state ---
    def system_state(self) -> str:
        cp = self.exec(["systemctl", "is-system-running"], check=False, timeout=20)
        return cp.stdout.strip() or cp.stderr.strip()

    def wait_booted(self, timeout: float = BOOT_TIMEOUT) -> str:
        """Wait until systemd finished booting ('running', or 'degraded' when a unit failed)."""
        state = {"s": ""}

        def booted() -> bool:
            state["s"] = self.system_state()
            return state["s"] in ("running", "degraded")

        wait_until(f"{self.name}: systemd to finish booting", booted, timeout=timeout, interval=0.5)
        if state["s"] == "degraded":
            failed = self.exec(["systemctl", "--failed", "--no-legend", "--plain"], check=False, timeout=20)
            log(f"{self.name}: systemd is degraded; failed units: {failed.stdout.strip()}")
        return state["s"]

    def wait_sshd(self, timeout: float = 60) -> None:
        wait_until(
            f"{self.name}: sshd on port 22",
            lambda: self.exec("systemctl is-active -q ssh && ss -Hltn 'sport = :22' | grep -q LISTEN",
                              check=False, timeout=20).returncode == 0,
            timeout=timeout,
        )

    def drop_default_route(self) -> None:
        """No way out: delete the default route docker adds even on --internal networks."""
        self.exec("ip route del default 2>/dev/null; ip -6 route del default 2>/dev/null; true", timeout=20)
        routes = self.sh("ip route show default; ip -6 route show default")
        if routes:
            raise RigError(f"{self.name} still has a default route: {routes}")

    def own_etc_files(self) -> None:
        """/etc/hosts, /etc/resolv.conf and /etc/hostname are docker bind mounts, where an installer's
        `sed -i` (rename) would fail; make them the node's own files, with the same content."""
        self.exec(
            "for f in /etc/hosts /etc/resolv.conf /etc/hostname; do "
            "  if mountpoint -q $f 2>/dev/null || grep -q \" $f \" /proc/self/mountinfo; then "
            "    cp $f /run/airgap-rig.$$ && umount $f && cat /run/airgap-rig.$$ > $f; rm -f /run/airgap-rig.$$; "
            "  fi; "
            "done",
            timeout=30,
        )

    def host_key(self) -> str:
        """The node's ed25519 host key as 'ssh-ed25519 AAAA...'."""
        return " ".join(self.sh("cat /etc/ssh/ssh_host_ed25519_key.pub").split()[:2])

    def testinfra(self) -> Any:
        """A testinfra host for this node (docker:// backend; DOCKER_HOST must be the rig's engine,
        which Rig.up() arranges)."""
        import testinfra  # local import: only the e2e tests need it

        return testinfra.get_host(f"docker://root@{self.container}")


@dataclass
class NodeSet:
    engine: DockerEngine
    network: RigNetwork
    image: str
    count: int = 3
    first_host_part: int = 11
    prefix: str = "airgap-rig-"
    extra_run_args: tuple[str, ...] = ()
    nodes: list[Node] = field(default_factory=list)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, key: int | str) -> Node:
        if isinstance(key, int):
            return self.nodes[key]
        for n in self.nodes:
            if key in (n.name, n.ip, n.container):
                return n
        raise KeyError(key)

    def planned(self) -> list[Node]:
        out = []
        for i in range(self.count):
            name = f"node{i + 1}"
            out.append(Node(self.engine, name, self.network.address(self.first_host_part + i),
                            f"{self.prefix}{name}", "control-plane" if i == 0 else "worker"))
        return out

    def start(self, trap_args: Sequence[str] = ()) -> None:
        """Create and boot all nodes; returns when systemd and sshd run on each."""
        self.nodes = self.planned()
        hosts: list[str] = []
        for n in self.nodes:
            hosts += ["--add-host", f"{n.name}:{n.ip}"]
        mounts: list[str] = []
        if Path("/lib/modules").is_dir():  # modprobe in the nodes (kind does the same)
            mounts += ["-v", "/lib/modules:/lib/modules:ro"]
        for n in self.nodes:
            self.engine.docker("rm", "-f", "-v", n.container, check=False, timeout=60)
            self.engine.docker(
                "run", "-d", "--name", n.container, "--hostname", n.name, "--label", LABEL,
                "--label", f"airgap-rig-role={n.role}",
                "--network", self.network.name, "--ip", n.ip, "--network-alias", n.name,
                *NODE_FLAGS, *mounts, *hosts, *trap_args, *self.extra_run_args,
                self.image, "/sbin/init",
                timeout=120,
            )
        for n in self.nodes:
            n.wait_booted()
            n.drop_default_route()
            n.own_etc_files()
        for n in self.nodes:
            n.wait_sshd()

    def remove(self) -> None:
        for n in self.planned():
            self.engine.docker("rm", "-f", "-v", n.container, check=False, timeout=120)
        self.nodes = []

    def setup_ssh(self, keydir: Path) -> Path:
        """Rig SSH keypair: root's authorized_keys on every node, the private key and a known_hosts
        with every node's host key on every node (install.py on node1 reaches the others), and an
        ssh_config for the test machine. Returns the private key path."""
        keydir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = keydir / "id_ed25519"
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "airgap-rig", "-f", str(key)], timeout=30)
        pub = key.with_suffix(".pub").read_text()
        known = []
        for n in self.nodes:
            known.append(f"{n.name},{n.ip},{n.container} {n.host_key()}")
        known_text = "\n".join(known) + "\n"
        (keydir / "known_hosts").write_text(known_text)
        cfg = []
        for n in self.nodes:
            cfg.append(
                f"Host {n.name} {n.ip}\n  HostName {n.ip}\n  User root\n  IdentityFile {key}\n"
                f"  IdentitiesOnly yes\n  UserKnownHostsFile {keydir / 'known_hosts'}\n"
                f"  StrictHostKeyChecking yes\n  ConnectTimeout 5\n"
            )
        (keydir / "ssh_config").write_text("\n".join(cfg))
        priv = key.read_text()
        for n in self.nodes:
            n.write_file("/root/.ssh/authorized_keys", pub, "0600")
            n.write_file("/root/.ssh/known_hosts", known_text, "0644")
            if n.role == "control-plane":
                n.write_file("/root/.ssh/id_ed25519", priv, "0600")
                n.write_file("/root/.ssh/id_ed25519.pub", pub, "0644")
            n.exec("chmod 700 /root/.ssh", timeout=20)
        return key

    def control_plane(self) -> Node:
        return self.nodes[0]

    def workers(self) -> list[Node]:
        return self.nodes[1:]


def missing_prerequisites() -> list[str]:
    missing = []
    if not Path("/sys/fs/cgroup").is_dir():
        missing.append("/sys/fs/cgroup")
    if not shutil.which("ssh-keygen"):
        missing.append("ssh-keygen (apt-get install openssh-client)")
    return missing


__all__ = ["NODE_FLAGS", "Node", "NodeSet", "RigError", "missing_prerequisites"]
