"""`json.dumps(obj, indent=2)`, the same text, without the pure-Python encoder's cost on long lists of records.

With `indent` the standard library encodes in Python, one generator step per token: `plan --json` of 8,500
packages spent 0.06 s there, more than the rest of a warm plan. Here a dict or list whose members are all scalars
is written in one expression, with the C string escaper; anything else recurses, and what this does not cover
(non-str keys, floats, other types) is left to json.dumps itself.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _quote  # the C escaper
from typing import Any

_SCALARS = {True: "true", False: "false", None: "null"}


def dumps(obj: Any) -> str:
    """Exactly json.dumps(obj, indent=2)."""
    return _encode(obj, "\n")


def _scalar(v: Any) -> str | None:
    """The JSON of a str/int/bool/None (what json.dumps writes); None for anything else."""
    t = type(v)
    if t is str:
        return _quote(v)
    if t is int:
        return int.__repr__(v)
    if t is bool or v is None:
        return _SCALARS[v]
    return None


def _encode(obj: Any, nl: str) -> str:
    inner = nl + "  "
    t = type(obj)
    if t is dict:
        if not obj:
            return "{}"
        if not all(type(k) is str for k in obj):
            return json.dumps(obj, indent=2).replace("\n", nl)
        items = []
        for k, v in obj.items():
            s = _scalar(v)
            items.append(f"{_quote(k)}: {s if s is not None else _encode(v, inner)}")
        return "{" + inner + ("," + inner).join(items) + nl + "}"
    if t is list or t is tuple:
        if not obj:
            return "[]"
        parts = []
        for v in obj:
            s = _scalar(v)
            parts.append(s if s is not None else _encode(v, inner))
        return "[" + inner + ("," + inner).join(parts) + nl + "]"
    s = _scalar(obj)
    return s if s is not None else json.dumps(obj, indent=2).replace("\n", nl)
