"""The parsed-YAML cache (bundler/manifest/parsed.py): the same Source as a parse, never stale, never required."""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import pytest

from bundler.errors import ManifestError
from bundler.manifest import load_manifest, parsed
from bundler.manifest.yamlparse import parse
from bundler.manifest.yamlsrc import Source, TextFloat, TextInt
from bundler.manifest.yamlsrc import load_yaml as _load_yaml

ROOT = Path(__file__).resolve().parents[2]

TRICKY = """\
apiVersion: bundler/v1
kind: Bundle
metadata: {name: "x", version: 010}   # an int written with a leading zero keeps its text
spec:
  target: {os: el9, arch: x86_64}
  kubernetes: {version: 1.30}         # a float whose text is "1.30"
  packages: [a, "b", 'c d', "é ✓"]
  odd:
    yes_: yes
    none: ~
    inf: .inf
    nested: [[1, 2.5e3], {k: [true, false, null]}, "", 0x1F, -7]
    anchors: &a {x: 1}
    alias: *a
    date: 2024-01-01
"""


def _typed(v: object) -> object:
    """A value with its exact types and number texts, for an equality that `==` alone would blur (1 == 1.0 == True)."""
    if isinstance(v, dict):
        return ("dict", [(k, _typed(x)) for k, x in v.items()])
    if isinstance(v, list):
        return ("list", [_typed(x) for x in v])
    return (type(v).__name__, repr(v), getattr(v, "text", None))


def load_yaml(file: Path, directory: Path) -> Source:
    """One file through the cache, kept at once (load_manifest keeps them only once the manifest is valid)."""
    cache = parsed.ParseCache(directory)
    src = _load_yaml(file, cache)
    cache.commit()
    return src


def entries(cache: Path) -> list[Path]:
    return sorted((cache / parsed.DIR).glob("*.json")) if (cache / parsed.DIR).is_dir() else []


def test_a_cached_source_is_the_parse_exactly(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(TRICKY, encoding="utf-8")
    direct = parse(f.read_text(encoding="utf-8"), f)
    first = load_yaml(f, tmp_path / "c")
    assert len(list((tmp_path / "c").glob("*.json"))) == 1
    second = load_yaml(f, tmp_path / "c")
    for got in (first, second):
        assert _typed(got.data) == _typed(direct.data) and got.lines == direct.lines and got.file == f
    meta = second.data["metadata"]
    assert isinstance(meta["version"], TextInt) and meta["version"].text == "010"
    k8s = second.data["spec"]["kubernetes"]["version"]
    assert isinstance(k8s, TextFloat) and k8s.text == "1.30"
    assert second.data["spec"]["odd"]["inf"] == float("inf") and second.data["spec"]["odd"]["date"] == "2024-01-01"


def test_a_hit_does_not_parse_and_a_changed_text_misses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(TRICKY, encoding="utf-8")
    load_yaml(f, tmp_path / "c")
    calls: list[Path] = []
    real = parsed._parse
    monkeypatch.setattr(parsed, "_parse", lambda text, file: calls.append(file) or real(text, file))
    load_yaml(f, tmp_path / "c")
    assert calls == []
    f.write_text(TRICKY.replace("packages: [a,", "packages: [z,"), encoding="utf-8")
    assert load_yaml(f, tmp_path / "c").data["spec"]["packages"][0] == "z" and calls == [f]
    assert len(list((tmp_path / "c").glob("*.json"))) == 2


def test_the_parser_identity_is_part_of_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(TRICKY, encoding="utf-8")
    load_yaml(f, tmp_path / "c")
    monkeypatch.setattr(parsed, "_identity", lambda: "another parser")
    load_yaml(f, tmp_path / "c")
    assert len(list((tmp_path / "c").glob("*.json"))) == 2


@pytest.mark.parametrize("damage", ["truncate", "edit", "garbage", "wrong kinds"])
def test_a_damaged_entry_is_parsed_again_and_rewritten(tmp_path: Path, damage: str) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(TRICKY, encoding="utf-8")
    good = load_yaml(f, tmp_path / "c")
    (entry,) = (tmp_path / "c").glob("*.json")
    raw = entry.read_bytes()
    if damage == "truncate":
        entry.write_bytes(raw[: len(raw) // 2])
    elif damage == "edit":  # content changed, checksum not: refused
        entry.write_bytes(raw.replace(b'"s":"a"', b'"s":"EVIL"'))
    elif damage == "garbage":
        entry.write_bytes(os.urandom(300))
    else:  # a well-formed entry whose values are not ours: refused without a traceback
        import hashlib

        body = json.dumps({"data": {"q": 1}, "lines": []}).encode()
        entry.write_bytes(json.dumps({"format": parsed.FORMAT, "sha256": hashlib.sha256(body).hexdigest()}).encode()
                          + b"\n" + body)
    again = load_yaml(f, tmp_path / "c")
    assert _typed(again.data) == _typed(good.data) and again.lines == good.lines
    assert entry.read_bytes() == raw  # rewritten whole


def test_errors_are_never_kept(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text("a: [1, 2\n", encoding="utf-8")
    for _ in range(2):
        with pytest.raises(ManifestError, match=r"m.yaml line \d+: not valid YAML"):
            load_yaml(f, tmp_path / "c")
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").glob("*"))


def test_a_cache_that_cannot_be_written_is_only_read(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(TRICKY, encoding="utf-8")
    blocker = tmp_path / "c"
    blocker.write_text("a file where the directory would be")  # mkdir fails, as on a read-only cache
    assert _typed(load_yaml(f, blocker / "manifests").data) == _typed(parse(TRICKY, f).data)


def test_reference_manifests_load_the_same_with_and_without_the_cache(tmp_path: Path) -> None:
    files = sorted(glob.glob(str(ROOT / "manifests" / "*.yaml")))
    assert files
    for name in files:
        plain = load_manifest(name)
        cold = load_manifest(name, tmp_path / "cache")
        warm = load_manifest(name, tmp_path / "cache")
        assert plain == cold == warm, name
    assert len(entries(tmp_path / "cache")) >= len(files)  # includes are kept too


def test_include_errors_still_name_the_fragment_on_a_warm_load(tmp_path: Path) -> None:
    frag = tmp_path / "frag.yaml"
    frag.write_text("spec:\n  repos:\n    - {name: x, baseurl: 'ftp://nope'}\n", encoding="utf-8")
    main = tmp_path / "m.yaml"
    main.write_text("apiVersion: bundler/v1\nkind: Bundle\ninclude: [frag.yaml]\nmetadata: {name: a, version: '1'}\n"
                    "spec:\n  target: {os: el9, arch: x86_64}\n", encoding="utf-8")
    messages = []
    for _ in range(2):
        with pytest.raises(ManifestError) as e:
            load_manifest(main, tmp_path / "cache")
        messages.append(str(e.value))
    assert messages[0] == messages[1] and "frag.yaml line 3" in messages[0]
    assert not entries(tmp_path / "cache")  # a refused manifest leaves nothing behind
