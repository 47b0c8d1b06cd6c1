"""Read, merge (include:) and validate a manifest; every error names file, line, field and what is allowed."""

from __future__ import annotations

import difflib
import re
import stat
from pathlib import Path
from typing import Any

from ..errors import ManifestError
from .hops import hop_problem
from .model import (
    ARCH_CHOICES,
    CNI_CHOICES,
    FILE_KIND_CHOICES,
    INSTALL_CHOICES,
    OS_CHOICES,
    PREFER_CHOICES,
    RUNTIME_CHOICES,
    FileEntry,
    Manifest,
    Repo,
    Target,
)
from .parsed import DIR as PARSED_DIR
from .parsed import ParseCache
from .registries import parse_registries
from .yamlsrc import Source, TextFloat, TextInt, dotted, load_yaml, short

API_VERSION = "bundler/v1"
TOP_KEYS = {"apiVersion", "kind", "metadata", "spec", "include"}
SPEC_KEYS = {
    "target", "kubernetes", "runtime", "cni", "prefer", "install", "repos",
    "packages", "modules", "images", "files", "mirrors", "registries", "solver",
}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
K8S_VERSION_RE = re.compile(r"^v?\d+\.\d+\.\d+$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
URL_RE = re.compile(r"^(https?|file)://\S+$")
MODULE_RE = re.compile(r"^[A-Za-z0-9._+-]+:[A-Za-z0-9._+-]+$")
MAX_INCLUDE_DEPTH = 8  # fragments of fragments; the reference manifests use 1
MAX_INCLUDE_FILES = 64  # per manifest, so `include: [x, x, x, ...]` fan-out cannot multiply the work


Owner = tuple  # (Source, the key path inside that source)


def _resolve(owners: dict[tuple, Owner], default: Source, path: tuple) -> Owner:
    """Translate a key path of the merged document to (file it came from, its path in that file)."""
    for n in range(len(path), 0, -1):
        if path[:n] in owners:
            src, orig = owners[path[:n]]
            return src, orig + path[n:]
    return default, path


class _Checker:
    """Validation helpers that point each error at the file and line the value came from."""

    def __init__(self, owners: dict[tuple, Owner], main: Source):
        self.owners = owners
        self.main = main

    def file_of(self, path: tuple) -> Path:
        """The file a value was written in: relative paths in it are relative to that file."""
        return _resolve(self.owners, self.main, path)[0].file

    def fail(self, path: tuple, msg: str) -> ManifestError:
        src, orig = _resolve(self.owners, self.main, path)
        return ManifestError(f"{src.where(orig)}: {dotted(orig)}: {msg}")

    def mapping(self, value: Any, path: tuple, allowed: set[str], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a mapping with keys {', '.join(sorted(allowed))}.")
        for key in value:
            if key not in allowed:
                hint = _closest(key, allowed)
                raise self.fail(
                    path + (key,),
                    f"unknown key{f'; did you mean {hint!r}?' if hint else '.'} "
                    f"Allowed here: {', '.join(sorted(allowed))}.",
                )
        for key in required:
            if key not in value or value[key] is None:
                raise self.fail(path, f"the key '{key}' is required.")
        return value

    def choice(self, value: Any, path: tuple, choices: tuple[str, ...]) -> str:
        if not isinstance(value, str) or value not in choices:
            raise self.fail(path, f"{short(value)} is not one of {', '.join(choices)}.")
        return value

    def string(self, value: Any, path: tuple, pattern: re.Pattern | None = None, what: str = "") -> str:
        if isinstance(value, (TextInt, TextFloat)):
            value = self._number_as_text(value, path, pattern, what)
        elif isinstance(value, bool):
            raise self.fail(path, f"{value} is a YAML boolean (so are yes/no/on/off), not a string; quote it if it "
                                  f"is meant as text{f' ({what})' if what else ''}.")
        elif isinstance(value, (int, float)):
            value = str(value)
        if not isinstance(value, str) or not value:
            raise self.fail(path, f"must be a non-empty string{f' ({what})' if what else ''}.")
        if pattern and not pattern.match(value):
            raise self.fail(path, f"{short(value)} is not valid: expected {what}.")
        return value

    def _number_as_text(self, value: TextInt | TextFloat, path: tuple, pattern: re.Pattern | None,
                        what: str) -> str:
        """An unquoted number where text is expected: fine if it reads back as written, else say to quote it."""
        text = value.text
        shown = repr(float(value)) if isinstance(value, float) else str(int(value))
        if shown == text:
            return text
        why = ("the number lost its trailing zero" if isinstance(value, float) and text.rstrip("0") == shown
               else "unquoted, YAML reads it as a number")
        then = f"; it must also be {what}" if pattern and not pattern.match(text) else ""
        written = text if len(text) <= 40 else short(text)
        raise self.fail(path, f"{written} was read as the number {shown} ({why}). Versions and names are text: "
                              f'write it quoted, "{text}"{then}.')

    def boolean(self, value: Any, path: tuple) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"{short(value)} must be true or false.")
        return value

    def seq(self, value: Any, path: tuple) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, "must be a list.")
        return value


