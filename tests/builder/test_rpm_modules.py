"""EL8 modularity and dnf's `best` rule, against real rpmbuild + createrepo_c repos served over HTTP, with dnf as
the referee: stream conflicts, module dependencies, best=True refusals, did-you-mean, and the streams the hosts
must enable (recorded in bundle.json).

The repos are small and private to this file (built once per content hash, like tests/upstream's):

    base       onMedia, plain packages
    appstream  modular: db:1 (default) / db:2, app:x (requires db:2), legacy:y (requires db:1);
               tool-1.0 installable, tool-2.0 requires a capability nobody provides
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bundler.build import build, lock, resolve_packages
from bundler.errors import ManifestError, ResolveError
from bundler.fetch.cache import Cache
from bundler.manifest import load_manifest
from bundler.rpm.modules import parse_modules_yaml
from installer.bundle import Bundle
from installer.phases.host_prep import HostPrep
from tests.builder.test_rpm_engine import manifest, norm
from tests.installer.conftest import make_ctx
from tests.upstream.http import RepoHTTPServer
from tests.upstream.yumrepos import (
    DnfError,
    RepoDef,
    build_upstream,
    cached_build,
    content_hash,
    dnf_enable_modules,
    dnf_install,
    dnf_resolve,
    pkg,
)

EL8 = "el8"


def _stream_doc(name: str, stream: str, pkgs: list, requires: dict[str, list[str]]) -> str:
    req = "".join(f"\n      {m}: [{', '.join(repr(s) for s in ss)}]" for m, ss in requires.items())
    rpms = "".join(f"\n    - {p.nevra_full}" for p in pkgs)
    return f"""---
document: modulemd
version: 2
data:
  name: {name}
  stream: "{stream}"
  version: 8040020210101000000
  context: c0ffee{stream}
  arch: x86_64
  summary: {name} {stream}
  description: Synthetic module for airgap-bundler tests.
  license:
    module: [MIT]
  dependencies:
  - buildrequires:
      platform: [el8]
    requires:
      platform: [el8]{req}
  artifacts:
    rpms:{rpms}
