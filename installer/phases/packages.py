"""the packages the manifest asked for (spec.packages), on every cluster host, from the air-gapped repos.

The builder ships them (bundle.json: manifest.packages) but the runtime phase installs only what Kubernetes
needs; this phase installs the rest. The manifest has no per-group package lists, so every host gets them.
Reset removes exactly what this phase installed (the journal's package list)."""

from installer.changes import InstallPackages
from installer.phases.base import Phase
from installer.phases.runtime import runtime_packages
from installer.ssh import quote

OTHER_PHASES = ("chrony",)  # installed by host_prep
DOCKER_REQUIRES = ("containerd.io", "containerd")  # docker-ce requires it: the runtime phase brings it


def spec_name(spec):
    """'kubeadm-1.30.4-150500.1.1' -> 'kubeadm', 'cri-tools' -> 'cri-tools' (dnf's NAME[-VERSION[-RELEASE]])."""
    parts = spec.split("-")
    name = [parts[0]]
    for p in parts[1:]:
        if p[:1].isdigit():
            break
        name.append(p)
    return "-".join(name)


def requested(bundle):
    """The manifest's package specs that no other phase installs."""
    others = set(OTHER_PHASES)
    if bundle.install_mode != "binaries" and bundle.data.get("kubernetes"):
        others.update(runtime_packages(bundle))
        if bundle.runtime == "docker":
            others.update(DOCKER_REQUIRES)
    return [s for s in bundle.requested_packages if spec_name(s) not in others]


class RequestedPackages(Phase):
    name = "packages"
    title = "packages requested by the manifest (spec.packages)"

    def plan(self, ctx, host, facts):
        specs = requested(ctx.bundle)
        if not specs:
            return []
        change = InstallPackages(specs)
        # read-only check, so the plan (and a re-run) sees what is already installed
        change.unless = "rpm -q %s >/dev/null 2>&1" % " ".join(quote(s) for s in change.names)
        return [change]
