"""YAML loading that remembers where each value came from, so errors can name a line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ManifestError

Path_ = tuple  # a key path such as ("spec", "repos", 0, "baseurl")


@dataclass
class Source:
    """A parsed YAML document plus the line of every key path in it."""

    file: Path
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def where(self, path: Path_) -> str:
        """'FILE line N' for the closest known ancestor of path."""
        p = tuple(path)
        while p and p not in self.lines:
            p = p[:-1]
        line = self.lines.get(p)
        return f"{self.file} line {line}" if line else str(self.file)


def dotted(path: Path_) -> str:
    """('spec', 'repos', 0, 'name') -> 'spec.repos[0].name'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _convert(node: yaml.Node, path: Path_, lines: dict[Path_, int], src: Path) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise ManifestError(f"{src} line {knode.start_mark.line + 1}: a mapping key must be a plain name.")
            key = knode.value
            if key in out:
                raise ManifestError(
                    f"{src} line {knode.start_mark.line + 1}: '{dotted(path + (key,))}' is given twice; "
                    "keep one of them."
                )
            out[key] = _convert(vnode, path + (key,), lines, src)
            lines[path + (key,)] = knode.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(v, path + (i,), lines, src) for i, v in enumerate(node.value)]
    # Scalars: let the safe constructor type them (bool, int, null, str) so 'onMedia: yes' behaves.
    return yaml.SafeLoader(" ").construct_object(node, deep=True)


def load_yaml(file: Path) -> Source:
    """Parse one YAML file; a syntax error becomes a ManifestError naming the line."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{file}: no such manifest file. Check the path you gave.") from None
    except OSError as e:
        raise ManifestError(f"{file}: cannot be read ({e.strerror}).") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ManifestError(f"{file}{where}: not valid YAML ({problem}). Fix the syntax and run again.") from None
    lines: dict[Path_, int] = {}
    data = _convert(node, (), lines, file) if node is not None else None
    return Source(file=file, data=data, lines=lines)
