"""`make lint` as part of `make test`: CI runs only `make test`, so the linters must be tests to be enforced.

ruff (style, imports, bugbear) over everything; mypy over the builder (settings in pyproject.toml); vermin keeps
the installer runnable on the Python 3.6 of EL7/EL8 hosts. A few seconds together.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Run with this interpreter (`python -m`, or the console script's entry point: vermin has no __main__).
LINTERS = {
    "ruff": ["-m", "ruff", "check", "."],
    "mypy": ["-m", "mypy"],
    "vermin": ["-c", "import sys, vermin; sys.argv[0] = 'vermin'; sys.exit(vermin.main())",
               "-q", "-t=3.6-", "--violations", "--no-tips", "installer/"],
}


@pytest.mark.parametrize("name", list(LINTERS))
def test_linter_is_clean(name: str) -> None:
    if importlib.util.find_spec(name) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; `make setup` installs the test extras (pip install -e .[test])")
        pytest.skip(f"{name} is not installed: pip install -e '.[test]'")
    r = subprocess.run([sys.executable, *LINTERS[name]], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{name} found problems (`make lint` shows the same):\n{r.stdout}{r.stderr}"
