"""The resolved-plan cache (bundler.rpm.plancache), against the real test yum repos over HTTP on loopback: a warm
plan reads the closure instead of solving and gives the very same answer; any input that decides the answer misses;
a damaged entry is reported and replaced; `cache prune` removes entries; the warm CLI path loads neither requests nor
libsolv, and the repomd.xml check keeps the retry policy (and requests where requests' own handling is needed)."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bundler.build import lock, plan
from bundler.errors import FetchError
from bundler.fetch import smallget
from bundler.fetch.cache import Cache
from bundler.fetch.prune import prune
from bundler.manifest import load_manifest
from bundler.rpm import closure as closure_mod
from bundler.rpm import plancache
from tests.builder.test_rpm_engine import K8S, manifest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def solves(monkeypatch):
    """Manifests the solver ran for (a plan answered from the cache adds none)."""
    calls: list[tuple[str, ...]] = []
    real = closure_mod.resolve

    def counting(m, reader, metadata=None):  # noqa: ANN001, ANN202
        calls.append(tuple(m.packages))
        return real(m, reader, metadata)

    monkeypatch.setattr(closure_mod, "resolve", counting)
    return calls


def entries(cache: Cache) -> list[Path]:
    return sorted((cache.root / plancache.DIR).glob("*.json"))


CASES = [  # repos, packages, prefer, target os, spec.modules
    (("media", "extras"), K8S, "media", "el9", None),  # a file dependency that needs the file lists
    (("media", "extras"), K8S, "newest", "el9", None),
    (("media", "extras"), ["pairuser", "libpair"], "newest", "el9", None),  # foreign arches filtered
    (("media", "modular"), ["toolbox"], "media", "el8", None),  # a default stream, modules.yaml carried
    (("media", "modular"), ["toolbox"], "newest", "el8", ["container-tools:1.0"]),  # an enabled stream
]


def test_cached_plan_is_the_uncached_plan(tmp_path, yum_repos, solves):
    """For each case (policies, file lists, arches, modularity): the warm plan and lock read the entry (no
    solve) and equal, byte for byte, what a fresh cache computes."""
    for i, (repos, packages, prefer, os_, modules) in enumerate(CASES):
        m = load_manifest(manifest(tmp_path, yum_repos.urls(*repos), packages, prefer=prefer, os_=os_,
                                   modules=modules))
        cache = Cache(tmp_path / f"cache-{i}")
        solves.clear()
        cold = plan(m, cache)
        assert len(solves) == 1 and len(entries(cache)) == 1
        warm = plan(m, cache)
        _, warm_lock = lock(m, cache)
        assert len(solves) == 1, "the warm plan and lock ran the solver"
        fresh = Cache(tmp_path / f"fresh-{i}")
        assert json.dumps(warm, indent=2) == json.dumps(cold, indent=2) == json.dumps(plan(m, fresh), indent=2)
        _, fresh_lock = lock(m, Cache(tmp_path / f"fresh-lock-{i}"))
        assert warm_lock == fresh_lock
        assert cold["packages"] + cold["fromMedia"]
        assert bool(warm_lock["modulesYaml"]) == (repos[1] == "modular")


def test_every_input_that_decides_the_answer_misses(tmp_path, yum_repos_copy, solves):
    """A package name, prefer, the target, spec.solver, a repo's baseurl or onMedia, and a repo's repomd.xml (its
    checksum) each give another entry; the bundle's name and version, images and files do not."""
    urls = yum_repos_copy.urls("media", "extras")
    cache = Cache(tmp_path / "cache")

    def run(packages=K8S, **kw) -> None:  # noqa: ANN001
        plan(load_manifest(manifest(tmp_path, urls, packages, **kw)), cache)

    run()
    assert len(solves) == 1
    run()
    assert len(solves) == 1  # a hit
    text = manifest(tmp_path, urls, K8S).read_text()
    manifest(tmp_path, urls, K8S).write_text(text.replace("name: test, version: '1.0'", "name: other, version: '2'"))
    plan(load_manifest(tmp_path / "bundle.yaml"), cache)
    assert len(solves) == 1  # name and version take no part in the resolve

    run(K8S + ["libpair"])
    run(prefer="newest")
    run(os_="el8")
    run(media=())
    path = manifest(tmp_path, urls, K8S)
    path.write_text(path.read_text() + "  solver: {best: false}\n")
    plan(load_manifest(path), cache)
    assert len(solves) == 6 and len(entries(cache)) == 6

    repomd = yum_repos_copy.path("extras") / "repodata" / "repomd.xml"
    repomd.write_text(re.sub(r"<revision>[^<]*</revision>", "<revision>424242</revision>", repomd.read_text()))
    run()
    assert len(solves) == 7  # same packages, same primary.xml: the new repomd.xml alone misses
    run()
    assert len(solves) == 7


