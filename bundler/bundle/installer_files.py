"""Putting the installer into the bundle: install.py at the top, the installer package, INSTALL.md."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..manifest.model import Manifest


def installer_source() -> Path:
    """The installer/ directory: packaged beside bundler (wheel installs) or at the checkout's top."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_installer", here.parent / "installer"):
        if (candidate / "install.py").is_file():
            return candidate
    raise FileNotFoundError("the installer sources are missing from this bundler installation; reinstall it")


def add_installer(root: Path, m: Manifest) -> None:
    src = installer_source()
    dest = root / "installer"
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        if "__pycache__" in rel.parts or rel.as_posix() == "install.py":
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        target.chmod(0o644)
    # the Ansible playbook driving `install.py node prepare/apply/finish` (installer/ansible/: YAML, README)
    for path in sorted((src / "ansible").glob("*")) if (src / "ansible").is_dir() else []:
        if path.is_file():
            (dest / "ansible").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest / "ansible" / path.name)
            (dest / "ansible" / path.name).chmod(0o644)
    shutil.copyfile(src / "install.py", root / "install.py")
    (root / "install.py").chmod(0o755)
    (root / "INSTALL.md").write_text(install_md(m), encoding="utf-8")


def install_md(m: Manifest) -> str:
    k8s = f"Kubernetes {m.kubernetes_version}, " if m.kubernetes_version else ""
    base = m.bundle_basename
    return f"""# {base}

{k8s}runtime {m.runtime}, CNI {m.cni}, for {m.target.os} / {m.target.arch} hosts.

1. Copy `{base}.tar.gz` and `{base}.tar.gz.sha256` (written beside it by `bundler build`) to the first host
   and check it: `sha256sum -c {base}.tar.gz.sha256` (or `bundler verify` on a machine that has the bundler).
2. Unpack it: `tar -xzf {base}.tar.gz && cd {base}`
3. Have the OS install media ready (the ISO file, a mounted DVD, or the optical drive).
4. See what would change: `./install.py plan --control-plane 10.0.0.11 --workers 10.0.0.12,10.0.0.13`
5. Install: `./install.py --control-plane 10.0.0.11 --workers 10.0.0.12,10.0.0.13` (or `-i inventory.ini`).
   It verifies SHA256SUMS before it touches any host. A second run changes nothing; after a failure,
   run the same command again to resume.
   The installer remembers the cluster (`/etc/airgap-bundler/cluster.json` on this host and `cluster.json`
   here), so the next commands need no host options. Hosts without a nameserver: CoreDNS then answers
   cluster names only; pass `--upstream-dns IP` to forward other names to your DNS servers.
6. `./install.py status` shows each host; `./install.py reset` restores the hosts as they were
   (`./install.py COMMAND --help` for each command's options). `helm` is installed on the control planes.
7. Add hosts later from this same bundle: `./install.py plan add-node --workers 10.0.0.14` shows what would
   change (the new host, and only the `/etc/hosts` block on the others), `./install.py add-node --workers
   10.0.0.14` does it (`--control-plane ADDR` for one more control plane). A failed add-node resets only the
   new host; run it again. `./install.py remove-node NAME` drains a node and takes it out (also a dead
   one). One operation at a time: an interrupted run's lock is released by `--abort`. Many hosts that join
   themselves: `./install.py node prepare --hosts A,B`, then `node apply` on each, then `node finish`;
   `installer/ansible/site.yml` (see its README) does that across an Ansible inventory, in batches.

Contents: `repo/` (yum repository), `images/` (OCI image store), `files/`, `manifests/`, `bundle.json`
(bill of materials with every checksum), `SHA256SUMS`.
"""