def _closest(word: str, options: set[str]) -> str | None:
    match = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.6)
    return match[0] if match else None


def _include_path(src: Source, i: int, inc: Any, seen: tuple[Path, ...], budget: list[int]) -> Path:
    """The file include[i] names, refused early if it cannot be a fragment (the read refuses FIFOs and devices)."""
    here = src.where(("include", i))
    if not isinstance(inc, str) or not inc.strip():
        raise ManifestError(f"{here}: include[{i}] must be a file name.")
    if "\x00" in inc:
        raise ManifestError(f"{here}: include[{i}] contains a NUL character. Give a plain file path.")
    if len(seen) > MAX_INCLUDE_DEPTH:
        raise ManifestError(f"{here}: includes nest more than {MAX_INCLUDE_DEPTH} files deep "
                            f"({' -> '.join(p.name for p in seen)}). Flatten the fragments.")
    budget[0] += 1
    if budget[0] > MAX_INCLUDE_FILES:
        raise ManifestError(f"{here}: more than {MAX_INCLUDE_FILES} includes in all; list each fragment once.")
    try:
        path = (src.file.parent / inc).resolve()
    except (OSError, RuntimeError, ValueError) as e:
        raise ManifestError(f"{here}: include[{i}] {short(inc)} cannot be resolved ({e}). Check the path.") from None
    try:
        mode = path.stat().st_mode  # stat, not open: a FIFO must never be opened for reading here
    except FileNotFoundError:
        raise ManifestError(f"{here}: include[{i}] {short(inc)}: no such file ({short(str(path), 160)}). Fix the "
                            "path (it is relative to the file that includes it).") from None
    except OSError as e:
        raise ManifestError(f"{here}: include[{i}] {short(inc)} cannot be read ({e.strerror}). Fix the path.") from None
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        raise ManifestError(f"{here}: include[{i}] {short(inc)} is {kind} ({path}); includes must be regular YAML "
                            "files. Fix the path.")
    if path in seen:
        chain = " -> ".join(str(p) for p in seen + (path,))
        raise ManifestError(f"{here}: include loop: {chain}. Remove one of the includes.")
    return path


def _merge_includes(src: Source, seen: tuple[Path, ...], budget: list[int] | None = None,
                    parsed: ParseCache | None = None) -> tuple[dict, dict[tuple, Owner]]:
    """Merge `include:` fragments into src's document: fragments first, lists joined, this file wins.

    Returns the merged document and, for every value that did not come from src itself, its owner.
    """
    budget = budget if budget is not None else [0]
    doc = src.data
    if not isinstance(doc, dict):
        raise ManifestError(f"{src.file}: the manifest must be a YAML mapping (apiVersion, kind, metadata, spec).")
    includes = doc.get("include") or []
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list):
        raise ManifestError(f"{src.where(('include',))}: include must be a file name or a list of file names.")
    spec: dict = {}
    owners: dict[tuple, Owner] = {}

    def merge(fragment: dict, f_owners: dict[tuple, Owner], f_src: Source) -> None:
        for key, value in fragment.items():
            here = ("spec", key)
            if isinstance(spec.get(key), list) and isinstance(value, list):
                offset = len(spec[key])
                for j in range(len(value)):
                    owners[here + (offset + j,)] = _resolve(f_owners, f_src, here + (j,))
                spec[key] = spec[key] + value
            elif isinstance(spec.get(key), dict) and isinstance(value, dict):
                for k in value:
                    owners[here + (k,)] = _resolve(f_owners, f_src, here + (k,))
                spec[key] = {**spec[key], **value}
            else:
                if isinstance(value, list):
                    for j in range(len(value)):
                        owners[here + (j,)] = _resolve(f_owners, f_src, here + (j,))
                owners[here] = _resolve(f_owners, f_src, here)
                spec[key] = value

    for i, inc in enumerate(includes):
        path = _include_path(src, i, inc, seen, budget)
        inc_src = load_yaml(path, parsed)
        inc_doc, inc_owners = _merge_includes(inc_src, seen + (path,), budget, parsed)
        extra = set(inc_doc) - {"spec", "include", "apiVersion", "kind"}
        if extra:
            raise ManifestError(
                f"{inc_src.file}: an included file may only hold 'spec' (found {', '.join(sorted(extra))})."
            )
        fragment = inc_doc.get("spec") or {}
        if not isinstance(fragment, dict):
            raise ManifestError(f"{inc_src.where(('spec',))}: spec must be a mapping.")
        merge(fragment, inc_owners, inc_src)
    own = doc.get("spec")
    out = dict(doc)
    if not includes:
        return out, owners
    if own is not None and not isinstance(own, dict):
        return out, owners  # validation reports the type error against this file
    merge(own or {}, {}, src)
    out["spec"] = spec
    return out, owners


