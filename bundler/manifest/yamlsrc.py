"""YAML loading that remembers where each value came from, so errors can name a line.

The parse itself (PyYAML) is in yamlparse.py, imported only when parsed.py has no entry for the text: a warm
`bundler plan` does not import PyYAML at all (its import alone is ~100 M instructions).

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
from typing import TYPE_CHECKING, Any

from ..errors import ManifestError

if TYPE_CHECKING:
    from .parsed import ParseCache

Path_ = tuple  # a key path such as ("spec", "repos", 0, "baseurl")

MAX_FILE_BYTES = 1 << 20  # a real manifest is a few KiB
MAX_DEPTH = 64  # the schema needs 5 levels
MAX_VALUES = 20_000  # values after alias expansion; a real manifest has a few hundred
MAX_NUMBER_CHARS = 64  # longer "numbers" are a mistake or an attack (Python refuses > 4300 digits anyway)

CONTROL = {chr(c) for c in range(32) if chr(c) not in "\t\n\r"} | {"\x7f"}


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


def load_yaml(file: Path, cache: ParseCache | None = None) -> Source:
    """Parse one YAML file within the limits above; every problem becomes a ManifestError naming file and line.
    cache: where parsed texts are kept (see parsed.py); None parses every time."""
    from .parsed import cached_parse

    return cached_parse(file, read_text(file), cache)
