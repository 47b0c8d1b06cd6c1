"""EL8-style modularity: which packages are visible given default and requested module streams.

dnf hides (1) every package that belongs to a stream that is not active and (2) every non-modular package
whose name is also produced by an active stream ("modular filtering"). We reproduce exactly that rule
and carry the modulemd documents of the streams we ship into the bundle's repo, so dnf on the hosts
treats the shipped packages the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import ManifestError

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
        for mod, stream in other.defaults.items():
            self.defaults.setdefault(mod, stream)
            self.default_docs.setdefault(mod, other.default_docs[mod])

    def active(self, enabled: tuple[str, ...], source: str = "spec.modules") -> dict[str, str]:
        """module -> active stream: the defaults, overridden by the manifest's NAME:STREAM entries."""
        act = dict(self.defaults)
        for spec in enabled:
            mod, _, stream = spec.partition(":")
            if (mod, stream) not in self.streams:
                known = sorted(f"{m}:{s}" for (m, s) in self.streams if m == mod)
                raise ManifestError(
                    f"{source}: module stream '{spec}' is not in any repo's modules.yaml"
                    + (f" (available: {', '.join(known)})." if known else "; no repo has a module of that name.")
                )
            act[mod] = stream
        return act

    def hidden_and_modular(self, active: dict[str, str]) -> tuple[set[str], set[str], set[str]]:
        """(NEVRAs to hide, NEVRAs of active streams, package names produced by active streams)."""
        hidden: set[str] = set()
        visible: set[str] = set()
        for (mod, stream), st in self.streams.items():
            (visible if active.get(mod) == stream else hidden).update(st.artifacts)
        hidden -= visible
        names = {_NEVRA.match(n)["name"] for n in visible if _NEVRA.match(n)}
        return hidden, visible, names


def parse_modules_yaml(path: Path, source: str) -> ModuleIndex:
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
        elif kind == "modulemd-defaults":
            mod = str(data.get("module"))
            if data.get("stream") is not None:
                idx.defaults[mod] = str(data["stream"])
                idx.default_docs[mod] = body.strip("\n")
    return idx


def render_modules_yaml(idx: ModuleIndex, shipped: set[str]) -> str | None:
    """modules.yaml for the bundle: every stream that has a shipped artifact, plus its module's defaults."""
    docs: list[str] = []
    modules: set[str] = set()
    for key in sorted(idx.streams):
        st = idx.streams[key]
        if st.artifacts & shipped:
            docs += st.documents
            modules.add(st.module)
    docs += [idx.default_docs[m] for m in sorted(modules) if m in idx.default_docs]
    if not docs:
        return None
    return "".join(f"---\n{d}\n...\n" for d in docs)
