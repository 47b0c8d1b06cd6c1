"""What changed between two bundles, for the change review before a new bundle crosses the air gap.

Reads only the two bundle.json files. Packages are matched by name and arch and ordered with rpm's own version
comparison (so 1.30.10 > 1.30.9 and 1.0~rc1 < 1.0, as yum sees it), images by their full reference (a new digest
under the same tag is exactly what a reviewer must notice), files by path.
"""

from __future__ import annotations

import os
from typing import Any

from ..rpm.evr import rpmvercmp
from .inspect import read_bundle_json

__all__ = ["diff", "diff_boms", "evrcmp", "format_diff", "rpmvercmp"]


def _epoch(e: Any) -> int:
    try:
        return int(e or 0)
    except (TypeError, ValueError):
        return 0


def evrcmp(a: tuple[Any, str, str], b: tuple[Any, str, str]) -> int:
    """Compare (epoch, version, release) as rpm does: epoch numerically first, then version, then release."""
    ea, eb = _epoch(a[0]), _epoch(b[0])
    if ea != eb:
        return 1 if ea > eb else -1
    return rpmvercmp(str(a[1]), str(b[1])) or rpmvercmp(str(a[2] or ""), str(b[2] or ""))


def evr_str(p: dict[str, Any]) -> str:
    e = _epoch(p.get("epoch"))
    return f"{e}:" * (e != 0) + f"{p.get('version')}-{p.get('release')}"


def _evr(p: dict[str, Any]) -> tuple[int, str, str]:
    return _epoch(p.get("epoch")), str(p.get("version") or ""), str(p.get("release") or "")