def _expand(url: str, target: Target) -> str:
    """yum's $releasever / $basearch in repo URLs, so one fragment serves every target."""
    for var, value in (("releasever", target.releasever), ("basearch", target.arch)):
        url = url.replace("${" + var + "}", value).replace("$" + var, value)
    return url


def load_manifest(file: str | Path, cache_dir: Path | None = None) -> Manifest:
    """Load and validate a manifest file; raise ManifestError with a precise message on any problem.
    cache_dir: the builder's cache, where parsed YAML texts are kept (manifest/parsed.py)."""
    try:
        path = Path(file).resolve()
    except (OSError, RuntimeError, ValueError) as e:  # a symlink loop, a NUL in the name
        raise ManifestError(f"{short(str(file), 200)}: the manifest path cannot be resolved ({e}). Check it.") from None
    parsed = ParseCache(cache_dir / PARSED_DIR) if cache_dir is not None else None
    src = load_yaml(path, parsed)
    doc, owners = _merge_includes(src, (path,), parsed=parsed)
    c = _Checker(owners, src)
    c.mapping(doc, (), TOP_KEYS, required=("apiVersion", "kind", "metadata", "spec"))
    if doc["apiVersion"] != API_VERSION:
        raise c.fail(("apiVersion",), f"{short(doc['apiVersion'])} is not supported; use '{API_VERSION}'.")
    if doc["kind"] != "Bundle":
        raise c.fail(("kind",), f"{short(doc['kind'])} is not supported; use 'Bundle'.")

    meta = c.mapping(doc["metadata"], ("metadata",), {"name", "version", "description"}, ("name", "version"))
    name = c.string(meta["name"], ("metadata", "name"), NAME_RE, "letters, digits, '.', '_' or '-'")
    version = c.string(meta["version"], ("metadata", "version"), NAME_RE, "letters, digits, '.', '_' or '-'")

    spec = c.mapping(doc["spec"], ("spec",), SPEC_KEYS, ("target",))
    tgt = c.mapping(spec["target"], ("spec", "target"), {"os", "arch"}, ("os", "arch"))
    target = Target(
        os=c.choice(tgt["os"], ("spec", "target", "os"), OS_CHOICES),
        arch=c.choice(tgt["arch"], ("spec", "target", "arch"), ARCH_CHOICES),
    )

    k8s_version = None
    hops: tuple[str, ...] = ()
    if spec.get("kubernetes") is not None:
        k8s = c.mapping(spec["kubernetes"], ("spec", "kubernetes"), {"version", "upgradeThrough"}, ("version",))
        k8s_version = c.string(k8s["version"], ("spec", "kubernetes", "version"), K8S_VERSION_RE,
                               "a full version such as 1.30.4").lstrip("v")
        hops = _upgrade_through(c, k8s.get("upgradeThrough"), k8s_version)

    runtime = c.choice(spec.get("runtime", "containerd"), ("spec", "runtime"), RUNTIME_CHOICES)
    cni = c.choice(spec.get("cni", "calico" if k8s_version else "none"), ("spec", "cni"), CNI_CHOICES)
    prefer = c.choice(spec.get("prefer", "media"), ("spec", "prefer"), PREFER_CHOICES)
    install = c.choice(spec.get("install", "packages"), ("spec", "install"), INSTALL_CHOICES)
    if hops and install != "packages":
        raise c.fail(("spec", "kubernetes", "upgradeThrough"),
                     f"hops are shipped as packages (each hop's kubeadm, kubelet and kubectl RPMs), but spec.install "
                     f"is {install}. Use install: packages, or remove upgradeThrough.")

    repos: list[Repo] = []
    for i, r in enumerate(c.seq(spec.get("repos"), ("spec", "repos"))):
        p = ("spec", "repos", i)
        r = c.mapping(r, p, {"name", "baseurl", "onMedia", "gpgkey"}, ("name", "baseurl"))
        rname = c.string(r["name"], p + ("name",), NAME_RE, "letters, digits, '.', '_' or '-'")
        if any(x.name == rname for x in repos):
            raise c.fail(p + ("name",), f"the repo name {rname!r} is used twice; repo names must be unique.")
        baseurl = _expand(c.string(r["baseurl"], p + ("baseurl",), URL_RE, "an http://, https:// or file:// URL"),
                          target)
        keys = r.get("gpgkey") or []
        keys = [keys] if isinstance(keys, str) else c.seq(keys, p + ("gpgkey",))
        gpgkeys = tuple(_expand(c.string(k, p + ("gpgkey", j), URL_RE, "an http://, https:// or file:// URL"),
                                target) for j, k in enumerate(keys))
        repos.append(Repo(rname, baseurl if baseurl.endswith("/") else baseurl + "/",
                          c.boolean(r.get("onMedia", False), p + ("onMedia",)), gpgkeys))

    packages = tuple(c.string(x, ("spec", "packages", i), what="a package spec such as kubeadm-1.30.4")
                     for i, x in enumerate(c.seq(spec.get("packages"), ("spec", "packages"))))
    if packages and not repos:
        raise c.fail(("spec", "packages"), "packages are listed but spec.repos is empty; add the repos they come from.")
    modules = tuple(c.string(x, ("spec", "modules", i), MODULE_RE, "NAME:STREAM such as container-tools:rhel8")
                    for i, x in enumerate(c.seq(spec.get("modules"), ("spec", "modules"))))
    solver = c.mapping(spec.get("solver") or {}, ("spec", "solver"), {"best"})
    best = c.boolean(solver.get("best", True), ("spec", "solver", "best"))
    images = tuple(c.string(x, ("spec", "images", i), what="an image reference such as docker.io/library/nginx:1.27")
                   for i, x in enumerate(c.seq(spec.get("images"), ("spec", "images"))))

    files: list[FileEntry] = []
    for i, f in enumerate(c.seq(spec.get("files"), ("spec", "files"))):
        p = ("spec", "files", i)
        f = c.mapping(f, p, {"url", "sha256", "extract", "kind", "name"}, ("url", "sha256"))
        files.append(FileEntry(
            url=c.string(f["url"], p + ("url",), URL_RE, "an http://, https:// or file:// URL"),
            sha256=c.string(f["sha256"], p + ("sha256",), SHA256_RE, "64 lowercase hex digits").lower(),
            kind=c.choice(f.get("kind", "binary"), p + ("kind",), FILE_KIND_CHOICES),
            extract=c.string(f["extract"], p + ("extract",)) if f.get("extract") is not None else None,
            name=c.string(f["name"], p + ("name",), NAME_RE, "a plain file name") if f.get("name") else None,
        ))

    mirrors_raw = spec.get("mirrors") or {}
    if not isinstance(mirrors_raw, dict):
        raise c.fail(("spec", "mirrors"), "must be a mapping of upstream host -> mirror host/path.")
    mirrors = {
        c.string(k, ("spec", "mirrors", k), what="an upstream host name, optionally with a path prefix"):
            c.string(v, ("spec", "mirrors", k), what="a mirror host or host/path").rstrip("/")
        for k, v in mirrors_raw.items()
    }

    m = Manifest(
        file=path, name=name, version=version, target=target, kubernetes_version=k8s_version, upgrade_through=hops,
        runtime=runtime, cni=cni, prefer=prefer, install=install, repos=tuple(repos), packages=packages,
        modules=modules, images=images, files=tuple(files), mirrors=mirrors, solver_best=best,
        registries=parse_registries(c, spec.get("registries")),
    )
    if parsed is not None:
        parsed.commit()  # valid: the texts it parsed are kept for the next load
    return m


def _upgrade_through(c: _Checker, raw: Any, target: str) -> tuple[str, ...]:
    """spec.kubernetes.upgradeThrough: full versions forming a chain of minors up to the target's."""
    path = ("spec", "kubernetes", "upgradeThrough")
    if isinstance(raw, str):
        raise c.fail(path, f"must be a list of full versions, e.g. [{raw}] (written as a list even for one hop).")
    hops = [c.string(v, path + (i,), K8S_VERSION_RE, "a full version such as 1.31.5").lstrip("v")
            for i, v in enumerate(c.seq(raw, path))]
    problem = hop_problem(target, hops)
    if problem:
        i, msg = problem
        raise c.fail(path + (i,), msg)
    return tuple(hops)
