"""The YAML parse behind yamlsrc.load_yaml, bounded against hostile input (see yamlsrc): PyYAML is imported here
only, so only a text that parsed.py has not seen pays for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import ManifestError
from .yamlsrc import CONTROL, MAX_DEPTH, MAX_NUMBER_CHARS, MAX_VALUES, Path_, Source, TextFloat, TextInt, dotted, short

_SCALAR_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null")}
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses deep nesting and too many values before Python's recursion or memory."""

    def __init__(self, stream: str, file: Path):
        super().__init__(stream)
        self.file, self.depth, self.count = file, 0, 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:  # PyYAML's signature
        mark = self.peek_event().start_mark
        self.depth += 1
        self.count += 1
        try:
            if self.depth > MAX_DEPTH:
                raise ManifestError(f"{self.file} line {mark.line + 1}: values are nested more than {MAX_DEPTH} "
                                    "levels deep; a manifest needs about 5. Fix the brackets or indentation.")
            if self.count > MAX_VALUES:
                raise ManifestError(f"{self.file} line {mark.line + 1}: more than {MAX_VALUES} values; a manifest "
                                    "holds a few hundred. Is this the right file?")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _Converter:
    """Node graph -> plain dicts/lists/scalars, with lines; aliases are expanded under the same bounds."""

    def __init__(self, file: Path):
        self.file = file
        self.lines: dict[Path_, int] = {}
        self.count = 0
        self.constructor = yaml.SafeLoader("")

    def fail(self, node: yaml.Node, msg: str) -> ManifestError:
        return ManifestError(f"{self.file} line {node.start_mark.line + 1}: {msg}")

    def convert(self, node: yaml.Node, path: Path_, active: tuple = ()) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise self.fail(node, f"{dotted(path) or 'the document'}: expands to more than {MAX_VALUES} values "
                                  "through YAML aliases (*name); refusing it (an alias bomb?). Write the values out.")
        if len(path) > MAX_DEPTH or id(node) in active:
            raise self.fail(node, f"{dotted(path)}: an alias (*name) refers to a value that contains it, or aliases "
                                  f"nest deeper than {MAX_DEPTH} levels. Write the values out.")
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, active + (id(node),))
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ:
                raise self._bad_tag(node, path)
            return [self.convert(v, path + (i,), active + (id(node),)) for i, v in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)  # the composer makes only mapping, sequence and scalar nodes
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: Path_, active: tuple) -> dict:
        if node.tag != _MAP:
            raise self._bad_tag(node, path)
        out: dict[str, Any] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise self.fail(knode, f"{dotted(path) or 'the document'}: a mapping key must be a plain name.")
            key = knode.value
            if CONTROL.intersection(key):
                raise self.fail(knode, f"{dotted(path) or 'the document'}: the key {short(key)} contains a control "
                                       "character. Remove it.")
            if key in out:
                raise self.fail(knode, f"'{dotted(path + (key,))}' is given twice; keep one of them.")
            out[key] = self.convert(vnode, path + (key,), active)
            self.lines[path + (key,)] = knode.start_mark.line + 1
        return out

    def _bad_tag(self, node: yaml.Node, path: Path_) -> ManifestError:
        return self.fail(node, f"{dotted(path) or 'the document'}: the YAML tag {short(node.tag)} is not supported; "
                               "a manifest holds plain strings, numbers, booleans, lists and mappings. Remove the tag "
                               "(quote the value to make it a string).")

    def _scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        """Typed like the safe constructor (so 'onMedia: yes' is a bool), keeping the text of numbers."""
        tag, text = node.tag, node.value
        if tag == _TIMESTAMP:
            return text  # a date is only ever wanted as text here (a version such as 2024-01-01)
        if tag not in _SCALAR_TAGS:
            raise self._bad_tag(node, path)
        if tag == "tag:yaml.org,2002:str":
            if CONTROL.intersection(text):
                bad = next(c for c in text if c in CONTROL)
                raise self.fail(node, f"{dotted(path) or 'the document'}: the value contains the control character "
                                      f"U+{ord(bad):04X}. Remove it.")
            return text
        if tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float") and len(text) > MAX_NUMBER_CHARS:
            raise self.fail(node, f"{dotted(path) or 'the document'}: a number of {len(text)} characters; no "
                                  "manifest field takes one that long. Quote it if it is meant as text.")
        try:
            value = self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError, TypeError) as e:
            raise self.fail(node, f"{dotted(path) or 'the document'}: {short(text)} cannot be read as "
                                  f"{tag.rsplit(':', 1)[-1]} ({str(e).splitlines()[0]}). Quote it to make it "
                                  "a string.") from None
        if isinstance(value, float):
            value = TextFloat(value)
            value.text = text
        elif isinstance(value, int) and not isinstance(value, bool):
            value = TextInt(value)
            value.text = text
        return value


def parse(text: str, file: Path) -> Source:
    """The text of file as a Source; every problem becomes a ManifestError naming file and line."""
    loader = None
    try:
        loader = _BoundedLoader(text, file)  # the reader refuses control characters already here
        node = loader.get_single_node()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        if isinstance(e, yaml.reader.ReaderError):  # a character YAML does not allow (a control character)
            where = f" line {text.count(chr(10), 0, e.position) + 1}"
        problem = getattr(e, "problem", None) or str(e)
        raise ManifestError(f"{file}{where}: not valid YAML ({' '.join(problem.split())}). Fix the syntax and run "
                            "again.") from None
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        return Source(file=file, data=None)
    conv = _Converter(file)
    data = conv.convert(node, ())
    return Source(file=file, data=data, lines=conv.lines)
