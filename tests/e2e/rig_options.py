"""`--keep-rig` as a pytest plugin, so the option also works when tests/e2e is not on the command
line (pytest only asks initial conftests for options): add "tests.e2e.rig_options" to
`pytest_plugins` in tests/conftest.py. tests/e2e/conftest.py registers the same option when it is
an initial conftest; whichever comes second is a no-op."""

from __future__ import annotations

import pytest


def add_keep_rig_option(parser: pytest.Parser) -> None:
    try:
        parser.addoption("--keep-rig", action="store_true", default=False,
                         help="leave the e2e rig (nodes, network, dockerd) running after the session "
                              "(same as AIRGAP_RIG_KEEP=1)")
    except ValueError:  # already registered by the other one
        pass


def pytest_addoption(parser: pytest.Parser) -> None:
    add_keep_rig_option(parser)
