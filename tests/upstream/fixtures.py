"""pytest fixtures for the test upstream (loaded by tests/conftest.py via pytest_plugins).

Session scope: the repos are built once per session, and only when the definitions changed since
the last run (the build is cached under pytest's cache dir, `.pytest_cache/d/airgap-yumrepos/<hash>`,
or under $AIRGAP_TEST_UPSTREAM_CACHE). One HTTP server serves them for the whole session; the
function-scoped fixtures reset its counters and faults around every test.

    yum_upstream          Upstream: the built tree (read-only!)
    yum_server_session    RepoHTTPServer over it (session)
    yum_server            the same server, counters/faults reset before and after the test
    yum_repos             YumRepos: urls + paths helper around yum_upstream/yum_server
    yum_repos_copy        YumRepos over a private copy in tmp_path with its own server (mutable)
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .http import RepoHTTPServer
from .stack import Stack, add_binaries, build_site, k8s_images
from .yumrepos import REPOS, PkgDef, Upstream, build_upstream_cached, copy_upstream, repo_dirname

_BUILD_STATS: dict[str, float | bool] = {}


@dataclass
class YumRepos:
    """The built repos together with the server that serves them."""

    upstream: Upstream
    server: RepoHTTPServer

    @property
    def root(self) -> Path:
        return self.upstream.root

    def url(self, repo: str, compression: str = "gz") -> str:
        """Base URL of a repo (trailing slash), e.g. url("extras", "zstd")."""
        return self.server.repo_url(repo_dirname(repo, compression))

    def urls(self, *repos: str, compression: str = "gz") -> dict[str, str]:
        """{repo id: URL} for dnf_resolve/dnf_install and manifests; ids are the plain repo names."""
        return {r: self.url(r, compression) for r in (repos or tuple(REPOS))}

    def path(self, repo: str, compression: str = "gz") -> Path:
        return self.upstream.path(repo, compression)

    def rpm_url(self, repo: str, p: PkgDef | str) -> str:
        p = self.upstream.find(repo, p) if isinstance(p, str) else p
        return self.url(repo) + self.upstream.rpm_relpath(repo, p)

    def rpm_urlpath(self, repo: str, p: PkgDef | str, compression: str = "gz") -> str:
        """URL path (as the server counts it) of a package's RPM."""
        p = self.upstream.find(repo, p) if isinstance(p, str) else p
        return f"/{repo_dirname(repo, compression)}/{self.upstream.rpm_relpath(repo, p)}"


def _cache_root(config: pytest.Config) -> Path:
    env = os.environ.get("AIRGAP_TEST_UPSTREAM_CACHE")
    if env:
        return Path(env)
    cache = getattr(config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("airgap-yumrepos"))
    return Path("/tmp/airgap-yumrepos-cache")


def _check_tools() -> None:
    missing = [t for t in ("rpmbuild", "createrepo_c", "modifyrepo_c", "dnf", "rpm") if not shutil.which(t)
               and not (Path(sys.executable).parent / t).exists()]
    if missing:
        pytest.fail(f"test upstream needs {missing}: apt-get install -y rpm createrepo-c dnf dnf-plugins-core",
                    pytrace=False)


@pytest.fixture(scope="session")
def yum_upstream(request: pytest.FixtureRequest) -> Upstream:
    _check_tools()
    up = build_upstream_cached(_cache_root(request.config))
    _BUILD_STATS.update(seconds=up.build_seconds, cached=up.cached)
    return up


@pytest.fixture(scope="session")
def yum_server_session(yum_upstream: Upstream) -> Iterator[RepoHTTPServer]:
    with RepoHTTPServer(yum_upstream.root) as server:
        yield server


@pytest.fixture
def yum_server(yum_server_session: RepoHTTPServer) -> Iterator[RepoHTTPServer]:
    yum_server_session.reset()
    yield yum_server_session
    yum_server_session.reset()


@pytest.fixture
def yum_repos(yum_upstream: Upstream, yum_server: RepoHTTPServer) -> YumRepos:
    return YumRepos(yum_upstream, yum_server)


@pytest.fixture
def yum_repos_copy(yum_upstream: Upstream, tmp_path: Path) -> Iterator[YumRepos]:
    up = copy_upstream(yum_upstream, tmp_path / "upstream")
    with RepoHTTPServer(up.root) as server:
        yield YumRepos(up, server)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _BUILD_STATS:
        how = "reused from cache" if _BUILD_STATS.get("cached") else f"built in {_BUILD_STATS['seconds']:.1f} s"
        terminalreporter.write_line(f"test upstream yum repos: {how}")


@pytest.fixture(scope="session")
def stack_session(yum_server_session: RepoHTTPServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """yum repos + registry (behind a counting proxy) + download site, with the images of k8s 1.30.4."""
    from tests.images.helpers import Proxy, Registry

    work = tmp_path_factory.mktemp("stack")
    site = build_site(work / "site")
    add_binaries(site)
    reg = Registry(work / "registry")
    proxy = Proxy(reg.host)
    try:
        with RepoHTTPServer(site.root) as server:
            site.server = server
            repo_urls = {r: yum_server_session.repo_url(repo_dirname(r)) for r in ("media", "extras")}
            st = Stack(repo_urls, reg, site, proxy=proxy, yum=yum_server_session)
            for ref in dict.fromkeys(k8s_images("1.30.4", "calico") + k8s_images("1.30.4", "flannel")):
                st.push(ref)
            yield st
    finally:
        proxy.stop()
        reg.stop()


@pytest.fixture
def stack(stack_session: Stack) -> Stack:
    """The session stack with request logs cleared, so a test can count what it fetched."""
    stack_session.site.server.reset()
    stack_session.proxy.seen.clear()
    stack_session.proxy.counts.clear()
    return stack_session