def test_damaged_entry_is_reported_ignored_and_rewritten(tmp_path, yum_repos, solves, caplog):
    m = load_manifest(manifest(tmp_path, yum_repos.urls("media", "extras"), K8S))
    cache = Cache(tmp_path / "cache")
    cold = plan(m, cache)
    [entry] = entries(cache)
    good = entry.read_bytes()
    for damage in (good[:-40], good.replace(b'"kubeadm"', b'"kubeadn"'), b"not json\n{}", b""):
        entry.write_bytes(damage)
        caplog.clear()
        with caplog.at_level("WARNING", logger="bundler"):
            assert plan(m, cache) == cold
        assert f"ignoring the damaged plan cache entry {entry}" in caplog.text
        assert entry.read_bytes() == good  # rewritten whole
    assert len(solves) == 5


def test_read_only_cache_reads_entries_and_writes_none(tmp_path, yum_repos, solves, monkeypatch):
    m = load_manifest(manifest(tmp_path, yum_repos.urls("media", "extras"), K8S))
    cache = Cache(tmp_path / "cache")
    cold = plan(m, cache)
    monkeypatch.setattr(Cache, "writable", property(lambda self: False))
    assert plan(m, cache) == cold and len(solves) == 1
    other = load_manifest(manifest(tmp_path, yum_repos.urls("media", "extras"), ["libpair"]))
    plan(other, cache)
    assert len(solves) == 2 and len(entries(cache)) == 1


def test_prune_removes_entries_but_not_under_a_running_build(tmp_path, yum_repos):
    m = load_manifest(manifest(tmp_path, yum_repos.urls("media", "extras"), K8S))
    cache = Cache(tmp_path / "cache")
    plan(m, cache)
    with cache.lease():
        prune(cache)
        assert len(entries(cache)) == 1
    prune(cache)
    assert not entries(cache)


