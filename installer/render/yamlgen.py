"""A minimal YAML emitter for the config files we write (dicts, lists, strings, numbers, booleans)."""

import json
import re

_PLAIN = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./:@+-]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    if _PLAIN.match(s) and s.lower() not in _RESERVED and not _looks_numeric(s) and not s.endswith(":"):
        return s
    return json.dumps(s)


def _looks_numeric(s):
    try:
        float(s)
        return True
    except ValueError:
        # YAML 1.1 sexagesimal ('1:20'), octal/hex and underscored ints would not stay strings
        return bool(re.match(r"^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$", s) or
                    re.match(r"^[-+]?(0x[0-9a-fA-F_]+|0o?[0-7_]+|[0-9][0-9_]*)$", s))


def dump(obj, indent=0):
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        for k, v in obj.items():
            key = scalar(k)
            if isinstance(v, dict) and v:
                out.append("%s%s:\n%s" % (pad, key, dump(v, indent + 1)))
            elif isinstance(v, list) and v:
                out.append("%s%s:\n%s" % (pad, key, dump(v, indent)))
            elif isinstance(v, (dict, list)):
                out.append("%s%s: %s\n" % (pad, key, "{}" if isinstance(v, dict) else "[]"))
            else:
                out.append("%s%s: %s\n" % (pad, key, scalar(v)))
        return "".join(out)
    if isinstance(obj, list):
        for item in obj:
            if isinstance(item, (dict, list)) and item:
                body = dump(item, indent + 1)
                out.append("%s- %s" % (pad, body[len(pad) + 2:]))
            else:
                out.append("%s- %s\n" % (pad, scalar(item) if not isinstance(item, (dict, list)) else
                                          ("{}" if isinstance(item, dict) else "[]")))
        return "".join(out)
    return pad + scalar(obj) + "\n"


def dump_all(docs):
    return "---\n".join(dump(d) for d in docs)