...
"""


DB1 = pkg("dbserver", "1.0", "1.module_el8", "x86_64", files={"/usr/bin/dbserver": "#1\n"})
DB2 = pkg("dbserver", "2.0", "1.module_el8", "x86_64", files={"/usr/bin/dbserver": "#2\n"})
APP = pkg("appserver", "1.0", "1.module_el8", "noarch", requires=["dbserver"], files={"/usr/bin/appserver": "#\n"})
APPTOOL = pkg("apptool", "1.0", "1.module_el8", "noarch", files={"/usr/bin/apptool": "#\n"})
LEGACY = pkg("legacyapp", "1.0", "1.module_el8", "noarch", requires=["dbserver"], files={"/usr/bin/legacy": "#\n"})
TOOL1 = pkg("tool", "1.0", f"1.{EL8}", "noarch", files={"/usr/bin/tool": "#1\n"})
TOOL2 = pkg("tool", "2.0", f"1.{EL8}", "noarch", requires=["libmissing.so.3()(64bit)"], files={"/usr/bin/tool": "#2\n"})
MODULES_YAML = "".join([
    _stream_doc("db", "1", [DB1], {}),
    _stream_doc("db", "2", [DB2], {}),
    _stream_doc("app", "x", [APP, APPTOOL], {"db": ["2"]}),
    _stream_doc("legacy", "y", [LEGACY], {"db": ["1"]}),
    "---\ndocument: modulemd-defaults\nversion: 1\ndata:\n  module: db\n  stream: \"1\"\n...\n",
])
REPOS = {
    "base": RepoDef("base", (pkg("basetool", "1.0", f"1.{EL8}", "noarch", files={"/usr/bin/basetool": "#\n"}),),
                    False),
    "appstream": RepoDef("appstream", (DB1, DB2, APP, APPTOOL, LEGACY, TOOL1, TOOL2), False, MODULES_YAML),
}


@pytest.fixture(scope="module")
def repos(request: pytest.FixtureRequest):
    root = Path(request.config.cache.mkdir("airgap-yumrepos-modules"))
    built, _, _ = cached_build(root, content_hash(REPOS), lambda d: build_upstream(d, REPOS, compressions=("gz",)))
    with RepoHTTPServer(built) as server:
        yield {name: server.repo_url(name) for name in REPOS}


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "cache")


def el8(tmp_path: Path, repos: dict[str, str], packages: list[str], modules: list[str] | None = None,
        prefer: str = "newest", extra: str = "") -> Path:
    path = manifest(tmp_path, repos, packages, prefer=prefer, media=("base",), os_=EL8, modules=modules)
    if extra:
        path.write_text(path.read_text() + extra)
    return path


def plan_cli(path: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bundler.cli", "plan", str(path), "--json", "--cache",
                           str(tmp_path / "c")], capture_output=True, text=True, timeout=120)


def test_two_streams_of_one_module_are_refused_like_dnf(tmp_path, repos):
    with pytest.raises(DnfError):
        dnf_enable_modules(repos, tmp_path / "root", ["db:1", "db:2"], releasever=8)
    path = el8(tmp_path, repos, ["dbserver"], ["db:1", "db:2"])
    proc = plan_cli(path, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    text = " ".join(proc.stderr.split())
    assert text.startswith(f"error: {path}: spec.modules: lists two streams of module 'db' (db:1 as "
                           "spec.modules[0] and db:2 as spec.modules[1])"), text
    assert "keep the stream the bundle needs and remove the other" in text


def test_a_stream_enables_the_stream_it_requires_like_dnf(tmp_path, repos, cache):
    closure = resolve_packages(load_manifest(el8(tmp_path, repos, ["appserver"], ["app:x"])), cache)
    dnf = dnf_resolve(repos, ["appserver"], 8, modules=["app:x"], best=True)
    assert {norm(p.nevra) for p in closure.packages} == set(dnf)
    assert "dbserver-2.0-1.module_el8.x86_64" in dnf  # db:2 (required by app:x), not the default db:1
    assert closure.host_streams() == ["app:x", "db:2"]


@pytest.mark.parametrize("packages, streams", [(["dbserver"], ["db:1"]), (["basetool"], [])])
def test_default_streams_are_recorded_only_when_the_bundle_ships_from_them(tmp_path, repos, cache, packages, streams):
    closure = resolve_packages(load_manifest(el8(tmp_path, repos, packages)), cache)
    assert closure.active_streams == {"db": "1"} and closure.host_streams() == streams


@pytest.mark.parametrize("modules, message", [
    (["app:x", "legacy:y"], "legacy:y requires module db (stream 1), but db:2 is enabled (app:x requires it)"),
    (["db:1", "app:x"], "app:x requires module db (stream 2), but db:1 is enabled (spec.modules)"),
    (["app:x", "db:1"], "lists db:1, but db:2 is enabled (app:x requires it)"),
])
def test_conflicting_module_requirements_are_refused_like_dnf(tmp_path, repos, cache, modules, message):
    with pytest.raises(DnfError):
        dnf_enable_modules(repos, tmp_path / "root", modules, releasever=8)
    with pytest.raises(ManifestError) as e:
        resolve_packages(load_manifest(el8(tmp_path, repos, ["appserver"], modules)), cache)
    assert message in str(e.value) and str(e.value).startswith(f"{tmp_path / 'bundle.yaml'}: spec.modules: ")


def test_newest_candidate_not_installable_is_refused_as_dnf_best(tmp_path, repos, cache):
    with pytest.raises(DnfError, match="best candidate"):
        dnf_resolve(repos, ["tool"], 8, best=True)
    with pytest.raises(ResolveError) as e:
        resolve_packages(load_manifest(el8(tmp_path, repos, ["tool"])), cache)
    msg = str(e.value)
    assert "the newest candidate for 'tool' is tool-2.0-1.el8.noarch, and it cannot be installed" in msg
    assert "tool-2.0 requires libmissing.so.3()(64bit), which no repo provides" in msg
    assert "spec.solver.best: false" in msg


def test_best_false_ships_the_older_version_loudly(tmp_path, repos, cache):
    path = el8(tmp_path, repos, ["tool"], extra="  solver: {best: false}\n")
    closure = resolve_packages(load_manifest(path), cache)
    assert {norm(p.nevra) for p in closure.packages} == set(dnf_resolve(repos, ["tool"], 8, best=False)) == {
        "tool-1.0-1.el8.noarch"}
    assert len(closure.warnings) == 1 and "ships the older tool-1.0-1.el8.noarch" in closure.warnings[0]
    proc = plan_cli(path, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "warning: spec.solver.best is false, so 'tool' ships the older tool-1.0-1.el8.noarch: the newest " \
           "candidate tool-2.0-1.el8.noarch cannot be installed" in proc.stderr
    assert json.loads(proc.stdout)["warnings"] == closure.warnings


@pytest.mark.parametrize("spec, hint", [
    ("toool", "no repo has a package matching 'toool' (searched: base, appstream). Did you mean 'tool'?"),
    ("apptol", "no repo has a package matching 'apptol' (searched: base, appstream). Did you mean 'apptool'?"),
    ("basetool-9.9", "no repo has a package matching 'basetool-9.9' (searched: base, appstream). basetool exists "
                     "in versions 1.0-1.el8."),
    ("legacyapp", "'legacyapp' matches no usable package: legacyapp-1.0-1.module_el8.noarch belongs to a module "
                  "stream that is not active (enable it in spec.modules)"),
])
def test_misspelled_package_gets_a_suggestion(tmp_path, repos, cache, spec, hint):
    with pytest.raises(ResolveError) as e:
        resolve_packages(load_manifest(el8(tmp_path, repos, [spec], ["app:x"])), cache)
    assert hint in str(e.value)


def test_bundle_records_and_carries_the_solved_streams(tmp_path, repos, cache):
    """apptool ships alone, yet the hosts must enable app:x and with it db:2: bundle.json lists both and the
    bundle's modules.yaml carries db:2, so dnf on a host (bundle + media only) enables app:x and installs."""
    m = load_manifest(el8(tmp_path, repos, ["apptool"], ["app:x"]))
    result = build(m, tmp_path / "out", cache, quiet=True, fmt="dir")
    bom = json.loads((result.path / "bundle.json").read_text())
    assert bom["modules"] == ["app:x", "db:2"] == bom["lock"]["modules"]
    assert [p["name"] for p in bom["packages"]] == ["apptool"]
    ok, out = dnf_install({"bundle": f"file://{result.path / 'repo'}/", "base": repos["base"]}, ["apptool"], 8,
                          modules=bom["modules"])
    assert ok, out
    # ...and the installer's plan for a host of this bundle enables exactly those streams
    ctx = make_ctx(Bundle.load(str(result.path)))
    cmds = [c.cmd for c in HostPrep().plan(ctx, ctx.first_cp, ctx.facts[ctx.first_cp.label])
            if " module enable " in getattr(c, "cmd", "")]
    assert len(cmds) == 1 and cmds[0].endswith(" module enable app:x db:2")
    # a locked build carries the same streams
    lock(m, cache)
    locked = build(m, tmp_path / "locked", cache, quiet=True, fmt="dir", locked=True)
    assert json.loads((locked.path / "bundle.json").read_text())["modules"] == ["app:x", "db:2"]


