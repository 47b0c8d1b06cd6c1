"""The bundler as a user gets it: `pip install .` (a wheel) in a fresh venv, not the editable checkout.

The wheel is built offline from a copy of the sources (setuptools and wheel from the running environment),
installed with --no-deps into a new venv whose only other path is the running environment's site-packages
(for click, requests, solv, ...; the editable install's import hook there is not loaded), and run from a
directory outside the checkout without PYTHONPATH: every `bundler` import must come from the wheel.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _sources_in_checkout() -> set[str]:
    """Every .py file bundler/ and installer/ hold, as the wheel must name them."""
    names = {p.relative_to(REPO).as_posix() for p in (REPO / "bundler").rglob("*.py")}
    names |= {"bundler/_installer/" + p.relative_to(REPO / "installer").as_posix()
              for p in (REPO / "installer").rglob("*.py")}
    return {n for n in names if "__pycache__" not in n}


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("wheel") is None:
        pytest.fail("building the wheel offline needs the 'wheel' package: pip install -e '.[test]'", pytrace=False)
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a copy: an in-tree build would leave build/ and *.egg-info in the checkout
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for d in ("bundler", "installer"):
        shutil.copytree(REPO / d, src / d, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp / "dist"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                        "--disable-pip-version-check", "-w", str(dist), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    whl = next(dist.glob("airgap_bundler-*.whl"))
    with zipfile.ZipFile(whl) as z:
        shipped = {n for n in z.namelist() if n.endswith(".py")}
    assert _sources_in_checkout() - shipped == set(), "modules missing from the wheel: list them in pyproject.toml"

    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    purelib = Path(subprocess.run([str(venv / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_path("
                                   "'purelib'))"], check=True, capture_output=True, text=True, env=env).stdout.strip())
    # the dependencies (not bundler) from the running environment: plain path lines, so its .pth hooks stay off
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "deps-from-test-env.pth").write_text("\n".join(deps) + "\n")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install", "-q",
                        "--no-deps", "--no-index", "--disable-pip-version-check", str(whl)],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return venv


def _run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(venv / "bin/bundler"), *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env=env)


def test_a_wheel_install_builds_locks_and_verifies(wheel_venv, tmp_path, stack):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(wheel_venv / "bin/python"), "-c", "import bundler; print(bundler.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, check=True).stdout.strip()
    assert where.startswith(str(wheel_venv)), where

    r = _run(wheel_venv, "--help", cwd=tmp_path)
    assert r.returncode == 0 and "build" in r.stdout, r.stderr
    manifest = tmp_path / "stack.yaml"
    manifest.write_text(stack.manifest(packages=["containerd.io"], cni="none", k8s=None,
                                       extra_images=["registry.k8s.io/pause:3.9"]))
    cache = str(tmp_path / "cache")
    r = _run(wheel_venv, "lock", str(manifest), "--cache", cache, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _run(wheel_venv, "build", str(manifest), "--locked", "-q", "--cache", cache, "-o", "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    tarball = tmp_path / "out" / "stack-1.0-el9-x86_64.tar.gz"
    r = _run(wheel_venv, "verify", str(tarball), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    listing = subprocess.run(["tar", "-tzf", str(tarball)], capture_output=True, text=True, check=True).stdout
    names = set(listing.split())
    assert {"stack-1.0-el9-x86_64/install.py", "stack-1.0-el9-x86_64/installer/cli.py",
            "stack-1.0-el9-x86_64/installer/ansible/site.yml"} <= names  # package data: the playbook ships too
