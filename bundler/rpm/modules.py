"""EL8-style modularity: which packages are visible given default and requested module streams.

dnf hides (1) every package that belongs to a stream that is not active and (2) every non-modular package
whose name is also produced by an active stream ("modular filtering"). We reproduce exactly that rule
and carry the modulemd documents of the streams we ship into the bundle's repo, so dnf on the hosts
treats the shipped packages the same way.

Which streams are active follows `dnf module enable`: one stream per module; a stream's modulemd
`dependencies: requires:` enable the streams it needs (a conflicting requirement is refused); a
module's default stream is active unless something else was enabled for it, and is dropped when its
own requirements cannot be met (dnf then leaves the module inactive).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import ManifestError

DEFAULT = "its module's default"
_NEVRA = re.compile(r"^(?P<name>.+)-(?:(?P<epoch>\d+):)?(?P<version>[^-]+)-(?P<release>[^-]+)\.(?P<arch>[^.]+)$")


def nevra_key(nevra: str) -> str:
    """Normalise 'name-0:1.0-1.x86_64' and 'name-1.0-1.x86_64' to one form (epoch 0 spelled out)."""
    m = _NEVRA.match(nevra)
    if not m:
        return nevra
    return f"{m['name']}-{m['epoch'] or 0}:{m['version']}-{m['release']}.{m['arch']}"


@dataclass
class Stream:
    module: str
    stream: str
    artifacts: set[str] = field(default_factory=set)  # normalised NEVRAs
    documents: list[str] = field(default_factory=list)  # original YAML text of each modulemd version/context
    # Alternatives (one per context / dependencies entry): module -> allowed streams ([] = any, '-s' = not s).
    requires: list[dict[str, list[str]]] = field(default_factory=list)
    repos: set[str] = field(default_factory=set)  # repos whose modules.yaml has this stream

    @property
    def key(self) -> str:
        return f"{self.module}:{self.stream}"


@dataclass
class ModuleIndex:
    streams: dict[tuple[str, str], Stream] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)  # module -> default stream
    default_docs: dict[str, str] = field(default_factory=dict)  # module -> modulemd-defaults YAML text

    def merge(self, other: ModuleIndex) -> None:
        for key, st in other.streams.items():
            mine = self.streams.setdefault(key, Stream(st.module, st.stream))
            mine.artifacts |= st.artifacts
            mine.documents += st.documents
            mine.requires += [r for r in st.requires if r not in mine.requires]
            mine.repos |= st.repos
        for mod, stream in other.defaults.items():
            self.defaults.setdefault(mod, stream)
            self.default_docs.setdefault(mod, other.default_docs[mod])

    def active(self, enabled: tuple[str, ...], source: str = "spec.modules") -> dict[str, str]:
        """module -> active stream: spec.modules (one stream per module), the streams they require, then defaults."""
        return self.resolve_streams(enabled, source)[0]

    def resolve_streams(self, enabled: tuple[str, ...], source: str) -> tuple[dict[str, str], dict[str, str]]:
        """(module -> active stream, module -> why: 'spec.modules', 'NAME:STREAM requires it' or DEFAULT)."""
        explicit: dict[str, tuple[str, int]] = {}
        for i, spec in enumerate(enabled):
            mod, _, stream = spec.partition(":")
            if mod in explicit and explicit[mod][0] != stream:
                first, j = explicit[mod]
                raise ManifestError(
                    f"{source}: lists two streams of module '{mod}' ({mod}:{first} as spec.modules[{j}] and "
                    f"{spec} as spec.modules[{i}]). dnf enables one stream per module (`dnf module enable` refuses "
                    f"both), and the hosts can only have one: keep the stream the bundle needs and remove the other."
                )
            if (mod, stream) not in self.streams:
                known = sorted(f"{m}:{s}" for (m, s) in self.streams if m == mod)
                raise ManifestError(
                    f"{source}: module stream '{spec}' is not in any repo's modules.yaml"
                    + (f" (available: {', '.join(known)})." if known else "; no repo has a module of that name.")
                )
            explicit.setdefault(mod, (stream, i))
        act: dict[str, str] = {}
        why: dict[str, str] = {}  # module -> why its stream is active, for error messages
        for mod, (stream, _) in explicit.items():
            if mod in act:  # already enabled as a dependency of an earlier entry
                if act[mod] != stream:
                    raise ManifestError(f"{source}: lists {mod}:{stream}, but {mod}:{act[mod]} is enabled "
                                        f"({why[mod]}); the two cannot be enabled together. {_FIX}")
                why[mod] = "spec.modules"
                continue
            try:
                self._enable(act, why, mod, stream, "spec.modules", explicit)
            except _Conflict as e:
                raise ManifestError(f"{source}: {e} {_FIX}") from None
        for mod in sorted(self.defaults):
            if mod in act or (mod, self.defaults[mod]) not in self.streams:
                continue
            trial, trial_why = dict(act), dict(why)
            try:
                self._enable(trial, trial_why, mod, self.defaults[mod], DEFAULT, explicit)
            except _Conflict:
                continue  # dnf leaves a module whose default stream cannot be enabled inactive
            act, why = trial, trial_why
        return act, why

    def _enable(self, act: dict[str, str], why: dict[str, str], mod: str, stream: str, reason: str,
                explicit: dict[str, tuple[str, int]]) -> None:
        """Activate mod:stream and, transitively, one compatible alternative of its requirements."""
        act[mod], why[mod] = stream, reason
        st = self.streams[(mod, stream)]
        alternatives = [{m: v for m, v in alt.items() if m != "platform"} for alt in st.requires] or [{}]

        def fits(alt: dict[str, list[str]]) -> int:
            """How many requirements the streams already enabled (else listed, else default) meet: contexts
            built against them are tried first, as dnf prefers."""
            return sum(_allows(v, act.get(m) or explicit.get(m, ("",))[0] or self.defaults.get(m, ""))
                       for m, v in alt.items())

        alternatives.sort(key=fits, reverse=True)  # stable: equal ones keep modules.yaml's order
        problems: list[str] = []
        for alt in alternatives:
            trial, trial_why = dict(act), dict(why)
            try:
                for req_mod, allowed in sorted(alt.items()):
                    if req_mod in trial:
                        if not _allows(allowed, trial[req_mod]):
                            raise _Conflict(
                                f"{st.key} requires {_wanted(req_mod, allowed)}, but {req_mod}:{trial[req_mod]} is "
                                f"enabled ({trial_why[req_mod]}); the two cannot be enabled together.")
                        continue
                    choice = self._pick(req_mod, allowed, explicit)
                    if choice is None:
                        raise _Conflict(f"{st.key} requires {_wanted(req_mod, allowed)}, which no repo's "
                                        "modules.yaml has; add the repo that provides it to spec.repos.")
                    self._enable(trial, trial_why, req_mod, choice, f"{st.key} requires it", explicit)
            except _Conflict as e:
                problems.append(str(e))
                continue
            act.update(trial)
            why.update(trial_why)
            return
        raise _Conflict(" Or: ".join(dict.fromkeys(problems)))

    def _pick(self, mod: str, allowed: list[str], explicit: dict[str, tuple[str, int]]) -> str | None:
        """The stream dnf would enable for a requirement: the listed one, else the default, else the highest."""
        have = sorted(s for (m, s) in self.streams if m == mod and _allows(allowed, s))
        if not have:
            return None
        for preferred in (explicit.get(mod, (None,))[0], self.defaults.get(mod)):
            if preferred in have:
                return preferred
        return max(have, key=_stream_order)

    def hidden_and_modular(self, active: dict[str, str]) -> tuple[set[str], set[str], set[str]]:
        """(NEVRAs to hide, NEVRAs of active streams, package names produced by active streams)."""
        hidden: set[str] = set()
        visible: set[str] = set()
        for (mod, stream), st in self.streams.items():
            (visible if active.get(mod) == stream else hidden).update(st.artifacts)
        hidden -= visible
        names = {m["name"] for m in map(_NEVRA.match, visible) if m}
        return hidden, visible, names


def parse_modules_yaml(path: Path, source: str, repo: str = "") -> ModuleIndex:
    """Parse a repo's modules.yaml (modulemd v2 + modulemd-defaults v1 documents)."""
    text = path.read_text(encoding="utf-8")
    idx = ModuleIndex()
    # Keep each document's original text so the bundle repo carries the exact upstream metadata.
    chunks = [c for c in re.split(r"^---\s*$", text, flags=re.M) if c.strip() and c.strip() != "..."]
    for chunk in chunks:
        body = re.sub(r"^\.\.\.\s*$", "", chunk, flags=re.M)
        try:
            doc = yaml.safe_load(body)
        except yaml.YAMLError as e:
            raise ManifestError(f"{source}: modules.yaml cannot be parsed ({e}).") from None
        if not isinstance(doc, dict):
            continue
        data = doc.get("data") or {}
        kind = doc.get("document")
        if kind == "modulemd":
            key = (str(data.get("name")), str(data.get("stream")))
            st = idx.streams.setdefault(key, Stream(*key))
            st.artifacts |= {nevra_key(a) for a in ((data.get("artifacts") or {}).get("rpms") or [])}
            st.documents.append(body.strip("\n"))
            st.repos.add(repo)
            for dep in data.get("dependencies") or []:
                req = (dep or {}).get("requires") or {}
                alt = {str(m): [str(x) for x in (v or [])] for m, v in req.items()}
                if alt not in st.requires:
                    st.requires.append(alt)
        elif kind == "modulemd-defaults":
            mod = str(data.get("module"))
            if data.get("stream") is not None:
                idx.defaults[mod] = str(data["stream"])
                idx.default_docs[mod] = body.strip("\n")
    return idx


