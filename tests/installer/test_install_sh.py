"""The install.py polyglot: sh finds an interpreter (or installs python3 from repo/), then Python runs."""

import os
import shutil
import stat
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATE = os.path.join(ROOT, "installer", "install.py")


def _bundle_dir(tmp_path):
    d = tmp_path / "bundle"
    d.mkdir()
    shutil.copy(TEMPLATE, str(d / "install.py"))
    shutil.copytree(os.path.join(ROOT, "installer"), str(d / "installer"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    return d


def _fake(bindir, name, body):
    p = bindir / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(p.stat().st_mode | stat.S_IEXEC)


def _env(bindir):
    # only our fake bin and the basic tools sh needs (no python3 unless we put one there)
    tools = bindir / "tools"
    tools.mkdir()
    for t in ("dirname", "cat", "ln"):
        os.symlink(shutil.which(t), str(tools / t))
    # the preamble also tries absolute paths; restrict it to PATH lookups of python3 here
    return {"PATH": f"{bindir}:{tools}", "HOME": str(bindir), "AIRGAP_PYTHON_CANDIDATES": "python3"}


@pytest.mark.parametrize("shell", ["sh", "dash"])
def test_preamble_runs_python_with_args(tmp_path, shell):
    if not shutil.which(shell):
        pytest.skip(shell)
    d = _bundle_dir(tmp_path)
    p = subprocess.Popen([shell, str(d / "install.py"), "--version"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True)
    out, err = p.communicate()
    assert p.returncode == 0, err
    assert "airgap-installer" in out + err


def test_executable_directly(tmp_path):
    d = _bundle_dir(tmp_path)
    os.chmod(str(d / "install.py"), 0o755)
    out = subprocess.check_output([str(d / "install.py"), "--help"], universal_newlines=True)
    assert "plan" in out and "--control-plane" in out


def test_python_parses_the_file():
    import ast
    ast.parse(open(TEMPLATE).read())


def test_no_python_installs_from_bundle_repo(tmp_path):
    d = _bundle_dir(tmp_path)
    (d / "repo" / "repodata").mkdir(parents=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    env = _env(bindir)
    real_py = os.path.realpath(sys.executable)
    log = tmp_path / "yum.log"
    # a fake yum that records its arguments and "installs" python3 by linking the real one
    _fake(bindir, "yum", f'echo "$@" > {log}\nln -s {real_py} {bindir}/python3\n')
    p = subprocess.Popen(["/bin/sh", str(d / "install.py"), "--version"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True)
    out, err = p.communicate()
    assert p.returncode == 0, err
    args = log.read_text()
    assert "--disablerepo=*" in args
    assert f"--repofrompath=airgap-bootstrap,file://{d}/repo" in args
    assert args.strip().endswith("install python3")
    assert "installing python3 from the bundle's repository" in err


def test_no_python_and_yum_fails(tmp_path):
    d = _bundle_dir(tmp_path)
    (d / "repo" / "repodata").mkdir(parents=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    env = _env(bindir)
    _fake(bindir, "yum", "echo 'No package python3 available.' >&2; exit 1\n")
    p = subprocess.Popen(["/bin/sh", str(d / "install.py")], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True)
    _, err = p.communicate()
    assert p.returncode == 2
    assert f"installing python3 from {d}/repo failed" in err


def test_no_python_no_repo(tmp_path):
    d = _bundle_dir(tmp_path)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    p = subprocess.Popen(["/bin/sh", str(d / "install.py")], env=_env(bindir), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True)
    _, err = p.communicate()
    assert p.returncode == 2 and "no repo/" in err
