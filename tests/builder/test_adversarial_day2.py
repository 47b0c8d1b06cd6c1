"""Adversarial inputs for the day-2 builder commands: `bundler build --delta-from` (site-state JSON with huge
numbers, wrong types, path traversal, duplicate digests, 50 MB, deep nesting, a FIFO, a foreign target),
`bundler push --credentials` (empty, binary, a Docker config.json without auths or with auths of the wrong shape,
a FIFO) and `bundler sbom` (not a bundle, a FIFO, an output that cannot be written), then a seeded fuzzer over
the state JSON. The rule: a BundlerError (one `error:` paragraph, exit 1 or 2), never a traceback, never a hang
(the CLI cases that could block run in a subprocess with a timeout)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bundler.bundle.delta import Base, check_target, load_base
from bundler.cli import main
from bundler.errors import BundlerError
from bundler.registry.push import read_credentials_file
from tests import jsonfuzz

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "manifests" / "rocky9-k8s-1.30-containerd-calico.yaml"  # el9/x86_64; loads offline
SEED = 20261201
FUZZ_CASES = 6000
FUZZ_SECONDS = 10.0
HANG_SECONDS = 2.0
H = "ab" * 32


def state(**over: Any) -> dict:
    doc = {"stateVersion": 1, "target": {"os": "el9", "arch": "x86_64"},
           "bundles": [{"name": "k8s", "version": "1.0.0", "sha256": H}],
           "rpms": [{"path": "opt/airgap/repo/Packages/a.rpm", "sha256": H}],
           "blobs": [{"digest": "sha256:" + "cd" * 32}], "files": [{"path": "files/helm", "sha256": "ef" * 32}],
           "problems": []}
    doc.update(over)
    return doc


def _write(tmp_path: Path, doc: Any, name: str = "state.json") -> Path:
    p = tmp_path / name
    p.write_bytes(doc if isinstance(doc, bytes) else (doc if isinstance(doc, str) else json.dumps(doc)).encode(
        "utf-8", "surrogateescape"))
    return p


def _refused(fn: Any, *words: str) -> str:
    with pytest.raises(BundlerError) as e:
        fn()
    text = str(e.value)
    for w in words:
        assert w in text, (w, text)
    return text


# -- --delta-from: the site state ----------------------------------------------------------------------------------
BAD_STATES: dict[str, Any] = {
    "empty": b"", "truncated": json.dumps(state())[:40], "a-list": "[1]", "binary-brace": b"{\xff\xfe\x00",
    "no-version": state(stateVersion=None), "version-2": state(stateVersion=2),
    "version-huge": state(stateVersion=10**30),
    "version-string": state(stateVersion="1"), "rpms-a-dict": state(rpms={"a": H}), "rpms-a-number": state(rpms=5),
    "rpm-without-sha": state(rpms=[{"path": "x"}]), "rpm-sha-int": state(rpms=[{"sha256": 10**80}]),
    "rpm-sha-short": state(rpms=[{"sha256": "ab"}]), "rpm-a-string": state(rpms=["x"]),
    "blob-digest-md5": state(blobs=[{"digest": "md5:" + "0" * 32}]),
    "blob-digest-null": state(blobs=[{"digest": None}]),
    "files-list-of-lists": state(files=[[H]]), "bundles-a-number": state(bundles=5),
    "bundles-a-string": state(bundles="k8s"), "bundles-of-strings": state(bundles=["k8s"]),
    "target-a-string": state(target="el9"), "target-a-list": state(target=["el9"]),
    "target-other-os": state(target={"os": "el7", "arch": "x86_64"}),
    "deep-nesting": '{"stateVersion": 1, "rpms": ' + "[" * 100000 + "]" * 100000 + "}",
    "nan": '{"stateVersion": NaN}', "infinity-version": '{"stateVersion": Infinity}',
    "huge-int-literal": '{"stateVersion": 1' + "0" * 5000 + "}",
}


@pytest.mark.parametrize("name", sorted(BAD_STATES))
def test_a_bad_state_is_one_error_naming_it(tmp_path: Path, name: str) -> None:
    p = _write(tmp_path, BAD_STATES[name])
    _refused(lambda: check_target(load_base(p), "el9", "x86_64"), f"--delta-from {p}", "export-state")


def test_accepted_states_ignore_paths_and_count_digests_once(tmp_path: Path) -> None:
    """Paths in the state are never used (only digests): traversal in them changes nothing; duplicates and
    upper-case or prefixed digests count once; huge extra numbers are ignored."""
    doc = state(rpms=[{"path": "../../../../etc/shadow", "sha256": H}, {"path": "/abs", "sha256": H.upper()},
                      {"path": "x", "sha256": "sha256:" + H}] * 1000,
                blobs=[{"digest": "sha256:" + H}] * 500, extra=10**300, problems=[1e308])
    base = load_base(_write(tmp_path, doc))
    assert base.rpms == {H} and base.blobs == {H} and base.files == {"ef" * 32}
    check_target(base, "el9", "x86_64")


def test_a_50_mb_state_loads_in_bounded_time(tmp_path: Path) -> None:
    n = 400_000  # ~50 MB of rpms[] entries, unique digests
    rpms = ",".join(f'{{"path": "opt/airgap/repo/Packages/p{i:07d}.rpm", "sha256": "{i:064x}"}}' for i in range(n))
    p = _write(tmp_path, '{"stateVersion": 1, "rpms": [' + rpms + "]}")
    assert p.stat().st_size > 50e6
    t = time.monotonic()
    base = load_base(p)
    assert len(base.rpms) == n and time.monotonic() - t < 30


def test_a_directory_that_is_no_bundle(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "state.json").write_text(json.dumps(state()))
    _refused(lambda: load_base(tmp_path / "d"), "--delta-from")


def test_a_base_bundle_whose_bundle_json_is_not_an_object(tmp_path: Path) -> None:
    """A base directory that passes its own SHA256SUMS check but whose bundle.json is a list."""
    import hashlib
    d = tmp_path / "base"
    d.mkdir()
    (d / "bundle.json").write_text("[1, 2]")
    digest = hashlib.sha256(b"[1, 2]").hexdigest()
    (d / "SHA256SUMS").write_text(f"{digest}  bundle.json\n")
    _refused(lambda: load_base(d), "--delta-from")


def _cli(args: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        return subprocess.run([sys.executable, "-m", "bundler.cli"] + args, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.fail("hangs: bundler " + " ".join(args))


def _one_error(r: subprocess.CompletedProcess | Any, code: int | tuple = (1, 2)) -> None:
    out = (r.stdout or "") + (r.stderr or "")
    assert r.returncode in ((code,) if isinstance(code, int) else code), out
    assert "Traceback" not in out and r.stderr.lower().count("error:") == 1, out


def test_build_delta_from_a_fifo_or_a_bad_state_fails_before_any_download(tmp_path: Path) -> None:
    fifo = tmp_path / "state.fifo"
    os.mkfifo(fifo)
    for src in (fifo, _write(tmp_path, state(target="el9"), "t.json"), _write(tmp_path, BAD_STATES["deep-nesting"],
                                                                                  "deep.json"),
                _write(tmp_path, state(target={"os": "el7", "arch": "x86_64"}), "el7.json")):
        r = _cli(["build", str(MANIFEST), "--delta-from", str(src), "-o", str(tmp_path / "out"), "--cache",
                  str(tmp_path / "cache"), "-q"])
        _one_error(r)
        assert "--delta-from" in r.stderr and not (tmp_path / "out").exists()


# -- bundler push --credentials ----------------------------------------------------------------------------------
CREDENTIALS: dict[str, bytes] = {
    "empty": b"", "blank": b"\n\n", "binary": bytes(range(256)) * 4, "no-colon": b"user\n", "two-lines": b"a:b\nc:d\n",
    "config-no-auths": b'{"credsStore": ""}', "config-empty": b"{}", "config-auths-list": b'{"auths": []}',
    "config-auths-str": b'{"auths": "x"}', "config-entry-str": b'{"auths": {"127.0.0.1:1": "x"}}',
    "config-entry-list": b'{"auths": {"127.0.0.1:1": [1]}}',
    "config-auth-not-base64": b'{"auths": {"127.0.0.1:1": {"auth": "!!!"}}}',
    "config-auth-int": b'{"auths": {"127.0.0.1:1": {"auth": 5}}}',
    "config-auth-not-utf8": b'{"auths": {"127.0.0.1:1": {"auth": "/w=="}}}',
    "config-helpers-list": b'{"credHelpers": ["x"]}', "config-truncated": b'{"auths": {"127.0.0.1:1": {"au',
    "config-nested": b'{"a": ' + b"[" * 100000 + b"]" * 100000 + b"}", "config-a-list": b"[]",
    "utf16": "user:pass".encode("utf-16"),
}


@pytest.mark.parametrize("name", sorted(CREDENTIALS))
def test_push_credentials_files(tmp_path: Path, name: str) -> None:
    p = tmp_path / "creds"
    p.write_bytes(CREDENTIALS[name])
    try:
        creds = read_credentials_file(p, "127.0.0.1:1")
    except BundlerError as e:
        assert str(p) in str(e)
        return
    assert creds.username or creds.password  # accepted: it named a user


def test_push_with_a_fifo_or_directory_as_credentials_never_blocks(tmp_path: Path) -> None:
    fifo = tmp_path / "creds.fifo"
    os.mkfifo(fifo)
    (tmp_path / "bundle").mkdir()
    for creds in (fifo, tmp_path, tmp_path / "missing"):
        r = _cli(["push", str(tmp_path / "bundle"), "--to", "127.0.0.1:1", "--credentials", str(creds), "--dry-run"])
        _one_error(r, 2)
        assert "--credentials" in r.stderr


def test_push_with_bad_ca_and_bundle(tmp_path: Path) -> None:
    fifo = tmp_path / "ca.fifo"
    os.mkfifo(fifo)
    (tmp_path / "bin.pem").write_bytes(b"\xff\xfe" * 100)
    for args in (["--ca", str(fifo)], ["--ca", str(tmp_path / "bin.pem")], ["--ca", str(tmp_path)]):
        r = _cli(["push", str(tmp_path), "--to", "127.0.0.1:1", "--dry-run"] + args)
        _one_error(r, 2)
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"\x1f\x8b not really gzip")
    for bundle in (garbage, tmp_path / "missing.tar"):
        r = _cli(["push", str(bundle), "--to", "127.0.0.1:1", "--dry-run"])
        _one_error(r)


# -- bundler sbom -----------------------------------------------------------------------------------------------------
def test_sbom_of_things_that_are_not_bundles(tmp_path: Path) -> None:
    fifo = tmp_path / "b.fifo"
    os.mkfifo(fifo)
    (tmp_path / "empty").mkdir()
    (tmp_path / "text.tar.gz").write_text("not a tarball")
    listed = tmp_path / "listed"
    listed.mkdir()
    (listed / "bundle.json").write_text("[1]")
    for b in (fifo, tmp_path / "empty", tmp_path / "text.tar.gz", listed, tmp_path / "missing"):
        r = _cli(["sbom", str(b)])
        _one_error(r)


def test_sbom_output_that_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "notabundle").mkdir()
    for args in (["sbom", str(tmp_path / "nope"), "-o", str(tmp_path)],
                 ["sbom", str(tmp_path / "notabundle"), "-o", str(tmp_path / "missing" / "x.json")]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code in (1, 2) and (r.exception is None or isinstance(r.exception, SystemExit)), r.output
        assert r.stderr.lower().count("error:") == 1 and not (tmp_path / "missing").exists()


# -- a seeded fuzzer over the state JSON -------------------------------------------------------------------------------
ODD: list[Any] = [None, True, 0, -1, 2**63, 10**400, 1e308, "", "x" * 10000, "../../../etc/shadow", "\x00", [],
                  [None], {}, {"": None}, [[[[[]]]]], "sha256:" + "0" * 64, "SHA256:" + "A" * 64, H]


def mutate(rng: random.Random, doc: Any, depth: int = 0) -> Any:
    return jsonfuzz.mutate(rng, doc, ODD, 50, depth)


CONFIG = {"auths": {"127.0.0.1:1": {"auth": "dXNlcjpwYXNz", "username": "u", "password": "p"}},
          "credHelpers": {"other.example": "none"}}


def _fuzz_credentials(rng: random.Random, tmp_path: Path) -> tuple[str, Any]:
    doc = mutate(rng, CONFIG)
    text = json.dumps(doc) if isinstance(doc, dict) else "{" + json.dumps(doc)
    p = _write(tmp_path, text, "config.json")
    return text, lambda: read_credentials_file(p, "127.0.0.1:1")


def test_fuzz_the_credentials_json(tmp_path: Path) -> None:
    """bundler push --credentials CONFIG.json mutated (seeded, bounded): a BundlerError or credentials."""
    rng = random.Random(SEED)
    counts, failures, start = {"cases": 0, "clean": 0, "accepted": 0}, [], time.monotonic()
    while counts["cases"] < 2000 and time.monotonic() - start < FUZZ_SECONDS:
        text, run = _fuzz_credentials(rng, tmp_path)
        counts["cases"] += 1
        try:
            run()
            counts["accepted"] += 1
        except BundlerError:
            counts["clean"] += 1
        except Exception:  # noqa: BLE001
            failures.append((text[:200], traceback.format_exc().splitlines()[-1]))
    print(f"\ncredentials JSON fuzz (seed {SEED}): {counts['cases']} cases, {counts['clean']} clean refusals, "
          f"{counts['accepted']} accepted, {len(failures)} tracebacks, 0 hangs")
    assert failures == [], "\n".join(f"{t!r} -> {why}" for t, why in failures[:10])


def test_fuzz_the_state_json(tmp_path: Path) -> None:
    """Seeded, bounded in count and time. Prints cases / clean refusals / accepted / tracebacks / hangs, as the
    manifest fuzzer does; asserts no traceback and no hang. An accepted state is checked to hold only digests."""
    rng = random.Random(SEED)
    counts = {"cases": 0, "clean": 0, "accepted": 0, "tracebacks": 0, "hangs": 0}
    failures = []
    start = time.monotonic()
    while counts["cases"] < FUZZ_CASES and time.monotonic() - start < FUZZ_SECONDS:
        doc = mutate(rng, state())
        text = json.dumps(doc) if rng.random() < 0.9 else json.dumps(doc)[:rng.randint(0, 200)]
        p = _write(tmp_path, text)
        counts["cases"] += 1
        t = time.monotonic()
        try:
            base = load_base(p)
            check_target(base, "el9", "x86_64")
        except BundlerError as e:
            counts["clean"] += 1
            if str(p) not in str(e):
                failures.append((text[:200], "error does not name the file: " + str(e)[:200]))
        except Exception:  # noqa: BLE001 - what the fuzzer looks for
            counts["tracebacks"] += 1
            failures.append((text[:200], traceback.format_exc().splitlines()[-1]))
        else:
            counts["accepted"] += 1
            assert isinstance(base, Base)
            assert all(len(d) == 64 for d in base.rpms | base.blobs | base.files)
        if time.monotonic() - t > HANG_SECONDS:
            counts["hangs"] += 1
            failures.append((text[:200], f"took {time.monotonic() - t:.1f} s"))
    print(f"\nstate JSON fuzz (seed {SEED}): {counts['cases']} cases, {counts['clean']} clean refusals, "
          f"{counts['accepted']} accepted, {counts['tracebacks']} tracebacks, {counts['hangs']} hangs, "
          f"{time.monotonic() - start:.1f} s")
    assert counts["cases"] >= 100
    assert failures == [], "\n".join(f"{t!r} -> {why}" for t, why in failures[:10])


SBOM_BOMS = {"a-list": "[1]", "packages-a-number": '{"schemaVersion": 1, "packages": 5}',
             "image-ref-a-number": '{"schemaVersion": 1, "images": [{"ref": 5}]}',
             "image-a-number": '{"schemaVersion": 1, "images": [5]}', "version-a-word": '{"schemaVersion": "x"}',
             "target-a-string": '{"schemaVersion": 1, "target": "el9"}',
             "deep": "[" * 100000 + "]" * 100000}


@pytest.mark.parametrize("form", ["dir", "tar.gz"])
@pytest.mark.parametrize("name", sorted(SBOM_BOMS))
def test_sbom_of_a_bundle_json_of_the_wrong_shape(tmp_path: Path, name: str, form: str) -> None:
    """A bundle whose bundle.json matches its SHA256SUMS but has sections of the wrong shape: one error."""
    import hashlib
    import tarfile
    top = tmp_path / "b"
    top.mkdir()
    data = SBOM_BOMS[name].encode()
    (top / "bundle.json").write_bytes(data)
    (top / "SHA256SUMS").write_text(f"{hashlib.sha256(data).hexdigest()}  bundle.json\n")
    target = top
    if form == "tar.gz":
        target = tmp_path / "b.tar.gz"
        with tarfile.open(target, "w:gz") as tar:
            tar.add(top, arcname="b")
    r = CliRunner().invoke(main, ["sbom", str(target)])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (r.output, r.exception)
    assert r.stderr.count("error:") == 1


INDEXES = ["[1]", '{"manifests": 5}', '{"manifests": [5]}', '{"manifests": [{"digest": 5}]}',
           '{"manifests": [{"digest": "sha256:%s", "annotations": "x"}]}' % ("a" * 64), "garbage",
           "[" * 100000 + "]" * 100000]


@pytest.mark.parametrize("index", INDEXES, ids=range(len(INDEXES)))
def test_push_with_a_hostile_image_index(tmp_path: Path, index: str) -> None:
    (tmp_path / "b" / "images").mkdir(parents=True)
    (tmp_path / "b" / "images" / "index.json").write_text(index)
    (tmp_path / "b" / "bundle.json").write_text('{"schemaVersion": 1, "runtime": 5}')
    r = CliRunner().invoke(main, ["push", str(tmp_path / "b"), "--to", "127.0.0.1:1", "--dry-run"])
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), (r.output, r.exception)
    assert r.stderr.count("error:") == 1 and "index.json" in r.stderr


def test_push_refuses_contradictory_trust_options(tmp_path: Path) -> None:
    """--ca with --insecure: one of them would be silently ignored; refused before anything is read or sent."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    r = CliRunner().invoke(main, ["push", str(tmp_path), "--to", "127.0.0.1:1", "--ca", str(ca), "--insecure",
                                  "--dry-run"])
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), (r.output, r.exception)
    assert r.stderr.count("error:") == 1 and "contradict" in r.stderr
