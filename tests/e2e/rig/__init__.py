"""airgap-bundler multi-node test rig (issue 6): systemd containers presented as EL9 hosts on an
internal docker network, with a leak trap standing in for the internet. See tests/e2e/README.md."""

from .docker_engine import DockerEngine, ensure_engine
from .network import NET_NAME, SUBNET, RigNetwork
from .node_image import NodeImage, NodeRecipe, ensure_node_image
from .nodes import Node, NodeSet
from .rig import Rig, RigConfig, destroy, missing_prerequisites
from .rpmtools import build_rpm, createrepo
from .trap import TRAP_HOST_PART, UPSTREAM_NAMES, LeakTrap
from .util import TIMER, RigError, StageTimer, run, wait_until

__all__ = [
    "NET_NAME", "SUBNET", "TIMER", "TRAP_HOST_PART", "UPSTREAM_NAMES",
    "DockerEngine", "LeakTrap", "Node", "NodeImage", "NodeRecipe", "NodeSet", "Rig", "RigConfig",
    "RigError", "RigNetwork", "StageTimer",
    "build_rpm", "createrepo", "destroy", "ensure_engine", "ensure_node_image", "missing_prerequisites",
    "run", "wait_until",
]