def test_warm_cli_plan_loads_neither_requests_nor_libsolv_nor_pyyaml(tmp_path, yum_repos):
    """The warm path is one small request per repo on a plain socket, then the entry; the manifest comes parsed
    from the cache (manifest/parsed.py). `--help` loads none of the heavy modules either."""
    path = manifest(tmp_path, yum_repos.urls("media", "extras"), K8S)
    cache = tmp_path / "cache"
    probe = ("import json, sys\nfrom bundler.cli import main\n"
             "try:\n    main(sys.argv[1:], standalone_mode=False)\n"
             "finally:\n    print(json.dumps(sorted(m for m in ('requests', 'urllib3', 'solv', 'tqdm', 'rpmfile',"
             " 'yaml') if m in sys.modules)), file=sys.stderr)\n")

    def run() -> tuple[dict, list[str]]:
        r = subprocess.run([sys.executable, "-c", probe, "plan", str(path), "--json", "--cache", str(cache)],
                           capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
        return json.loads(r.stdout), json.loads(r.stderr.strip().splitlines()[-1])

    cold, loaded = run()
    assert "solv" in loaded
    r = subprocess.run([sys.executable, "-c", probe, "--help"], capture_output=True, text=True, cwd=ROOT,
                       timeout=60, check=True)
    assert json.loads(r.stderr.strip().splitlines()[-1]) == [] and "Usage:" in r.stdout  # `bundler --help` too
    yum_repos.server.reset_counts()
    warm, loaded = run()
    assert warm == cold and loaded == []
    assert sorted(yum_repos.server.counts()) == ["/extras/repodata/repomd.xml", "/media/repodata/repomd.xml"]


def test_repomd_check_keeps_the_retry_policy(tmp_path, yum_repos, monkeypatch):
    """A 503 is retried (one more request, as through requests), a 404 is the same error as before."""
    monkeypatch.setenv("AIRGAP_BUNDLER_BACKOFF", "0.01")
    m = load_manifest(manifest(tmp_path, yum_repos.urls("media", "extras"), K8S))
    cache = Cache(tmp_path / "cache")
    cold = plan(m, cache)
    md = "/extras/repodata/repomd.xml"
    yum_repos.server.fail(md, times=2)
    yum_repos.server.reset_counts()
    assert plan(m, cache) == cold
    assert yum_repos.server.count(md) == 3
    yum_repos.server.fail(md, times=None, status=404)
    with pytest.raises(FetchError, match=r"repo 'extras' \(http://127\.0\.0\.1:\d+/extras/\): http://.*/extras/"
                                         r"repodata/repomd\.xml answered HTTP 404\. Check the repo's baseurl"):
        plan(m, cache)
    yum_repos.server.clear_faults(md)


def test_proxy_or_netrc_leaves_the_repomd_check_to_requests(tmp_path, yum_repos, monkeypatch):
    """requests applies proxy variables and ~/.netrc; the small client does not, so it steps aside."""
    url = yum_repos.url("extras") + "repodata/repomd.xml"
    assert smallget.eligible(url) and not smallget.eligible("file:///x") and not smallget.eligible("ftp://h/x")
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".netrc").write_text("machine example.com login a password b\n")
    assert not smallget.eligible(url)
    (tmp_path / ".netrc").unlink()
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # requests goes direct for the test server; the plan still works
    assert not smallget.eligible(url)

    def refuse(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the small client was used with a proxy variable set")

    monkeypatch.setattr(smallget, "get_small", refuse)
    m = load_manifest(manifest(tmp_path, yum_repos.urls("media", "extras"), K8S))
    assert plan(m, Cache(tmp_path / "cache"))["packages"]


@pytest.mark.parametrize("fault", ["drop", "truncate"])
def test_repomd_check_retries_a_dropped_or_truncated_answer(tmp_path, yum_repos, monkeypatch, fault):
    monkeypatch.setenv("AIRGAP_BUNDLER_BACKOFF", "0.01")
    m = load_manifest(manifest(tmp_path, yum_repos.urls("media", "extras"), K8S))
    cache = Cache(tmp_path / "cache")
    cold = plan(m, cache)
    md = "/media/repodata/repomd.xml"
    getattr(yum_repos.server, fault)(md)
    yum_repos.server.reset_counts()
    assert plan(m, cache) == cold and yum_repos.server.count(md) == 2


class _Odd(BaseHTTPRequestHandler):
    """A real server on loopback that answers as the small client leaves to requests: chunked, or a redirect."""

    protocol_version = "HTTP/1.1"
    body = b""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path.startswith("/moved/"):
            self.send_response(302)
            self.send_header("Location", self.path[len("/moved"):])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(0, len(self.body), 500):
            part = self.body[i:i + 500]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args: object) -> None:
        pass


def test_redirect_and_chunked_answers_go_through_requests(tmp_path, yum_repos):
    from bundler.fetch.retry import RetryPolicy
    from bundler.manifest.model import Repo
    from bundler.rpm.repomd import RepoReader

    _Odd.body = (yum_repos.path("extras") / "repodata" / "repomd.xml").read_bytes()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Odd)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        for url in (f"{base}/extras/", f"{base}/moved/extras/"):
            with pytest.raises(smallget.Fallback):
                smallget.get_small(url + "repodata/repomd.xml", RetryPolicy(), 1 << 20)
            md = RepoReader(None, Cache(tmp_path / "cache"), {}).repomd(Repo("extras", url))
            assert md.digest == hashlib.sha256(_Odd.body).hexdigest() and "primary" in md.files
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_join_location_is_urljoin():
    from urllib.parse import urljoin

    from bundler.build import join_location

    bases = ["http://h/repo/", "http://h/repo", "http://h", "https://h:8443/a/b/?q=1#f", "file:///srv/repo/",
             "http://[::1]:80/x/./y/../"]
    locations = ["Packages/k/kubeadm-1.30.4-150500.1.1.x86_64.rpm", "a.rpm", "Packages/../b.rpm", "./c.rpm",
                 "../../d.rpm", "x/y/z/e+f~g^h-1:2.rpm", "Packages/%41.rpm", "Packages/a b.rpm", "Packages/a\tb.rpm",
                 "/abs/f.rpm", "//other/f.rpm", "http://elsewhere/f.rpm", "Packages/f.rpm?x=1", "Packages/f#x",
                 "Packages/f;p", "Packages/.", "Packages/..", "Packages/", "", "./", "dir\\f.rpm", "é/ü.rpm"]
    for b in bases:
        for loc in locations:
            assert join_location(b, loc) == urljoin(b, loc), (b, loc)


