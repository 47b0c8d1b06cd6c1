"""The end-to-end story, shared by the e2e tests and `make demo`: stand-in upstream on the build side,
`bundler build` exactly as a user runs it, the bundle carried to node1, `./install.py` across the rig.

Build side (this machine, loopback only): the e2e yum repos (tests/e2e/content: Rocky 9 DVD tree,
download.docker.com and pkgs.k8s.io stand-ins), Debian's docker-registry with the images, and a download
site with the files, all reached by the manifest through `mirrors:` and repo URLs.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.images.helpers import Registry
from tests.upstream.http import RepoHTTPServer
from tests.upstream.stack import Site, Stack
from tests.upstream.yumrepos import build_rpms, pkg

from .content.images import push_e2e_images
from .content.repos import MEDIA_REPOS, BuiltRepos, build_e2e_repos_cached, repo_urls
from .content.site import add_e2e_binaries, build_e2e_site

ROOT = Path(__file__).resolve().parents[2]
K8S_PACKAGES = ["kubeadm-1.30.4", "kubelet-1.30.4", "kubectl-1.30.4", "cri-tools", "kubernetes-cni"]
RUNTIME_PACKAGES = {"containerd": ["containerd.io"], "docker": ["docker-ce", "docker-ce-cli", "containerd.io"]}
# asked for in spec.packages and needed by nothing else (from the media's AppStream, with apr and apr-util):
# the installer must install it on every host anyway, and reset must remove it
EXTRA_PACKAGES = ["httpd-tools"]
POD_SUBNET = "10.244.0.0/16"  # the rig's own addresses are in 192.168.0.0/16 (calico's default)


@dataclass
class Upstream:
    """The running build-side stand-ins."""

    content: BuiltRepos
    yum: RepoHTTPServer
    site: Site
    registry: Registry
    stack: Stack
    seconds: dict[str, float] = field(default_factory=dict)

    def close(self) -> None:
        for stop in (self.yum.stop, self.site.server.stop if self.site.server else None, self.registry.stop):
            if stop:
                try:
                    stop()
                except Exception:  # noqa: BLE001 - best effort on the way out
                    pass


def cri_dockerd_double(site: Site, work: Path) -> None:
    """cri-dockerd cannot be had here: a TEST DOUBLE RPM at the release URL the builder's default uses."""
    from bundler.files.defaults import CRI_DOCKERD_VERSION

    script = ("#!/usr/bin/python3\n# cri-dockerd TEST DOUBLE (airgap-bundler e2e): records its flags and stays up.\n"
              "import json, signal, sys, time\n"
              "open('/var/log/cri-dockerd-double.log', 'a').write(json.dumps(sys.argv) + '\\n')\n"
              "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
              "while True:\n    time.sleep(3600)\n")
    unit = ("[Unit]\nDescription=CRI Interface for Docker (TEST DOUBLE)\nAfter=docker.service cri-docker.socket\n"
            "Requires=docker.service cri-docker.socket\n"
            "[Service]\nExecStart=/usr/bin/cri-dockerd --container-runtime-endpoint fd://\n[Install]\n"
            "WantedBy=multi-user.target\n")
    socket = ("[Unit]\nDescription=CRI Docker Socket for the API (TEST DOUBLE)\nPartOf=cri-docker.service\n"
              "[Socket]\nListenStream=%t/cri-dockerd.sock\nSocketMode=0660\nSocketUser=root\n"
              "[Install]\nWantedBy=sockets.target\n")
    p = pkg("cri-dockerd", CRI_DOCKERD_VERSION, "3.el8", "x86_64", requires=["docker-ce"],
            files={"/usr/bin/cri-dockerd": script, "/usr/lib/systemd/system/cri-docker.service": unit,
                   "/usr/lib/systemd/system/cri-docker.socket": socket},
            summary="cri-dockerd TEST DOUBLE")
    rpm = build_rpms([p], work / "cri-dockerd-build")[p]
    site.put(f"github.com/Mirantis/cri-dockerd/releases/download/v{CRI_DOCKERD_VERSION}/"
             f"cri-dockerd-{CRI_DOCKERD_VERSION}-3.el8.x86_64.rpm", rpm.read_bytes())


