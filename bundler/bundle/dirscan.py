"""An unpacked bundle directory, judged by installer/bundle_rules.py exactly as install.py judges it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .report import Report
from .rules import bundle_rules
from .sums import SUMS


def find_top_dir(path: Path) -> Path:
    """The unpacked bundle: `path` itself, or its only subdirectory when given where the tarball was unpacked."""
    if (path / SUMS).exists() or (path / "bundle.json").exists():
        return path
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.is_symlink()]
    if len(subdirs) == 1 and ((subdirs[0] / SUMS).exists() or (subdirs[0] / "bundle.json").exists()):
        return subdirs[0]
    return path


def scan_dir(top: Path, report: Report, progress: Callable[[int], None] | None) -> Any:
    """The unpacked tree, judged by installer/bundle_rules.py exactly as install.py judges it."""
    rules = bundle_rules()
    report.top = top.name
    scan, problems, checked, hashed = rules.check_tree(str(top), progress)
    for path, problem in problems:
        report.add(path, problem)
    report.files_checked, report.bytes_hashed = checked, hashed
    report.omitted = scan.omitted
    return scan