def test_json_output_is_json_dumps_indent_2(tmp_path, yum_repos):
    from bundler import jsonout

    data = plan(load_manifest(manifest(tmp_path, yum_repos.urls("media", "extras"), K8S)), Cache(tmp_path / "c"))
    odd = {"a": [], "b": {}, "c": [[], {}, [1, [2, {"x": None}]]], "d": 1.5, "e": float("inf"), "f": True,
           "g": "é\n\"\\\u2028", 3: "int key", "h": {1: {"k": [1.25]}}, "i": (1, "t"), "j": -0, "k": 10**30,
           "l": {"f": 1e-300, "n": float("nan"), "s": "x", "b": False, "z": None}, "m": [float("-inf"), 2, "\x00"]}
    for obj in (data, odd, [], {}, "s", 1, None, [odd, [odd]], {"n": {"m": odd}}):
        assert jsonout.dumps(obj) == json.dumps(obj, indent=2)


def test_warm_build_uses_the_entry_and_writes_the_same_bundle(tmp_path, yum_repos, solves):
    from bundler.build import build

    m = load_manifest(manifest(tmp_path, yum_repos.urls("media", "extras"), K8S))
    cache = Cache(tmp_path / "cache")
    first = build(m, tmp_path / "out1", cache, quiet=True, fmt="dir")
    second = build(m, tmp_path / "out2", cache, quiet=True, fmt="dir")
    assert len(solves) == 1
    for name in ("bundle.json", "SHA256SUMS"):
        assert (first.path / name).read_bytes() == (second.path / name).read_bytes()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_https_repomd_check_trusts_what_requests_trusts(tmp_path, yum_repos, monkeypatch):
    """A real TLS server on loopback with a throwaway CA: trusted through REQUESTS_CA_BUNDLE the small client
    fetches repomd.xml itself; untrusted it steps aside and requests gives its usual TLS error, not retried."""
    from bundler.fetch.retry import RetryPolicy
    from bundler.manifest.model import Repo
    from bundler.rpm.repomd import RepoReader
    from tests.builder.test_manifest_registries import _make_ca_and_cert

    ca, cert, key = _make_ca_and_cert(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(yum_repos.root)))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/extras/"
        want = (yum_repos.path("extras") / "repodata" / "repomd.xml").read_bytes()
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
        assert smallget.eligible(url)
        assert smallget.get_small(url + "repodata/repomd.xml", RetryPolicy(), 1 << 20) == (200, want)
        assert RepoReader(None, Cache(tmp_path / "c1"), {}).repomd(Repo("extras", url)).digest == \
            hashlib.sha256(want).hexdigest()
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        with pytest.raises(smallget.Fallback):
            smallget.get_small(url + "repodata/repomd.xml", RetryPolicy(), 1 << 20)
        with pytest.raises(FetchError, match=r"TLS error .*This is a TLS setting, not a network blip"):
            RepoReader(None, Cache(tmp_path / "c2"), {}).repomd(Repo("extras", url))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_concurrent_plans_on_one_cache_agree_and_leave_one_whole_entry(tmp_path, yum_repos):
    """Three `bundler plan` processes at once on an empty cache: each solves (or reads a whole entry), all print
    the same plan, and one entry remains, with no temporary file beside it."""
    path = manifest(tmp_path, yum_repos.urls("media", "extras"), K8S)
    cmd = [sys.executable, "-m", "bundler.cli", "plan", str(path), "--json", "--cache", str(tmp_path / "cache")]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in outs]
    assert len({out for out, _ in outs}) == 1
    plans = tmp_path / "cache" / plancache.DIR
    assert len(list(plans.glob("*.json"))) == 1 and not list(plans.glob(".*"))
    assert plancache.load(next(plans.glob("*.json"))) is not None
