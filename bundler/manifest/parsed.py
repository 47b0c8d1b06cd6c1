"""Parsed manifest YAML kept by the sha256 of its text: a warm `plan` or `build` neither imports PyYAML nor parses.

A parse is a pure function of the text and of the parser (file names appear only in errors, and errors are never
kept), so an entry is named by the sha256 of the text, of this module and yamlparse.py, and of the installed
PyYAML: any change is a miss, never a stale answer. An entry holds the value tree exactly as yamlparse builds it
(numbers keep the text they were written as) and the line of every key path, behind a sha256 of its content.
Validation (load.py) runs on the result every time, so every check, include and CA file is read as before.
Entries live in CACHE/manifests/, written atomically and only once the whole manifest is valid (a refused manifest
leaves nothing behind); one that does not read back is ignored and rewritten; a cache that cannot be written is only
read; `cache prune` removes them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..fetch.cachefile import code_identity, read_sealed, write_sealed
from .yamlsrc import Source, TextFloat, TextInt

FORMAT = 1
DIR = "manifests"


class ParseCache:
    """One manifest load's view of CACHE/manifests: entries are read at once, new ones kept until commit()."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.pending: list[tuple[Path, Source]] = []

    def commit(self) -> None:
        """Write the texts parsed by this load (called once the manifest has passed validation)."""
        for path, src in self.pending:
            _save(path, src)
        self.pending.clear()


def cached_parse(file: Path, text: str, cache: ParseCache | None) -> Source:
    """yamlparse.parse(text, file), answered from the cache when this text was parsed before."""
    if cache is None:
        return _parse(text, file)
    digest = hashlib.sha256(f"{FORMAT}\0{_identity()}\0".encode() + text.encode("utf-8")).hexdigest()
    path = cache.dir / f"{digest}.json"
    found = _load(path, file)
    if found is not None:
        return found
    src = _parse(text, file)
    cache.pending.append((path, src))
    return src


def _parse(text: str, file: Path) -> Source:
    from .yamlparse import parse

    return parse(text, file)


def _identity() -> str:
    """The parser: these modules and the installed PyYAML (not imported)."""
    here = Path(__file__).parent
    return code_identity((here / "parsed.py", here / "yamlparse.py", here / "yamlsrc.py"), ("yaml",))


def _enc(v: Any) -> Any:
    """A JSON value that says its type (a dict, list, str and a number written as '010' all come back as such)."""
    if isinstance(v, dict):
        return {"m": [[k, _enc(x)] for k, x in v.items()]}
    if isinstance(v, list):
        return {"l": [_enc(x) for x in v]}
    if isinstance(v, str):
        return {"s": v}
    if isinstance(v, bool) or v is None:
        return {"b": v}
    if isinstance(v, int):
        return {"i": str(int(v)), "t": getattr(v, "text", None)}
    if isinstance(v, float):
        return {"f": repr(float(v)), "t": getattr(v, "text", None)}
    raise TypeError(f"no cache encoding for {type(v).__name__}")


def _dec(v: Any) -> Any:
    if "m" in v:
        return {str(k): _dec(x) for k, x in v["m"]}
    if "l" in v:
        return [_dec(x) for x in v["l"]]
    if "s" in v:
        return str(v["s"])
    if "b" in v:
        if v["b"] not in (True, False, None):
            raise ValueError("a boolean that is not one")
        return v["b"]
    out: TextInt | TextFloat
    if "i" in v:
        out = TextInt(int(v["i"]))
    elif "f" in v:
        out = TextFloat(float(v["f"]))
    else:
        raise ValueError(f"an unknown value kind {sorted(v)}")
    if v["t"] is not None:
        out.text = str(v["t"])
    return out


def _load(path: Path, file: Path) -> Source | None:
    try:
        body = read_sealed(path, FORMAT)
        if body is None:
            return None
        data = json.loads(body)
        return Source(file=file, data=_dec(data["data"]),
                      lines={tuple(k): int(line) for k, line in data["lines"]})
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None  # damaged or not ours: parsed again and rewritten


def _save(path: Path, src: Source) -> None:
    """Best effort: a full disk, a read-only cache or a concurrent prune only skips it."""
    try:
        body = json.dumps({"data": _enc(src.data), "lines": [[list(k), line] for k, line in src.lines.items()]},
                          separators=(",", ":")).encode()
    except (TypeError, RecursionError):
        return
    write_sealed(path, FORMAT, body)