def start_upstream(work: Path, cache_root: Path) -> Upstream:
    t = time.monotonic()
    content = build_e2e_repos_cached(cache_root)
    t_repos = time.monotonic() - t
    yum = RepoHTTPServer(content.root).start()
    registry = site = None
    try:
        t = time.monotonic()
        site = build_e2e_site(work / "site")
        cri_dockerd_double(site, work)
        add_e2e_binaries(site)
        site.server = RepoHTTPServer(site.root).start()
        registry = Registry(work / "registry")
        urls = repo_urls(yum.url)
        stack = Stack(urls, registry, site)
        push_e2e_images(stack, cni="calico")
        return Upstream(content, yum, site, registry, stack,
                        {"content repos": t_repos, "registry + site": time.monotonic() - t})
    except BaseException:
        yum.stop()
        if site is not None and site.server:
            site.server.stop()
        if registry is not None:
            registry.stop()
        raise


def write_manifest(up: Upstream, path: Path, runtime: str = "containerd", name: str = "e2e",
                   install: str = "packages") -> Path:
    # binaries mode: the runtime and kube binaries come as files; the hosts' own dependencies from the media
    packages = (K8S_PACKAGES + RUNTIME_PACKAGES[runtime] + EXTRA_PACKAGES if install == "packages"
                else ["conntrack-tools", "socat"])
    text = up.stack.manifest(name=name, version="1.0", k8s="1.30.4", cni="calico", runtime=runtime,
                             packages=packages, media=MEDIA_REPOS, install=install)
    path.write_text(text)
    return path


def bundler_build(manifest: Path, out: Path, cache: Path) -> tuple[Path, str]:
    """`bundler build` as a user runs it (the console script); returns (tarball, its summary output)."""
    exe = Path(sys.executable).parent / "bundler"
    cmd = [str(exe), "build", str(manifest), "-o", str(out), "--cache", str(cache)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise AssertionError(f"bundler build failed:\n{r.stdout}\n{r.stderr}")
    tarballs = sorted(out.glob("*.tar.gz"))
    return tarballs[-1], r.stdout


def install_command(bundle_dir: str, rig_args: list[str], subcommand: str = "", extra: tuple[str, ...] = ()) -> str:
    """./install.py with the rig's hosts; install and plan also get the media and pod subnet (status and reset
    take only hosts, and with no hosts they use the cluster record the install wrote)."""
    options = ["--media", "/mnt/media", "--pod-subnet", POD_SUBNET] if subcommand in ("", "install", "plan") else []
    args = ([subcommand] if subcommand else []) + rig_args + options
    return f"cd {shlex.quote(bundle_dir)} && ./install.py {' '.join(shlex.quote(a) for a in args + list(extra))}"


def put_media(node, up: Upstream) -> None:  # noqa: ANN001 - rig.nodes.Node
    """The OS DVD content on node1, as an operator copies it from the ISO."""
    node.sh("rm -rf /mnt/media && mkdir -p /mnt")
    node.copy_in(str(up.content.repos["media"]), "/mnt/media")


def snapshot(node) -> dict[str, str]:  # noqa: ANN001
    """What reset must give back: repo files, fstab, sysctl and module files, service states, as text."""
    script = ("for d in /etc/yum.repos.d /etc/sysctl.d /etc/modules-load.d; do echo \"== $d\"; "
              "for f in $(ls -A $d 2>/dev/null | sort); do echo \"-- $f\"; cat $d/$f; done; done; "
              "echo '== fstab'; cat /etc/fstab; echo '== hosts-entries'; grep -c . /etc/hosts; "
              "echo '== services'; for s in chronyd sshd containerd docker; do "
              "echo \"$s $(systemctl is-active $s) $(systemctl is-enabled $s 2>/dev/null)\"; done; "
              "echo '== binaries'; ls -A /usr/local/bin /opt/cni/bin 2>/dev/null; true")
    text = node.sh(script)
    out, cur = {}, None
    for line in text.splitlines():
        if line.startswith("== "):
            cur = line[3:]
            out[cur] = ""
        elif cur is not None:
            out[cur] += line + "\n"
    return out


def cache_root() -> Path:
    return Path(os.environ.get("AIRGAP_E2E_CONTENT_CACHE", "/var/tmp/airgap-rig/content"))
