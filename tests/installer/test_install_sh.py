"""The install.py polyglot: sh finds an interpreter (or installs python3 from repo/), then Python runs."""

import os
import shutil
import stat
import subprocess
import sys

import pytest

from .conftest import write_sums

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATE = os.path.join(ROOT, "installer", "install.py")


def _bundle_dir(tmp_path, repo=False):
    d = tmp_path / "bundle"
    d.mkdir()
    shutil.copy(TEMPLATE, str(d / "install.py"))
    shutil.copytree(os.path.join(ROOT, "installer"), str(d / "installer"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    if repo:
        (d / "repo" / "repodata").mkdir(parents=True)
        (d / "repo" / "repodata" / "repomd.xml").write_text("<repomd/>\n")
    write_sums(str(d))
    return d


def _fake(bindir, name, body):
    p = bindir / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(p.stat().st_mode | stat.S_IEXEC)


def _env(bindir):
    # only our fake bin and the basic tools sh needs (no python3 unless we put one there)
    tools = bindir / "tools"
    tools.mkdir()
    for t in ("dirname", "cat", "ln", "sha256sum", "mktemp", "rmdir"):
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


def _run(d, env, *args):
    p = subprocess.Popen(["/bin/sh", str(d / "install.py"), *args], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True)
    out, err = p.communicate()
    return p.returncode, out, err


def test_no_python_installs_from_bundle_repo(tmp_path):
    d = _bundle_dir(tmp_path, repo=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    env = _env(bindir)
    real_py = os.path.realpath(sys.executable)
    log = tmp_path / "yum.log"
    # a fake yum that records its arguments and "installs" python3 by linking the real one
    _fake(bindir, "yum", f'echo "$@" > {log}\nln -s {real_py} {bindir}/python3\n')
    rc, out, err = _run(d, env, "install", "--control-plane", "10.0.0.11", "--bundle", str(d / "nothing"))
    assert rc == 1 and "nothing does not exist" in err, err  # the Python part (its bundle check) ran after it
    args = log.read_text()
    assert "--disablerepo=*" in args
    assert f"--repofrompath=airgap-bootstrap,file://{d}/repo" in args and "airgap-media" not in args
    assert args.strip().endswith("install python3")
    assert f"python3 is missing: installing it from {d}/repo (the bundle repo) ..." in err


def test_no_python_installs_from_media_and_bundle_with_the_media_keys(tmp_path):
    """CentOS 7.7+ media carry python3 (so a media-first bundle does not ship it): --media joins the bundle's repo,
    and the media's RPM-GPG-KEY files are trusted for it."""
    d = _bundle_dir(tmp_path, repo=True)
    media = tmp_path / "dvd"
    (media / "repodata").mkdir(parents=True)
    (media / "RPM-GPG-KEY-CentOS-7").write_text("KEY\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "yum.log"
    _fake(bindir, "yum", f'for a in "$@"; do echo "$a"; done > {log}\n'
                         f'ln -s {os.path.realpath(sys.executable)} {bindir}/python3\n')
    rc, _, err = _run(d, _env(bindir), "--control-plane", "10.0.0.11", "--media", str(media), "--bundle",
                      str(d / "nothing"))
    assert "nothing does not exist" in err, err
    args = log.read_text().splitlines()
    assert f"--repofrompath=airgap-media,file://{media}" in args and "--enablerepo=airgap-media" in args
    assert "--setopt=airgap-media.gpgcheck=1" in args
    assert f"--setopt=airgap-media.gpgkey=file://{media}/RPM-GPG-KEY-CentOS-7" in args
    assert f"python3 is missing: installing it from {d}/repo and {media} (the bundle repo and OS media)" in err


def test_no_python_and_a_tampered_bundle_installs_nothing(tmp_path):
    d = _bundle_dir(tmp_path, repo=True)
    (d / "installer" / "cli.py").write_text("import os; os.system('evil')\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "yum.log"
    _fake(bindir, "yum", f"echo called > {log}\n")
    rc, _, err = _run(d, _env(bindir))
    assert rc == 2 and "does not match its SHA256SUMS" in err and "nothing was installed" in err
    assert not log.exists()


def test_no_python_bootstrap_with_real_dnf_takes_python3_from_the_media(tmp_path, yum_repos):
    """The preamble's repo arguments given to the real dnf (EL's yum is dnf from EL8 on; CentOS 7's yum takes the
    same options): python3, only on the media, is installed into an empty root. The test upstream's python3 is a
    stub RPM, so the wrapper then links the real interpreter for the preamble to find."""
    from tests.upstream.yumrepos import dnf_options, rpm_qa

    d = _bundle_dir(tmp_path, repo=False)
    (d / "repo").mkdir()
    subprocess.run(["createrepo_c", "-q", str(d / "repo")], check=True)  # a real, empty bundle repo
    write_sums(str(d))
    root = tmp_path / "root"
    opts = " ".join(f"'{o}'" for o in dnf_options({}, root) if o != "-y")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    home = os.environ.get("HOME", "/root")  # Debian's rpm keeps its db under ~/.rpmdb (rooted in the installroot)
    _fake(bindir, "dnf-wrapper", f'PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME={home} /usr/bin/dnf {opts} "$@" || exit $?\n'
                                 f'ln -s {os.path.realpath(sys.executable)} {bindir}/python3\n')
    env = dict(_env(bindir), AIRGAP_YUM=str(bindir / "dnf-wrapper"))
    rc, _, err = _run(d, env, "install")  # without the media: python3 is nowhere, and that is said
    assert rc == 2 and "give the OS media with --iso or --media" in err, err
    rc, out, err = _run(d, env, "--media", str(yum_repos.path("media")))
    assert "error: the bundle in" in err, err  # the Python part ran: its bundle check (this test bundle has no
    # bundle.json)
    assert any(n.startswith("python3-3.9.18-") for n in rpm_qa(root)), rpm_qa(root)


def test_no_python_and_yum_fails(tmp_path):
    d = _bundle_dir(tmp_path, repo=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    env = _env(bindir)
    _fake(bindir, "yum", "echo 'No package python3 available.' >&2; exit 1\n")
    p = subprocess.Popen(["/bin/sh", str(d / "install.py")], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True)
    _, err = p.communicate()
    assert p.returncode == 2
    assert f"installing python3 from {d}/repo failed" in err and "--iso or --media" in err


def test_no_python_no_repo(tmp_path):
    d = _bundle_dir(tmp_path)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    p = subprocess.Popen(["/bin/sh", str(d / "install.py")], env=_env(bindir), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True)
    _, err = p.communicate()
    assert p.returncode == 2 and "no repo/" in err


def _tree(d):
    return sorted((str(p.relative_to(d)), p.stat().st_size, p.stat().st_mtime_ns) for p in d.rglob("*"))


@pytest.mark.parametrize("args", [["--help"], ["plan"], ["status"], ["--version"], ["reset", "--help"],
                                  ["plan", "--control-plane", "10.0.0.11", "--media", "/mnt/dvd"],
                                  ["--control-plane", "10.0.0.11", "status"]])
def test_no_python_help_plan_status_change_nothing(tmp_path, args):
    """Without python3, only install and reset may install it: help, version, plan and status say how to proceed,
    run no yum, mount nothing and leave the bundle as it was."""
    d = _bundle_dir(tmp_path, repo=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls.log"
    for tool in ("yum", "dnf", "mount", "sha256sum"):
        _fake(bindir, tool, f"echo {tool} >> {log}\n")
    env = _env(bindir)
    before = _tree(d)
    rc, out, err = _run(d, env, *args)
    assert rc == 2, err
    assert not log.exists(), log.read_text()
    assert _tree(d) == before
    word = args[0] if args[0] in ("--help", "--version") else ("reset" if "reset" in args and "--help" not in args
                                                                else next(a for a in args if a in ("plan", "status",
                                                                                                     "--help")))
    assert f"error: python3 is missing on this host. '{d}/install.py {word}' changes nothing" in err, err
    assert f"To proceed: run 'sh {d}/install.py install [options]'" in err and "yum install python3" in err
    assert "installing it" not in err


def test_no_python_install_says_so_before_changing_anything(tmp_path):
    d = _bundle_dir(tmp_path, repo=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _fake(bindir, "yum", "echo YUM-RAN >&2; exit 1\n")
    rc, _, err = _run(d, _env(bindir), "reset", "-y")
    assert rc == 2
    lines = err.splitlines()
    first = lines.index(f"python3 is missing: installing it from {d}/repo (the bundle repo) ...")
    assert first < lines.index("YUM-RAN")


def _with_modules(tmp_path):
    """A bundle whose installer/commands/ also has a read-only command module (LOCKS = False) and one with a
    read-only sub-action (READ_ONLY_ACTIONS), as other command modules declare themselves."""
    d = _bundle_dir(tmp_path, repo=True)
    cmds = d / "installer" / "commands"
    (cmds / "zz_lookx.py").write_text('"""test"""\nCOMMAND = "lookx"\nLOCKS = False\n')
    (cmds / "zz_certx.py").write_text('"""test"""\nCOMMAND = \'certx\'\nREAD_ONLY_ACTIONS = ("check", "list")\n')
    write_sums(str(d))
    return d


@pytest.mark.parametrize("args", [["add-node", "--workers", "10.0.0.12"], ["remove-node", "node3", "-y"],
                                  ["node", "apply", "--join", "join.json"], ["--parallel", "2", "certx", "renew"]])
def test_no_python_commands_that_change_hosts_install_it(tmp_path, args):
    """add-node, remove-node and command modules that take the host lock (node apply, a renew) install python3
    like install does."""
    d = _with_modules(tmp_path)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "yum.log"
    _fake(bindir, "yum", f"echo called > {log}\nexit 1\n")
    rc, _, err = _run(d, _env(bindir), *args)
    assert rc == 2 and log.exists(), err
    assert f"python3 is missing: installing it from {d}/repo (the bundle repo) ..." in err
    assert "changes nothing" not in err


@pytest.mark.parametrize("args,word", [
    (["lookx", "--json"], "lookx"), (["certx", "check"], "certx check"), (["-y", "certx", "list"], "certx list"),
    (["plan", "add-node", "--workers", "10.0.0.12"], "plan"), (["plan", "node", "apply"], "plan"),
    (["remove-node", "--help"], "--help")])
def test_no_python_read_only_commands_say_how_to_proceed(tmp_path, args, word):
    """Read-only commands (plan of anything, a module with LOCKS = False, a module's READ_ONLY_ACTIONS) run no
    yum, change nothing and say how to proceed."""
    d = _with_modules(tmp_path)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls.log"
    for tool in ("yum", "dnf", "mount", "sha256sum"):
        _fake(bindir, tool, f"echo {tool} >> {log}\n")
    before = _tree(d)
    rc, _, err = _run(d, _env(bindir), *args)
    assert rc == 2 and not log.exists(), err
    assert _tree(d) == before
    assert f"'{d}/install.py {word}' changes nothing" in err, err
    assert "To proceed: run 'sh " in err
