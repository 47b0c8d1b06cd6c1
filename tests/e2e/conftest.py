"""pytest fixtures for the multi-node rig (issue 6). The rig code is in tests/e2e/rig/.

Session fixtures (one rig per test session; everything is removed at the end unless kept):
  rig          rig.Rig: .engine .image .network .trap .nodes .ssh_key .ssh_config, .node("node1")
  rig_engine   rig.DockerEngine (DOCKER_HOST of the engine; .docker(...) runs the CLI against it)
  rig_network  rig.RigNetwork (internal, 192.168.251.0/24)
  rig_nodes    rig.NodeSet: iterable of rig.Node (node1 = control plane, node2/3 = workers)
  node1, node2, node3   the nodes (rig.Node: exec/sh/copy_in/copy_out/write_file/testinfra)
  leak_trap    rig.LeakTrap: connections(), reset(), wait_for(pred), describe(conns)
Function fixture:
  clean_trap   the leak trap, reset before the test

Keep the rig up after the session for debugging / the demo: AIRGAP_RIG_KEEP=1, or --keep-rig
(the option is known when tests/e2e is on the pytest command line; the variable always works).
Remove a kept rig: `cd tests/e2e && python -m rig down`.
The rig skips (with the reason) where it cannot run, except under CI=true where that is a failure.
AIRGAP_E2E=0 skips the e2e tests on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from rig import TIMER, DockerEngine, LeakTrap, Node, NodeSet, Rig, RigConfig, RigNetwork, missing_prerequisites
from rig.util import DEFAULT_WORKDIR
from rig_options import add_keep_rig_option

from tests.e2e import scenario


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def pytest_addoption(parser: pytest.Parser) -> None:
    add_keep_rig_option(parser)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMER.stages:
        terminalreporter.write_sep("-", "airgap rig")
        terminalreporter.write_line(TIMER.summary())


def _unavailable(reason: str) -> None:
    if _truthy("CI"):
        pytest.fail(f"CI=true and the e2e rig cannot run: {reason}", pytrace=False)
    pytest.skip(f"e2e rig cannot run here: {reason}")


@pytest.fixture(scope="session")
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    if os.environ.get("AIRGAP_E2E", "").strip() == "0" and not _truthy("CI"):
        pytest.skip("e2e rig disabled by AIRGAP_E2E=0")
    missing = missing_prerequisites()
    if missing:
        _unavailable("missing " + "; ".join(missing))
    keep = _truthy("AIRGAP_RIG_KEEP") or bool(request.config.getoption("--keep-rig", default=False))
    the_rig = Rig(RigConfig(workdir=DEFAULT_WORKDIR, keep=keep))
    try:
        the_rig.up()
    except Exception:
        the_rig.down()
        raise
    try:
        yield the_rig
    finally:
        the_rig.down()


@pytest.fixture(scope="session")
def rig_engine(rig: Rig) -> DockerEngine:
    assert rig.engine is not None
    return rig.engine


@pytest.fixture(scope="session")
def rig_network(rig: Rig) -> RigNetwork:
    assert rig.network is not None
    return rig.network


@pytest.fixture(scope="session")
def rig_nodes(rig: Rig) -> NodeSet:
    assert rig.nodes is not None
    return rig.nodes


@pytest.fixture(scope="session")
def node1(rig_nodes: NodeSet) -> Node:
    return rig_nodes["node1"]


@pytest.fixture(scope="session")
def node2(rig_nodes: NodeSet) -> Node:
    return rig_nodes["node2"]


@pytest.fixture(scope="session")
def node3(rig_nodes: NodeSet) -> Node:
    return rig_nodes["node3"]


@pytest.fixture(scope="session")
def leak_trap(rig: Rig) -> LeakTrap:
    assert rig.trap is not None
    return rig.trap


@pytest.fixture
def clean_trap(leak_trap: LeakTrap) -> LeakTrap:
    leak_trap.reset()
    return leak_trap


# ---- the e2e story's build side (tests/e2e/scenario.py), shared by the install and bad-input tests ----

@pytest.fixture(scope="session")
def upstream(tmp_path_factory):
    with TIMER.stage("e2e: upstream stand-ins (yum repos, registry, site)"):
        up = scenario.start_upstream(tmp_path_factory.mktemp("e2e-upstream"), scenario.cache_root())
    yield up
    up.close()


def _bundle(upstream, tmp_path_factory, runtime: str, install: str = "packages"):
    work = tmp_path_factory.mktemp(f"e2e-build-{runtime}-{install}")
    with TIMER.stage(f"e2e: bundler build ({runtime}, {install})"):
        manifest = scenario.write_manifest(upstream, work / "e2e.yaml", runtime=runtime, install=install)
        return scenario.bundler_build(manifest, work / "out", work / "cache")


@pytest.fixture(scope="session")
def containerd_bundle(upstream, tmp_path_factory):
    return _bundle(upstream, tmp_path_factory, "containerd")


@pytest.fixture(scope="session")
def docker_bundle(upstream, tmp_path_factory):
    return _bundle(upstream, tmp_path_factory, "docker")


@pytest.fixture(scope="session")
def binaries_bundle(upstream, tmp_path_factory):
    return _bundle(upstream, tmp_path_factory, "containerd", "binaries")
