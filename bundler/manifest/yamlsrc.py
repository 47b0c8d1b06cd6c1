"""YAML loading that remembers where each value came from, so errors can name a line.

It is also the manifest's line of defence against hostile input: a manifest may come from anyone, so
reading one must never hang, exhaust memory or crash. Files are opened without blocking and must be
regular files of bounded size; text must be UTF-8 without NUL; nesting, values and alias expansion are
bounded ("billion laughs"); only plain YAML types are built (no custom tags).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ManifestError

Path_ = tuple  # a key path such as ("spec", "repos", 0, "baseurl")

MAX_FILE_BYTES = 1 << 20  # a real manifest is a few KiB
MAX_DEPTH = 64  # the schema needs 5 levels
MAX_VALUES = 20_000  # values after alias expansion; a real manifest has a few hundred
MAX_NUMBER_CHARS = 64  # longer "numbers" are a mistake or an attack (Python refuses > 4300 digits anyway)

_SCALAR_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null")}
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_CONTROL = {chr(c) for c in range(32) if chr(c) not in "\t\n\r"} | {"\x7f"}


class TextInt(int):
    """An int that remembers how it was written, so '010' or '1_0' read as a name can be explained."""

    text: str = ""


class TextFloat(float):
    """A float that remembers how it was written: `version: 1.30` is 1.3, and the message must say "1.30"."""

    text: str = ""


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


def short(value: Any, limit: int = 60) -> str:
    """repr(value), cut to a readable length: hostile values must not flood the one-paragraph error."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "...'" + f" ({len(text)} characters)"


def dotted(path: Path_) -> str:
    """('spec', 'repos', 0, 'name') -> 'spec.repos[0].name'."""
    out = ""
    for part in path:
        if isinstance(part, str) and len(part) > 40:
            part = part[:37] + "..."
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def read_text(file: Path, what: str = "manifest file") -> str:
    """The UTF-8 text of a regular file of at most MAX_FILE_BYTES, read without ever blocking.

    O_NONBLOCK makes opening a FIFO return at once; fstat on the open descriptor (no race with a rename)
    then refuses FIFOs, devices (/dev/zero), sockets and directories before a byte is read.
    """
    name = str(file)
    if "\x00" in name:
        raise ManifestError(f"{name!r}: the {what} name contains a NUL character. Give a plain file path.")
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ManifestError(f"{file}: no such {what}. Check the path you gave.") from None
    except OSError as e:
        raise ManifestError(f"{file}: the {what} cannot be opened ({e.strerror}). Check the path and its "
                            "permissions.") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode)
                    else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                    else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
            raise ManifestError(f"{file}: is {kind}; a {what} must be a regular file. Give the path of a YAML file.")
        if st.st_size > MAX_FILE_BYTES:
            raise ManifestError(f"{file}: the {what} is {st.st_size} bytes; at most {MAX_FILE_BYTES} bytes "
                                "(1 MiB) are accepted. Is this the right file?")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ManifestError(f"{file}: the {what} cannot be read ({e.strerror}).") from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise ManifestError(f"{file}: the {what} is larger than {MAX_FILE_BYTES} bytes (1 MiB). Is this the right "
                            "file?")
    if b"\x00" in data:
        line = data.count(b"\n", 0, data.index(b"\x00")) + 1
        raise ManifestError(f"{file} line {line}: the {what} contains a NUL byte: it is a binary file, not YAML "
                            "text. Give the path of the YAML manifest.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ManifestError(f"{file} line {line}: the {what} is not UTF-8 text (byte 0x{data[e.start]:02x} at "
                            f"offset {e.start}). Save it as UTF-8.") from None
    return text[1:] if text.startswith("\ufeff") else text


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
            if _CONTROL.intersection(key):
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
            if _CONTROL.intersection(text):
                bad = next(c for c in text if c in _CONTROL)
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


def load_yaml(file: Path) -> Source:
    """Parse one YAML file within the limits above; every problem becomes a ManifestError naming file and line."""
    text = read_text(file)
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
