"""One place maps errors to exit codes, for every command: a command added later cannot forget it.

Each leaf command's callback is replaced by one that raises (our own code, not a server), so the test covers the
whole command tree without setting up each command's real failure.
"""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from bundler.cli import main
from bundler.errors import BundlerError, FetchError, ManifestError


def leaves(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from leaves(cmd, path + (name,))
        else:
            yield path + (name,), cmd


COMMANDS = list(leaves(main))


def test_the_tree_has_the_documented_commands() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"plan", "build", "lock", "verify", "cache info", "cache prune", "split", "join", "sbom"} <= names


@pytest.mark.parametrize("error, code", [(FetchError("upstream gone: fix the mirror"), 1),
                                          (ManifestError("m.yaml line 3: spec.x is unknown"), 2),
                                          (KeyboardInterrupt(), 130)])
@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_every_command_maps_errors_to_exit_codes(monkeypatch: pytest.MonkeyPatch, path: tuple[str, ...],
                                                 error: BaseException, code: int) -> None:
    cmd = dict(COMMANDS)[path]

    def fail(**_: object) -> None:
        raise error

    monkeypatch.setattr(cmd, "callback", fail)
    monkeypatch.setattr(cmd, "params", [])
    r = CliRunner().invoke(main, list(path))
    assert r.exit_code == code, r.output
    assert not isinstance(r.exception, (BundlerError, KeyboardInterrupt))  # handled, not escaped
    if isinstance(error, BundlerError):
        assert r.stderr.startswith("error: ") and str(error) in r.stderr.replace("\n", " ")
    else:
        assert "interrupted" in r.stderr


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    cmd = dict(COMMANDS)[("cache", "info")]

    def bug(**_: object) -> None:
        raise ZeroDivisionError

    monkeypatch.setattr(cmd, "callback", bug)
    monkeypatch.setattr(cmd, "params", [])
    r = CliRunner().invoke(main, ["cache", "info"])
    assert isinstance(r.exception, ZeroDivisionError)
