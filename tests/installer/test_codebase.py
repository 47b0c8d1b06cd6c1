"""installer/ must stay stdlib-only and Python 3.6 compatible: it runs on CentOS 7's python3."""

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PKG = os.path.join(ROOT, "installer")


def _py_files():
    for d, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                yield os.path.join(d, f)


def test_only_stdlib_imports():
    stdlib = set(sys.stdlib_module_names)
    bad = []
    for path in _py_files():
        tree = ast.parse(open(path).read(), path)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for n in names:
                top = n.split(".")[0]
                if top != "installer" and top not in stdlib:
                    bad.append(f"{os.path.relpath(path, ROOT)}: {n}")
    assert bad == []


def test_vermin_python36():
    vermin = os.path.join(os.path.dirname(sys.executable), "vermin")
    if not os.path.exists(vermin):
        pytest.skip("vermin is not installed in the venv")
    p = subprocess.Popen([vermin, "-t=3.6-", "--violations", "--no-tips", PKG], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True)
    out, _ = p.communicate()
    assert p.returncode == 0, out


def test_no_py37_only_constructs():
    """Things vermin does not flag on its own but 3.6 lacks."""
    for path in _py_files():
        src = open(path).read()
        assert "from __future__ import annotations" not in src, path
        assert "capture_output" not in src, path
        assert "dataclass" not in src, path
        assert "text=True" not in src, path


def test_paths_and_ports_are_constants():
    """/etc/kubernetes/admin.conf and the serving ports are spelt once, in installer/constants.py."""
    import re
    spelt = re.compile(r"/etc/kubernetes/admin\.conf|\b(8089|5000|5001)\b")
    found = []
    for path in _py_files():
        if path.endswith(os.path.join("installer", "constants.py")):
            continue
        for n, line in enumerate(open(path), 1):
            code = line.split("#", 1)[0]
            if spelt.search(code) and not code.lstrip().startswith(("*", '"""')):
                found.append("%s:%d: %s" % (os.path.relpath(path, ROOT), n, line.strip()))
    assert found == []
