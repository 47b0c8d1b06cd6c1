"""The whole rig: engine + node image + internal network + leak trap + nodes + SSH, up and down.

    with Rig(RigConfig()) as rig:        # or rig = Rig(cfg).up() ... rig.down()
        rig.node1.exec("dnf --version")
        rig.trap.connections()

Usable without pytest: `python -m rig up|down|status` from tests/e2e (see __main__.py).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import docker_engine, node_image, nodes
from .docker_engine import DockerEngine
from .network import LABEL, RigNetwork
from .node_image import NodeImage
from .nodes import Node, NodeSet
from .trap import LeakTrap
from .util import DEFAULT_WORKDIR, TIMER, RigError, StageTimer, log, rig_lock


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class RigConfig:
    workdir: Path = DEFAULT_WORKDIR
    node_count: int = 3
    keep: bool = field(default_factory=lambda: _env_flag("AIRGAP_RIG_KEEP"))
    lock_timeout: float = float(os.environ.get("AIRGAP_RIG_LOCK_TIMEOUT", "1800"))


def missing_prerequisites() -> list[str]:
    """Why the rig cannot run on this machine ([] when it can)."""
    return [*docker_engine.missing_prerequisites(), *node_image.missing_prerequisites(),
            *nodes.missing_prerequisites()]


class Rig:
    def __init__(self, config: RigConfig | None = None, timer: StageTimer = TIMER) -> None:
        self.config = config or RigConfig()
        self.timer = timer
        self.engine: DockerEngine | None = None
        self.image: NodeImage | None = None
        self.network: RigNetwork | None = None
        self.trap: LeakTrap | None = None
        self.nodes: NodeSet | None = None
        self.ssh_key: Path | None = None
        self._stack = contextlib.ExitStack()
        self._docker_host_before: str | None = None

    # convenient accessors
    def node(self, name: str) -> Node:
        assert self.nodes is not None, "rig is not up"
        return self.nodes[name]

    @property
    def node1(self) -> Node:
        return self.node("node1")

    @property
    def ssh_config(self) -> Path:
        return self.config.workdir / "ssh" / "ssh_config"

    def install_args(self) -> list[str]:
        """install.py's host arguments for this rig: --control-plane node1 --workers node2,node3."""
        assert self.nodes is not None, "rig is not up"
        return ["--control-plane", self.nodes.control_plane().ip,
                "--workers", ",".join(w.ip for w in self.nodes.workers())]

    def deliver_bundle(self, tarball: Path, dest: str = "/root", timeout: float = 900) -> str:
        """Copy a bundle tarball to node1 and unpack it with tar, as the operator does; returns the
        bundle directory on node1 (docs/bundle-format.md: one top-level directory named like the tarball)."""
        node1 = self.node1
        stem = tarball.name.removesuffix(".tar.gz").removesuffix(".tgz")
        # into an empty directory, as the operator is told: an earlier test's bundle of the same name would
        # leave files the bundle check refuses as unlisted
        node1.exec(["rm", "-rf", f"{dest}/{stem}"], timeout=60)
        node1.exec(["mkdir", "-p", dest], timeout=30)
        node1.copy_in(tarball, f"{dest}/{tarball.name}", timeout=timeout)
        node1.exec(["tar", "-C", dest, "-xzf", f"{dest}/{tarball.name}"], timeout=timeout)
        if node1.exec(["test", "-d", f"{dest}/{stem}"], check=False, timeout=30).returncode == 0:
            return f"{dest}/{stem}"
        top = node1.sh(f"tar -tzf {dest}/{tarball.name} | head -1 | cut -d/ -f1", timeout=timeout)
        return f"{dest}/{top}"

    def testinfra_hosts(self) -> list[Any]:
        """testinfra hosts (docker:// backend) for node1..nodeN."""
        assert self.nodes is not None, "rig is not up"
        return [n.testinfra() for n in self.nodes]

    def up(self) -> Rig:
        wd = self.config.workdir
        try:
            with self.timer.stage("rig: lock"):
                self._stack.enter_context(rig_lock(wd, self.config.lock_timeout))
            with self.timer.stage("rig: docker engine"):
                self.engine = docker_engine.ensure_engine(wd)
            self._stack.callback(self._stop_engine)
            self._docker_host_before = os.environ.get("DOCKER_HOST")
            os.environ["DOCKER_HOST"] = self.engine.host  # testinfra's docker:// backend, docker CLI
            self._stack.callback(self._restore_docker_host)
            with self.timer.stage("rig: node image"):
                self.image = node_image.ensure_node_image(self.engine, wd / "cache")
            with self.timer.stage("rig: clean leftovers"):
                self._remove_leftovers()
            self.network = RigNetwork(self.engine)
            self.trap = LeakTrap(self.engine, self.network, self.image.tag, wd / "trap")
            self.nodes = NodeSet(self.engine, self.network, self.image.tag, count=self.config.node_count)
            self._stack.callback(self._teardown_containers)
            with self.timer.stage("rig: network + leak trap"):
                self.network.create()
                self.trap.start()
            with self.timer.stage(f"rig: {self.config.node_count} nodes boot (systemd, sshd)"):
                self.nodes.start(self.trap.add_host_args())
            with self.timer.stage("rig: ssh keys"):
                self.ssh_key = self.nodes.setup_ssh(wd / "ssh")
            self.trap.reset()  # boot-time noise (e.g. the EL default chrony pool) is not the test's
        except BaseException:
            self.down()
            raise
        (wd / "stage-times.json").parent.mkdir(parents=True, exist_ok=True)
        self.timer.write_json(wd / "stage-times.json")
        log("rig is up: " + ", ".join(f"{n.name}={n.ip}" for n in self.nodes) + f", trap={self.trap.ip}")
        return self

    def down(self) -> None:
        """Tear everything down (unless keep): containers, network, our dockerd; release the lock."""
        with self.timer.stage("rig: teardown"):
            self._stack.close()

    def __enter__(self) -> Rig:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # --- internals ---
    def _remove_leftovers(self) -> None:
        assert self.engine is not None
        cp = self.engine.docker("ps", "-aq", "--filter", f"label={LABEL}", check=False, timeout=60)
        ids = cp.stdout.split()
        if ids:
            log(f"removing {len(ids)} leftover rig container(s)")
            self.engine.docker("rm", "-f", "-v", *ids, check=False, timeout=180)
        RigNetwork(self.engine).remove()

    def _teardown_containers(self) -> None:
        if self.config.keep:
            log("AIRGAP_RIG_KEEP / --keep-rig: leaving the rig up "
                f"(DOCKER_HOST={self.engine.host if self.engine else '?'}; "
                "remove with: python -m rig down, from tests/e2e)")
            return
        if self.nodes is not None:
            self.nodes.remove()
        if self.trap is not None:
            self.trap.stop()
        if self.network is not None:
            self.network.remove()

    def _stop_engine(self) -> None:
        if self.engine is not None and not self.config.keep:
            self.engine.stop()

    def _restore_docker_host(self) -> None:
        if self._docker_host_before is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = self._docker_host_before


def destroy(workdir: Path = DEFAULT_WORKDIR) -> None:
    """Remove a rig left up with --keep-rig (containers, network, our dockerd). Caches stay."""
    with rig_lock(workdir, 60):
        try:
            eng = docker_engine.ensure_engine(workdir)
        except RigError as exc:
            log(f"no engine: {exc}")
            return
        cp = eng.docker("ps", "-aq", "--filter", f"label={LABEL}", check=False, timeout=60)
        if cp.stdout.split():
            eng.docker("rm", "-f", "-v", *cp.stdout.split(), check=False, timeout=180)
        RigNetwork(eng).remove()
        eng.stop()
