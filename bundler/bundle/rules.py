"""The tree rules (what may be in a bundle, SHA256SUMS against the files) live in installer/bundle_rules.py."""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

from .report import VerifyError


@functools.cache
def bundle_rules() -> Any:
    """installer/bundle_rules.py, loaded from the installer sources this bundler ships into every bundle: one
    rule set for `bundler verify` and install.py, not a copy that could drift. (Stdlib-only, Python 3.6.)"""
    from .installer_files import installer_source

    try:
        path = installer_source() / "bundle_rules.py"
    except FileNotFoundError as e:
        raise VerifyError(f"{e}: verify needs the installer's bundle_rules.py") from None
    spec = importlib.util.spec_from_file_location("_airgap_bundle_rules", path)
    if spec is None or spec.loader is None:
        raise VerifyError(f"cannot load {path}; reinstall the bundler")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