def host_streams(idx: ModuleIndex, active: dict[str, str], why: dict[str, str], shipped: set[str]) -> list[str]:
    """NAME:STREAM the hosts must enable so dnf there sees what the solver saw, sorted: every stream the
    manifest enabled or a stream required, and the default streams the bundle ships packages of. Other default
    streams (a media AppStream has dozens) stay defaults on the hosts, as they were for the solver."""
    keep = {m for m, s in active.items() if why.get(m) != DEFAULT or idx.streams[(m, s)].artifacts & shipped}
    return [f"{m}:{active[m]}" for m in sorted(keep)]


def render_modules_yaml(idx: ModuleIndex, shipped: set[str], carry: list[str] | None = None) -> str | None:
    """modules.yaml for the bundle: every stream that has a shipped artifact, plus `carry` (streams the hosts
    must enable that the media lacks, e.g. required by a shipped stream), plus their modules' defaults."""
    docs: list[str] = []
    modules: set[str] = set()
    wanted = set(carry or ())
    for key in sorted(idx.streams):
        st = idx.streams[key]
        if st.artifacts & shipped or st.key in wanted:
            docs += st.documents
            modules.add(st.module)
    docs += [idx.default_docs[m] for m in sorted(modules) if m in idx.default_docs]
    if not docs:
        return None
    return "".join(f"---\n{d}\n...\n" for d in docs)


_FIX = ("Change spec.modules so that every listed stream and the streams it requires agree (see each stream's "
        "`dependencies` in the repo's modules.yaml).")


class _Conflict(Exception):
    """Module requirements that cannot hold together (turned into a ManifestError or a skipped default)."""


def _allows(allowed: list[str], stream: str) -> bool:
    """modulemd stream list semantics: [] any, ['a', 'b'] one of them, ['-a'] anything but a."""
    if not allowed:
        return True
    plus = [a for a in allowed if not a.startswith("-")]
    if f"-{stream}" in allowed:
        return False
    return stream in plus if plus else True


def _wanted(mod: str, allowed: list[str]) -> str:
    return f"module {mod}" + (f" (stream {' or '.join(allowed)})" if allowed else "")


def _stream_order(stream: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.\-_]", stream))