def diff_boms(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The change list between two parsed bundle.json documents (see `diff`)."""
    meta = {}
    for label, get in (
        ("name", lambda b: b.get("name")),
        ("version", lambda b: b.get("version")),
        ("target", lambda b: "{os}/{arch}".format(**{"os": None, "arch": None, **(b.get("target") or {})})),
        ("kubernetes", lambda b: (b.get("kubernetes") or {}).get("version")),
        ("runtime", lambda b: b.get("runtime")),
        ("cni", lambda b: b.get("cni")),
        ("install", lambda b: b.get("install")),
    ):
        if get(old) != get(new):
            meta[label] = {"old": get(old), "new": get(new)}

    def by_key(bom: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
        out: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for p in bom.get("packages") or []:
            out.setdefault((p.get("name"), p.get("arch")), []).append(p)
        return out

    po, pn = by_key(old), by_key(new)
    pk: dict[str, list[dict[str, Any]]] = {"added": [], "removed": [], "upgraded": [], "downgraded": [],
                                          "rebuilt": []}
    for key in sorted(set(po) | set(pn), key=lambda k: (str(k[0]), str(k[1]))):
        name, arch = key
        olds, news = po.get(key, []), pn.get(key, [])
        if len(olds) == 1 and len(news) == 1:
            o, n = olds[0], news[0]
            c = evrcmp(_evr(o), _evr(n))
            if c < 0:
                pk["upgraded"].append({"name": name, "arch": arch, "old": evr_str(o), "new": evr_str(n)})
            elif c > 0:
                pk["downgraded"].append({"name": name, "arch": arch, "old": evr_str(o), "new": evr_str(n)})
            elif o.get("sha256") != n.get("sha256"):
                pk["rebuilt"].append({"name": name, "arch": arch, "evr": evr_str(n), "old": o.get("sha256"),
                                      "new": n.get("sha256")})
            continue
        # Several versions of one name.arch (installonly packages like kernel) or one side empty: set difference.
        oe = {evr_str(p): p for p in olds}
        ne = {evr_str(p): p for p in news}
        for e in sorted(set(oe) - set(ne)):
            pk["removed"].append({"name": name, "arch": arch, "evr": e})
        for e in sorted(set(ne) - set(oe)):
            pk["added"].append({"name": name, "arch": arch, "evr": e})
        for e in sorted(set(oe) & set(ne)):
            if oe[e].get("sha256") != ne[e].get("sha256"):
                pk["rebuilt"].append({"name": name, "arch": arch, "evr": e, "old": oe[e].get("sha256"),
                                      "new": ne[e].get("sha256")})

    io_ = {i.get("ref"): i for i in old.get("images") or []}
    in_ = {i.get("ref"): i for i in new.get("images") or []}
    images = {
        "added": [{"ref": r, "digest": in_[r].get("digest")} for r in sorted(set(in_) - set(io_))],
        "removed": [{"ref": r, "digest": io_[r].get("digest")} for r in sorted(set(io_) - set(in_))],
        "changed": [{"ref": r, "old": io_[r].get("digest"), "new": in_[r].get("digest")}
                    for r in sorted(set(io_) & set(in_)) if io_[r].get("digest") != in_[r].get("digest")],
    }

    fo = {f.get("path") or f.get("name"): f for f in old.get("files") or []}
    fn = {f.get("path") or f.get("name"): f for f in new.get("files") or []}
    files = {
        "added": [{"path": p, "sha256": fn[p].get("sha256")} for p in sorted(set(fn) - set(fo))],
        "removed": [{"path": p, "sha256": fo[p].get("sha256")} for p in sorted(set(fo) - set(fn))],
        "changed": [{"path": p, "old": fo[p].get("sha256"), "new": fn[p].get("sha256")}
                    for p in sorted(set(fo) & set(fn)) if fo[p].get("sha256") != fn[p].get("sha256")],
    }
    changes = sum(len(v) for v in pk.values()) + sum(len(v) for v in images.values()) + \
        sum(len(v) for v in files.values()) + len(meta)

    def ident(b: dict[str, Any]) -> dict[str, Any]:
        return {"name": b.get("name"), "version": b.get("version"), "target": b.get("target")}

    return {"old": ident(old), "new": ident(new), "changes": changes, "metadata": meta, "packages": pk,
            "images": images, "files": files}


def diff(old: str | os.PathLike[str], new: str | os.PathLike[str]) -> dict[str, Any]:
    """Changes from bundle `old` to bundle `new` (tarballs or directories), from their bundle.json only.

    Keys: metadata {field: {old, new}}; packages {added, removed, upgraded, downgraded, rebuilt};
    images {added, removed, changed}; files {added, removed, changed}; changes (total count).
    """
    d = diff_boms(read_bundle_json(old), read_bundle_json(new))
    d["old"]["bundle"], d["new"]["bundle"] = str(old), str(new)
    return d


def _short(digest: str | None) -> str:
    if not digest:
        return "-"
    algo, _, hexd = digest.rpartition(":")
    return f"{algo}:{hexd[:12]}" if algo else hexd[:12]


def format_diff(d: dict[str, Any]) -> str:
    """Compact change list: one line per change, '+' added, '-' removed, '^' upgraded, 'v' downgraded, '~' changed."""
    o, n = d["old"], d["new"]
    lines = [f"{o.get('name')} {o.get('version')} -> {n.get('name')} {n.get('version')}: "
             f"{d['changes']} change{'s' if d['changes'] != 1 else ''}"]
    for k, v in d["metadata"].items():
        lines.append(f"  ~ {k}: {v['old']} -> {v['new']}")
    p = d["packages"]
    if any(p.values()):
        lines.append("packages: " + ", ".join(f"{len(v)} {k}" for k, v in p.items() if v))
        lines += [f"  ^ {x['name']}.{x['arch']}  {x['old']} -> {x['new']}" for x in p["upgraded"]]
        lines += [f"  v {x['name']}.{x['arch']}  {x['old']} -> {x['new']} (DOWNGRADE)" for x in p["downgraded"]]
        lines += [f"  + {x['name']}-{x['evr']}.{x['arch']}" for x in p["added"]]
        lines += [f"  - {x['name']}-{x['evr']}.{x['arch']}" for x in p["removed"]]
        lines += [f"  ~ {x['name']}-{x['evr']}.{x['arch']}  same version, different file (rebuilt upstream?)"
                  for x in p["rebuilt"]]
    i = d["images"]
    if any(i.values()):
        lines.append("images: " + ", ".join(f"{len(v)} {k}" for k, v in i.items() if v))
        lines += [f"  ~ {x['ref']}  {_short(x['old'])} -> {_short(x['new'])}" for x in i["changed"]]
        lines += [f"  + {x['ref']}  {_short(x['digest'])}" for x in i["added"]]
        lines += [f"  - {x['ref']}  {_short(x['digest'])}" for x in i["removed"]]
    f = d["files"]
    if any(f.values()):
        lines.append("files: " + ", ".join(f"{len(v)} {k}" for k, v in f.items() if v))
        lines += [f"  ~ {x['path']}  {_short(x['old'])} -> {_short(x['new'])}" for x in f["changed"]]
        lines += [f"  + {x['path']}" for x in f["added"]]
        lines += [f"  - {x['path']}" for x in f["removed"]]
    return "\n".join(lines)
