"""Hostile manifests: a fixed-seed fuzzer over the reference manifests.

Every mutated manifest must either load or fail with a ManifestError (exit 2) whose message is one paragraph
naming the file; never a traceback, never a hang, never unbounded memory. The loader runs in-process in one
worker subprocess (memory-capped, each case under a SIGALRM time bound) so a regression cannot take the test
machine down; a sample of the failing cases also goes through the real CLI (`plan`, `lock`, `build`,
`images`), which must exit 2 before any network access.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SEED = 20261201
CASES = 360
CASE_SECONDS = 5.0  # a case slower than this is a hang (the slowest real case, 1 MiB of YAML, takes ~1 s)
CLI_SAMPLE = 8

SPECIAL_VALUES: list[Any] = [
    None, True, False, 0, -1, 1.30, 1.5, 10**30, 1e308, float("inf"), "", " ", "x" * 5000, [], {}, [[[]]],
    {"a": {"b": {"c": 1}}}, ["a", 1, None], "\u202e\u0000evil", "ünïcødé-名前", "\U0001f600", "../../etc/passwd",
    "1.30", "el9", "yes", "0x1F", "1_000",
]
TAGGED = [
    "!!python/object/apply:os.system ['true']", "!!python/name:os.system", "!foo bar", "!!binary aGVsbG8=",
    "!!set {a, b}", "!!omap [a: 1]", "!!timestamp 2024-01-01", "!!int notanint", "!!float 1.x", "!<tag:x> y",
    "!!str 1.30", "!!merge x",
]
# spec.kubernetes.upgradeThrough values for the "version" mutation: known-good chains (for 1.30.4), known-bad ones
# (descending, two in a minor, a gap, the target's minor, newer than the target) and hostile shapes
UPGRADE_THROUGH = ["[]", "[1.29.8]", "[1.28.1, 1.29.8]", "[1.29.8, 1.28.1]", "[1.29.1, 1.29.8]", "[1.27.1, 1.29.8]",
                   "[1.30.1]", "[1.31.0]", "[1.29]", "1.29.8", "{a: 1}", "[[1.29.8]]", "[null]", "[2.29.0]",
                   "[" + ", ".join(f"1.{m}.0" for m in range(0, 30)) + "]"]
BOMB = ("bomb:\n  a0: &a0 ['lol', 'lol', 'lol', 'lol', 'lol', 'lol', 'lol', 'lol', 'lol', 'lol']\n"
        + "".join(f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10)))


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _set(doc: Any, path: tuple, value: Any, delete: bool = False) -> None:
    for p in path[:-1]:
        doc = doc[p]
    if delete:
        del doc[path[-1]]
    else:
        doc[path[-1]] = value


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=10_000)


def _inject(text: str, rng: random.Random, snippet: str) -> str:
    """Replace the value of one `key: value` line by snippet (flow style keeps indentation valid)."""
    lines = text.splitlines()
    idx = [i for i, ln in enumerate(lines) if ": " in ln and not ln.lstrip().startswith("#")]
    if not idx:
        return text + "\n" + snippet
    i = rng.choice(idx)
    key = lines[i].split(": ", 1)[0]
    lines[i] = f"{key}: {snippet}"
    return "\n".join(lines) + "\n"


def make_case(rng: random.Random, ref: Path, case_dir: Path, n: int) -> tuple[Path, str, list[str]]:
    """Write one mutated manifest into case_dir; returns (file, mutation name, paths an error may name)."""
    case_dir.mkdir(parents=True)
    shutil.copytree(ref.parent / "repos", case_dir / "repos")
    text = ref.read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    target = case_dir / ref.name
    names = [str(case_dir)]
    kind = rng.choice(["swap", "swap", "delete", "deep", "bomb", "tag", "bytes", "unicode", "huge", "include",
                       "include", "toplevel", "truncate", "number", "version"])
    data: bytes | None = None
    name_suffix = ""
    if kind == "swap":
        path = rng.choice(_paths(doc))
        _set(doc, path, rng.choice(SPECIAL_VALUES))
        text = _dump(doc)
    elif kind == "delete":
        path = rng.choice(_paths(doc))
        _set(doc, path, None, delete=True)
        text = _dump(doc)
    elif kind == "deep":
        depth = rng.choice([63, 65, 200, 1000, 5000, 50_000])
        snippet = ("[" * depth + "]" * depth) if rng.random() < 0.5 else ("{a: " * depth + "b" + "}" * depth)
        text = _inject(text, rng, snippet)
    elif kind == "bomb":
        text = text + ("\n" if rng.random() < 0.5 else "\n# block\n") + BOMB if rng.random() < 0.5 else (
            "x: &a [*a]\n" + text if rng.random() < 0.5 else BOMB + "apiVersion: bundler/v1\n")
    elif kind == "tag":
        text = _inject(text, rng, rng.choice(TAGGED))
    elif kind == "bytes":
        raw = bytearray(text.encode())
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(len(raw) + 1)
            raw[pos:pos] = bytes([rng.choice([0, 0xFF, 0xC3, 0x80, 0x07, 0x1B, 0x0C, 0x85, rng.randrange(256)])])
        data = bytes(raw)
    elif kind == "unicode":
        junk = rng.choice(["\u2028", "\u202e", "\ufeff", "名前", "\U0001f600", "\\ud800", "\\x00", "\\u0007", "é"])
        text = _inject(text, rng, f'"{junk * rng.randint(1, 50)}"')
    elif kind == "huge":
        size = rng.choice([100_000, 400_000, (1 << 20) - 4096, (1 << 20) + 10, 5 << 20])
        if size > (2 << 20):
            data = text.encode() + b"#" * size  # over the limit: refused from its size alone
        else:
            text = _inject(text, rng, "'" + "A" * size + "'")
    elif kind == "include":
        trick = rng.choice(["/dev/zero", "fifo", "dir", "nul", "missing", "self", "loop", "deep", "fanout", "binary",
                            "meta", "symlink-loop", "/proc/self/mem", "/proc/self/environ", "/dev/stdin",
                            "absolute-ok", "list-of-int"])
        inc: Any = trick
        if trick == "fifo":
            os.mkfifo(case_dir / "fifo.yaml")
            inc = "fifo.yaml"
        elif trick == "symlink-loop":
            (case_dir / "sl.yaml").symlink_to("sl.yaml")
            inc = "sl.yaml"
        elif trick == "dir":
            inc = "repos"
        elif trick == "nul":
            inc = "repos/rocky9.yaml\x00/x"
        elif trick == "self":
            inc = ref.name
        elif trick == "loop":
            (case_dir / "a.yaml").write_text("include: b.yaml\nspec: {}\n")
            (case_dir / "b.yaml").write_text("include: [a.yaml]\nspec: {}\n")
            inc = "a.yaml"
        elif trick == "deep":
            for i in range(30):
                (case_dir / f"d{i}.yaml").write_text(f"include: d{i + 1}.yaml\nspec: {{}}\n")
            (case_dir / "d30.yaml").write_text("spec: {}\n")
            inc = "d0.yaml"
        elif trick == "fanout":
            (case_dir / "f.yaml").write_text("include: [" + ", ".join(["g.yaml"] * 50) + "]\nspec: {}\n")
            (case_dir / "g.yaml").write_text("spec: {packages: [x]}\n")
            inc = ["f.yaml"] * 50
        elif trick == "binary":
            (case_dir / "bin.yaml").write_bytes(os.urandom(2000))
            inc = "bin.yaml"
        elif trick == "meta":
            (case_dir / "m.yaml").write_text("metadata: {name: x}\nspec: {}\n")
            inc = "m.yaml"
        elif trick == "absolute-ok":
            inc = str(case_dir / "repos" / "rocky9.yaml")
        elif trick == "list-of-int":
            inc = [1, 2]
        doc["include"] = inc if isinstance(inc, list) else [*(doc.get("include") or []), inc]
        text = _dump(doc)
        names += ["/dev/zero", "/proc/"]
        name_suffix = f"-{trick}"
    elif kind == "toplevel":
        text = rng.choice(["", "---\n", "- a\n- b\n", "just a string\n", "42\n", "null\n", text + "---\n" + text,
                           "[" + text, "{}", "apiVersion: bundler/v1\n"])
    elif kind == "truncate":
        text = text[: rng.randrange(len(text))]
    elif kind == "number":
        text = _inject(text, rng, rng.choice(["1" * 5000, "1e999", "-.inf", ".nan", "0x" + "f" * 100, "0o777",
                                              "1_000_000", "1:30:00", "9" * 64, "1." + "0" * 100]))
    elif kind == "version":
        doc.setdefault("spec", {})["kubernetes"] = {"version": "@K@", "upgradeThrough": "@H@"}
        doc["metadata"]["version"] = "@M@"
        text = _dump(doc).replace("'@K@'", rng.choice(["1.30", "1.3", "1.29", "1.30.4", "10", "1.300", "v1.30"]))
        text = text.replace("'@H@'", rng.choice(UPGRADE_THROUGH))
        text = text.replace("'@M@'", rng.choice(["1.10", "1.0", "2.50", "1", "1.0.0", "010"]))
    target.write_bytes(data if data is not None else text.encode("utf-8", "surrogatepass"))
    return target, f"{n}:{ref.name}:{kind}{name_suffix}", names


def _worker(cases: list[dict]) -> list[dict]:
    """Runs in the capped subprocess: load each case in-process under a per-case alarm."""
    import signal

    from bundler.errors import ManifestError
    from bundler.manifest import Manifest, load_manifest

    class Hang(BaseException):
        pass

    def alarm(*_: Any) -> None:
        raise Hang()

    signal.signal(signal.SIGALRM, alarm)
    out = []
    for case in cases:
        t = time.monotonic()
        verdict, detail = "loaded", ""
        try:
            signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
            try:
                m = load_manifest(case["file"])
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if not isinstance(m, Manifest):
                verdict, detail = "traceback", f"returned {type(m).__name__}"
        except Hang:
            verdict = "hang"
        except ManifestError as e:
            msg = str(e)
            verdict, detail = "error", msg
            if e.exit_code != 2 or "\n" in msg or len(msg) > 1200 or not any(n in msg for n in case["names"]):
                verdict = "bad-message"
        except BaseException as e:  # the point of the fuzzer: anything else is a finding
            import traceback

            verdict, detail = "traceback", "".join(traceback.format_exception(e))[-2000:]
        out.append({**case, "verdict": verdict, "detail": detail, "seconds": time.monotonic() - t})
    return out


def test_fuzzed_manifests_fail_cleanly(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    refs = sorted((ROOT / "manifests").glob("*.yaml"))
    cases = []
    for n in range(CASES):
        file, name, names = make_case(rng, refs[n % len(refs)], tmp_path / f"c{n:03d}", n)
        cases.append({"file": str(file), "name": name, "names": names})
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = (f"import json, resource, sys; resource.setrlimit(resource.RLIMIT_AS, ({2 << 30}, {2 << 30}));"
            "from tests.builder.test_manifest_fuzz import _worker;"
            f"print(json.dumps(_worker(json.load(open({str(tmp_path / 'cases.json')!r})))))")
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       timeout=CASES * CASE_SECONDS, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads(r.stdout)
    counts: dict[str, int] = {}
    for res in results:
        counts[res["verdict"]] = counts.get(res["verdict"], 0) + 1
    bad = [res for res in results if res["verdict"] not in ("loaded", "error")]
    print(f"\nmanifest fuzzer (seed {SEED}): {len(results)} cases, {len(results) - len(bad)} passed "
          f"({counts.get('loaded', 0)} loaded, {counts.get('error', 0)} refused with exit 2), "
          f"{counts.get('traceback', 0)} tracebacks, {counts.get('hang', 0)} hangs, "
          f"{counts.get('bad-message', 0)} bad messages, in {time.monotonic() - t:.1f} s; "
          f"slowest case {max(x['seconds'] for x in results):.2f} s")
    kinds = {res["name"].split(":")[2].split("-")[0] for res in results}
    tricks = {res["name"].split(":")[2][len("include-"):] for res in results if ":include-" in res["name"]}
    assert {"fifo", "/dev/zero", "dir", "nul", "loop", "deep", "fanout", "binary"} <= tricks
    assert kinds == {"swap", "delete", "deep", "bomb", "tag", "bytes", "unicode", "huge", "include", "toplevel",
                     "truncate", "number", "version"}
    assert not bad, "\n\n".join(f"{b['name']} {b['verdict']}: {b['detail']}" for b in bad[:5])
    assert counts.get("error", 0) > CASES // 2  # the mutations really are hostile

    # The real CLI on a sample of refused cases, across the commands that read a manifest.
    refused = [res for res in results if res["verdict"] == "error"]
    sample = random.Random(SEED).sample(refused, min(CLI_SAMPLE, len(refused)))
    commands = [["plan"], ["lock"], ["build", "-o", str(tmp_path / "out")], ["images"]]
    for i, res in enumerate(sample):
        cmd = commands[i % len(commands)]
        p = subprocess.run([sys.executable, "-m", "bundler.cli", cmd[0], res["file"], *cmd[1:],
                            "--cache", str(tmp_path / "cache")],
                           capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL)
        where = f"{res['name']} via `bundler {cmd[0]}`: rc={p.returncode} stderr={p.stderr[-1500:]!r}"
        assert p.returncode == 2, where
        assert "Traceback" not in p.stderr and p.stderr.startswith("error:"), where
        assert "\n\n" not in p.stderr.strip() and any(n in p.stderr for n in res["names"]), where
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()  # refused before any work


if __name__ == "__main__":  # the same cases against any checkout: PYTHONPATH=/path/to/checkout python THIS_FILE
    import collections
    import resource
    import tempfile

    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    with tempfile.TemporaryDirectory() as d:
        gen = random.Random(SEED)
        refs_ = sorted((ROOT / "manifests").glob("*.yaml"))
        cases_ = []
        for i in range(CASES):
            f, nm, nms = make_case(gen, refs_[i % len(refs_)], Path(d) / f"c{i:03d}", i)
            cases_.append({"file": str(f), "name": nm, "names": nms})
        res_ = _worker(cases_)
    print(__import__("bundler").__file__, dict(collections.Counter(r["verdict"] for r in res_)))
