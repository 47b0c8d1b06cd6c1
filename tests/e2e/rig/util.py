"""Small helpers shared by the rig modules: bounded subprocess calls, stage timing, the rig lock."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_WORKDIR = Path(os.environ.get("AIRGAP_RIG_WORKDIR", "/var/tmp/airgap-rig"))
# One lock per machine, whatever the work dir: the network name, subnet and container names are fixed.
LOCK_PATH = Path(os.environ.get("AIRGAP_RIG_LOCK", "/var/tmp/airgap-rig.lock"))


class RigError(RuntimeError):
    """The rig could not be set up or a rig command failed."""


def log(msg: str) -> None:
    """Rig progress on stderr (shown by pytest with -s, and in the captured output on failure)."""
    print(f"[rig {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(
    args: Sequence[str],
    *,
    timeout: float = 120,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input: bytes | str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    capture: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command with a hard timeout; text output; raise RigError with its output when it fails."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    if isinstance(input, bytes):
        input = input.decode()
    try:
        cp = subprocess.run(
            list(args),
            timeout=timeout,
            env=full_env,
            input=input,
            cwd=cwd,
            text=True,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise RigError(f"timed out after {timeout:.0f}s: {shlex.join(args)}") from exc
    except FileNotFoundError as exc:
        raise RigError(f"command not found: {args[0]} (running {shlex.join(args)})") from exc
    if check and cp.returncode != 0:
        raise RigError(
            f"exit {cp.returncode}: {shlex.join(args)}\n--- stdout\n{(cp.stdout or '')[-4000:]}"
            f"\n--- stderr\n{(cp.stderr or '')[-4000:]}"
        )
    return cp


def wait_until(what: str, probe, *, timeout: float, interval: float = 0.5, max_tries: int = 10_000) -> None:
    """Call probe() until it returns truthy; bounded by time and by count. Raises RigError on timeout."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    for _ in range(max_tries):
        try:
            if probe():
                return
        except Exception as exc:  # noqa: BLE001 - the probe's failure is reported on timeout
            last_exc = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    detail = f" (last error: {last_exc})" if last_exc else ""
    raise RigError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")


@dataclass
class StageTimer:
    """Measures named stages; prints each one as it ends and keeps them for a summary."""

    stages: list[tuple[str, float, int]] = field(default_factory=list)  # (name, seconds, nesting depth)
    _depth: int = 0

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage; stages may nest (the summary indents them and totals only the outer ones)."""
        t0 = time.monotonic()
        log(f"stage {name} ...")
        ok = False
        depth = self._depth
        self._depth += 1
        try:
            yield
            ok = True
        finally:
            self._depth = depth
            dt = time.monotonic() - t0
            self.stages.append((name if ok else f"{name} (FAILED)", dt, depth))
            log(f"stage {name}: {dt:.1f}s{'' if ok else ' FAILED'}")

    def ordered(self) -> list[tuple[str, float, int]]:
        """Stages in start order (they are recorded when they end, inner ones first)."""
        out: list[tuple[str, float, int]] = []
        pending: list[tuple[str, float, int]] = []
        for st in self.stages:
            if st[2] > 0:
                pending.append(st)
            else:
                out.append(st)
                out.extend(pending)
                pending = []
        return out + pending

    def summary(self) -> str:
        lines = [f"  {'  ' * d}{n:<{44 - 2 * d}} {dt:7.1f}s" for n, dt, d in self.ordered()]
        total = sum(dt for _, dt, d in self.stages if d == 0)
        return "\n".join(["airgap rig stage times:", *lines, f"  {'total':<44} {total:7.1f}s"])

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(
            [{"stage": n, "seconds": round(dt, 2), "depth": d} for n, dt, d in self.ordered()], indent=2))


TIMER = StageTimer()


@contextlib.contextmanager
def rig_lock(workdir: Path, timeout: float, path: Path | None = None) -> Iterator[None]:
    """One rig per machine: the network name, subnet and node names are fixed, so concurrent test
    sessions (other engineers, other CI jobs) take turns. Bounded wait."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = path or LOCK_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = path.read_text().strip() or "?"
                    raise RigError(
                        f"the rig is in use by another session ({holder}) for more than {timeout:.0f}s"
                    ) from None
                if not announced:
                    log(f"waiting for the rig lock {path} (held by {path.read_text().strip() or '?'})")
                    announced = True
                time.sleep(2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)
