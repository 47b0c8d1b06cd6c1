"""Every command (built-in or a module in installer/commands/) has its own --help, offers --abort only when it
changes hosts, and its `plan` form where it declares one; the shipped ./install.py finds them all."""

import os
import shutil
import subprocess
import sys

import pytest

from installer import cli
from installer import commands as extra

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REQUIRED = ("COMMAND", "DESCRIPTION", "add_arguments", "run")


def test_every_command_module_declares_the_protocol():
    here = os.path.join(REPO, "installer", "commands")
    modules = [f[:-3] for f in os.listdir(here) if f.endswith(".py") and not f.startswith("_")]
    assert len(extra.available()) == len(modules), "a module in installer/commands/ lacks COMMAND"
    for word, mod in extra.available().items():
        missing = [a for a in REQUIRED if not hasattr(mod, a)]
        assert not missing, "installer/commands: %s lacks %s" % (word, ", ".join(missing))
        assert word not in cli.BUILTIN, "%s shadows a built-in command" % word


@pytest.mark.parametrize("word", list(cli.all_commands()))
def test_help_of_each_command(word, capsys):
    with pytest.raises(SystemExit) as e:
        cli.parse([word, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: install.py")
    mod = extra.get(word)
    if mod is not None:
        first = " ".join(mod.DESCRIPTION.split()[:4])
        assert first in " ".join(out.split())
        assert ("--abort" in out) == bool(getattr(mod, "LOCKS", True))


@pytest.mark.parametrize("word", list(cli.plannable()))
def test_plan_form(word, capsys):
    with pytest.raises(SystemExit) as e:
        cli.parse(["plan", word, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: install.py plan %s" % word in out and "--abort" not in out


def test_usage_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        cli.parse(["--help"])
    usage = capsys.readouterr().out.splitlines()[0]
    for word in cli.all_commands():
        assert word in usage


def test_shipped_entry_point_lists_the_same_commands(tmp_path):
    """install.py as the bundle ships it (install.py at the top, the installer package beside it) sees every
    command module."""
    shutil.copytree(os.path.join(REPO, "installer"), str(tmp_path / "installer"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(os.path.join(REPO, "installer", "install.py"), str(tmp_path / "install.py"))
    out = subprocess.run([sys.executable, str(tmp_path / "install.py"), "--help"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert out.returncode == 0, out.stdout
    for word in cli.all_commands():
        assert word in out.stdout.splitlines()[0]


def test_read_only_runs_leave_no_temporary_log_after_success(tmp_path):
    """plan/status/doctor log to a temporary directory; a successful run removes it (a failed one keeps it, since
    the error names it). Before, every status run left /tmp/airgap-installer-log-* behind."""
    from installer import output

    out = output.Output(root=str(tmp_path), read_only=True)
    out.say("hello")
    assert os.path.isfile(os.path.join(out.dir, "install.log"))
    output.discard_temp_logs()
    assert not os.path.exists(out.dir)
    assert not os.listdir(str(tmp_path))  # nothing under --root either


def test_main_discards_the_temporary_log_only_on_success(tmp_path, monkeypatch):
    from installer import output

    made = []
    real = output._temp_dir
    monkeypatch.setattr(output, "_temp_dir", lambda: made.append(real()) or made[-1])
    monkeypatch.setattr(cli, "_main", lambda argv: output.Output(read_only=True).say("x") or 0)
    assert cli.main([]) == 0 and made and not os.path.exists(made[-1])
    monkeypatch.setattr(cli, "_main", lambda argv: output.Output(read_only=True).say("x") or 1)
    assert cli.main([]) == 1 and os.path.isdir(made[-1])
    shutil.rmtree(made[-1])


@pytest.mark.parametrize("value", ["abc", "0", "-5"])
def test_a_bad_timeout_in_the_environment_is_one_clear_error(value, monkeypatch):
    from installer.errors import InstallerError, env_seconds

    monkeypatch.setenv("AIRGAP_POD_STOP_TIMEOUT", value)
    with pytest.raises(InstallerError) as e:
        env_seconds("AIRGAP_POD_STOP_TIMEOUT", 120)
    assert "AIRGAP_POD_STOP_TIMEOUT" in str(e.value) and "120" in str(e.value)
    monkeypatch.delenv("AIRGAP_POD_STOP_TIMEOUT")
    assert env_seconds("AIRGAP_POD_STOP_TIMEOUT", 120) == 120