def test_a_context_built_against_the_enabled_or_default_stream_is_preferred(tmp_path):
    """Real AppStream streams come in several contexts, one per stream of what they require (perl-DBI for perl
    5.24, 5.26, 5.30): the one matching the stream already in use wins, as in dnf."""
    docs = [_stream_doc("perl", s, [], {}) for s in ("5.24", "5.26", "5.30")]
    docs += [_stream_doc("perl-DBI", "1.641", [], {"perl": [s]}) for s in ("5.24", "5.26", "5.30")]
    docs.append("---\ndocument: modulemd-defaults\nversion: 1\ndata:\n  module: perl\n  stream: \"5.26\"\n...\n")
    path = tmp_path / "modules.yaml"
    path.write_text("".join(docs))
    idx = parse_modules_yaml(path, "test", "appstream")
    assert idx.active(("perl-DBI:1.641",)) == {"perl-DBI": "1.641", "perl": "5.26"}
    assert idx.active(("perl:5.30", "perl-DBI:1.641")) == {"perl-DBI": "1.641", "perl": "5.30"}
    assert idx.active(("perl-DBI:1.641", "perl:5.30")) == {"perl-DBI": "1.641", "perl": "5.30"}
    with pytest.raises(ManifestError, match=r"'perl:5.99' is not in .* \(available: perl:5.24, perl:5.26, perl:5.30\)"):
        idx.active(("perl-DBI:1.641", "perl:5.99"))
