"""The verdict of `bundler verify`: every problem found (not just the first), as text or JSON, and its exit code."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BundlerError
from .sums import SUMS


class VerifyError(BundlerError):
    """The bundle could not be checked at all (not a tar archive, gpg missing): exit code 1."""


class BundleNotFound(VerifyError):
    """The path given does not exist or cannot be read: a bad command line, exit code 2 (as click's own)."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One bad file: its path (relative to the bundle's top directory when it has one) and what is wrong."""

    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


@dataclass
class Report:
    """The verdict; `ok` is True only if there are no problems at all."""

    bundle: Path
    top: str | None = None
    files_checked: int = 0
    bytes_hashed: int = 0
    signed_by: str | None = None
    omitted: int = 0  # a delta bundle's files left out because the base site holds them (rule R9)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def add(self, path: str, problem: str) -> None:
        self.problems.append(Problem(path, problem))

    def format(self) -> str:
        """Human text: a verdict line, then one line per problem (every one of them)."""
        if self.ok:
            sig = f"; signature by {self.signed_by} is valid" if self.signed_by else ""
            delta = (f"; delta bundle: {self.omitted} more listed files are omitted (the base site holds them; "
                     "install.py completes the bundle from there)") if self.omitted else ""
            return f"{self.bundle}: OK, {self.files_checked} files match {SUMS}{sig}{delta}"
        n = len(self.problems)
        head = (f"{self.bundle}: BAD, {n} problem{'s' if n != 1 else ''}. Do not install from it: copy the "
                "tarball again from the original (or rebuild it) and verify again.")
        return "\n".join([head, *(f"  {p}" for p in self.problems)])

    def to_json(self) -> dict:
        return {"bundle": str(self.bundle), "ok": self.ok, "top": self.top, "filesChecked": self.files_checked,
                "bytesHashed": self.bytes_hashed, "omitted": self.omitted, "signedBy": self.signed_by,
                "problems": [{"path": p.path, "problem": p.problem} for p in self.problems]}
