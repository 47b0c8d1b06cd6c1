"""`python -m rig up|down|status` (run from tests/e2e): the rig without pytest, for debugging and demos.
`up` leaves it running (like --keep-rig); `down` removes it."""

from __future__ import annotations

import argparse
import sys

from .rig import Rig, RigConfig, destroy, missing_prerequisites
from .util import DEFAULT_WORKDIR, TIMER


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rig")
    ap.add_argument("action", choices=["up", "down", "status", "check"])
    args = ap.parse_args(argv)
    if args.action == "check":
        missing = missing_prerequisites()
        print("\n".join(missing) or "the rig can run here")
        return 1 if missing else 0
    if args.action == "up":
        rig = Rig(RigConfig(keep=True)).up()
        rig.down()  # keep=True: releases the lock, leaves everything running
        print(TIMER.summary())
        print(f"export DOCKER_HOST={rig.engine.host if rig.engine else ''}")
        print(f"ssh -F {rig.ssh_config} node1")
        return 0
    if args.action == "down":
        destroy(DEFAULT_WORKDIR)
        return 0
    trap_log = DEFAULT_WORKDIR / "trap" / "connections.jsonl"
    print(f"workdir {DEFAULT_WORKDIR}; trap log {trap_log}:")
    print(trap_log.read_text() if trap_log.exists() else "(none)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
