"""Tiny RPMs and yum repos on the test machine (rpmbuild + createrepo_c), for rig self-tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from .util import RigError, run


def missing_prerequisites() -> list[str]:
    return [f"{tool} (apt-get install {pkg})" for tool, pkg in (("rpmbuild", "rpm"), ("createrepo_c", "createrepo-c"))
            if not shutil.which(tool)]


def build_rpm(topdir: Path, name: str, version: str = "1.0", release: str = "1", files: dict[str, str] | None = None,
              summary: str = "airgap rig test package", requires: tuple[str, ...] = ()) -> Path:
    """Build a noarch RPM installing `files` ({absolute path: content}); returns the .rpm path."""
    files = files or {f"/usr/share/{name}/hello.txt": f"hello from {name}\n"}
    if missing_prerequisites():
        raise RigError("missing: " + ", ".join(missing_prerequisites()))
    spec_dir = topdir / "SPECS"
    src = topdir / "payload" / name
    spec_dir.mkdir(parents=True, exist_ok=True)
    for path, content in files.items():
        p = src / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    install = "\n".join(
        f"mkdir -p %{{buildroot}}{Path(p).parent}\ncp {src / p.lstrip('/')} %{{buildroot}}{p}" for p in files
    )
    spec = f"""Name: {name}
Version: {version}
Release: {release}
Summary: {summary}
License: Apache-2.0
BuildArch: noarch
AutoReqProv: no
{''.join(f'Requires: {r}{chr(10)}' for r in requires)}
%description
{summary}

%install
{install}

%files
{chr(10).join(files)}
"""
    spec_path = spec_dir / f"{name}.spec"
    spec_path.write_text(spec)
    run(["rpmbuild", "--quiet", "--define", f"_topdir {topdir}", "-bb", str(spec_path)], timeout=120)
    rpms = sorted((topdir / "RPMS" / "noarch").glob(f"{name}-{version}-{release}*.rpm"))
    if not rpms:
        raise RigError(f"rpmbuild made no {name} rpm")
    return rpms[-1]


def createrepo(repo_dir: Path) -> None:
    run(["createrepo_c", "--quiet", str(repo_dir)], timeout=120)
