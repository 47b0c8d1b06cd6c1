"""The hosts enable exactly the module streams the bundle was solved with (bundle.json `modules`), before any
package is installed on them; from facts alone (no hosts)."""

import pytest

from installer.changes import Command, InstallPackages
from installer.errors import InstallerError
from installer.phases.host_prep import HostPrep
from installer.phases.media_repo import MediaRepo, module_state

from .conftest import make_bundle, make_ctx

STREAMS = ["container-tools:rhel8", "db:2"]


@pytest.fixture
def el8_ctx(tmp_path):
    b = make_bundle(str(tmp_path / "b"), os_tag="el8")
    b.data["modules"] = list(STREAMS)
    ctx = make_ctx(b)
    for f in ctx.facts.values():
        f.update(os_version_id="8.10", os_pretty="Rocky Linux 8.10")
    return ctx


def enables(changes):
    return [c for c in changes if isinstance(c, Command) and " module enable " in c.cmd]


def test_el8_plan_enables_the_solved_streams_before_installing(el8_ctx):
    ctx = el8_ctx
    w = ctx.inventory.workers[0]
    assert "/etc/dnf/modules.d/container-tools.module" in MediaRepo().watched_files(ctx, w)
    assert "/etc/dnf/modules.d/db.module" in MediaRepo().watched_files(ctx, w)
    changes = HostPrep().plan(ctx, w, ctx.facts[w.label])
    (enable,) = enables(changes)
    assert enable.cmd.endswith("--disablerepo='*' --enablerepo='airgap-*' module enable container-tools:rhel8 db:2")
    assert enable.describe() == ("enable module streams container-tools:rhel8, db:2 (the streams the bundle was "
                                 "solved with)")
    assert "module reset container-tools db" in enable.undo
    first_install = next(i for i, c in enumerate(changes) if isinstance(c, InstallPackages))
    assert changes.index(enable) < first_install


def test_enabled_streams_are_not_enabled_again(el8_ctx):
    ctx = el8_ctx
    cp = ctx.first_cp
    files = ctx.facts[cp.label]["files"]
    files["/etc/dnf/modules.d/container-tools.module"] = (
        "[container-tools]\nname=container-tools\nstream=rhel8\nprofiles=\nstate=enabled\n")
    (enable,) = enables(HostPrep().plan(ctx, cp, ctx.facts[cp.label]))
    assert enable.cmd.endswith("module enable db:2")
    files["/etc/dnf/modules.d/db.module"] = "[db]\nname=db\nstream=2\nprofiles=\nstate=enabled\n"
    assert enables(HostPrep().plan(ctx, cp, ctx.facts[cp.label])) == []


def test_another_enabled_stream_is_refused_with_the_fix(el8_ctx):
    ctx = el8_ctx
    cp = ctx.first_cp
    ctx.facts[cp.label]["files"]["/etc/dnf/modules.d/db.module"] = "[db]\nname=db\nstream=1\nstate=enabled\n"
    with pytest.raises(InstallerError) as e:
        HostPrep().plan(ctx, cp, ctx.facts[cp.label])
    assert "solved with module streams container-tools:rhel8, db:2, but 10.0.0.11 has db:1 enabled" in str(e.value)
    assert "dnf module reset db" in e.value.hint


def test_no_modules_no_enable(bundle):
    ctx = make_ctx(bundle)
    cp = ctx.first_cp
    assert enables(HostPrep().plan(ctx, cp, ctx.facts[cp.label])) == []


def test_module_state_parsing():
    assert module_state("[x]\nname=x\nstream=2\nstate=enabled\n") == ("2", True)
    assert module_state("[x]\nstream=2\nstate=disabled\n") == ("2", False)
    assert module_state("[x]\nstream=1.0\nenabled=1\n") == ("1.0", True)  # EL 8.0's dnf
    assert module_state(None) == (None, False)
