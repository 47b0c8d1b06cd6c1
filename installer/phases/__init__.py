"""The install phases in the order they run (phase modules carry no numbers: this list is the order)."""

from installer.phases.cni import CNI
from installer.phases.coredns import CoreDNS
from installer.phases.helm import Helm
from installer.phases.host_prep import HostPrep
from installer.phases.join import JoinControlPlanes, JoinWorkers
from installer.phases.kubeadm_init import KubeadmInit
from installer.phases.media_repo import MediaRepo
from installer.phases.packages import RequestedPackages
from installer.phases.preflight import Preflight
from installer.phases.registry import RegistryPhase
from installer.phases.runtime import Runtime
from installer.phases.verify import Verify


def install_phases():
    # the registry comes before the runtime so the runtime can trust its CA on the first run
    return [Preflight(), MediaRepo(), HostPrep(), RegistryPhase(), Runtime(), RequestedPackages(), KubeadmInit(),
            CNI(), CoreDNS(), JoinControlPlanes(), JoinWorkers(), Helm(), Verify()]

