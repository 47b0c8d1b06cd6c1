"""spec.kubernetes.upgradeThrough: the intermediate releases a bundle carries so that it can upgrade a cluster
one minor at a time (kubeadm supports no minor skips). The rules live here, apart from the loader, because the
build (bundle.json `upgradeFrom`) and the docs state the same arithmetic."""

from __future__ import annotations

import re

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


def version_tuple(version: str) -> tuple[int, int, int]:
    """'1.31.5' (or 'v1.31.5') -> (1, 31, 5); the loader has checked the form already."""
    m = _VERSION.match(version)
    if not m:
        raise ValueError(version)
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def minor_of(version: str) -> str:
    major, minor, _ = version_tuple(version)
    return f"{major}.{minor}"


def upgrade_from(target: str, hops: tuple[str, ...] | list[str]) -> str:
    """The oldest minor the bundle upgrades from: one below the first hop's minor (or the target's)."""
    major, minor, _ = version_tuple(hops[0] if hops else target)
    return f"{major}.{minor - 1}"


def hop_problem(target: str, hops: list[str]) -> tuple[int, str] | None:
    """(index of the offending hop, what is wrong and how to fix it), or None when the hops are a valid chain:
    ascending, one per minor, each one minor apart, the last one minor below the target."""
    t = version_tuple(target)
    chain = [version_tuple(h) for h in hops]
    rule = ("upgradeThrough lists the intermediate releases a cluster passes through, one per minor, ascending, "
            f"each one minor apart, the last one minor below version {target}")
    for i, v in enumerate(chain):
        if v[0] != t[0]:
            return i, f"{hops[i]} is another major release than version {target}; {rule}."
        if v >= t:
            return i, (f"{hops[i]} is not older than version {target}: a hop is a release the cluster passes "
                       f"through on its way to {target}. Remove it, or raise spec.kubernetes.version.")
        if i == 0:
            continue
        prev = chain[i - 1]
        if v[:2] == prev[:2]:
            return i, (f"{hops[i - 1]} and {hops[i]} are two hops in one minor ({v[0]}.{v[1]}); a patch release "
                       "within a minor needs no hop: keep the one to upgrade through (usually the newest patch).")
        if v < prev:
            return i, f"{hops[i]} comes after {hops[i - 1]} but is older: list the hops in ascending order."
        if v[1] != prev[1] + 1:
            missing = ", ".join(f"{v[0]}.{m}" for m in range(prev[1] + 1, v[1]))
            return i, (f"there is a gap between {hops[i - 1]} and {hops[i]}: kubeadm upgrades one minor at a time, "
                       f"so the chain needs a hop in {missing} too (add e.g. {v[0]}.{prev[1] + 1}.x).")
    if chain and chain[-1][1] != t[1] - 1:
        last = chain[-1]
        if last[1] == t[1]:
            why = (f"it is in the target's own minor ({t[0]}.{t[1]}); a patch upgrade within {t[0]}.{t[1]} needs "
                   "no hop: remove it")
        else:
            missing = ", ".join(f"{t[0]}.{m}" for m in range(last[1] + 1, t[1]))
            why = f"the chain skips {missing}: add a hop in {missing}"
        return len(chain) - 1, (f"the last hop {hops[-1]} must be one minor below version {target} "
                                f"({t[0]}.{t[1] - 1}.x), but {why}.")
    return None
