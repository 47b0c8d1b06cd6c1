"""Run every benchmark in one go (`make bench`): each prints its own table and ratio."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = [
    ["images_vs_skopeo.py"],
    ["rpm_vs_dnf.py"],
    ["rpm_vs_dnf.py", "--latency-ms", "50"],
    ["plan_vs_dnf.py"],
    ["registry_populate.py"],
    ["write_vs_cp.py", "--old"],
    ["write_vs_cp.py", "--full"],
    ["write_vs_cp.py", "--full", "--format", "tar"],
    ["sbom_scale.py"],
]

if __name__ == "__main__":
    failed = 0
    for args in RUNS:
        print(f"\n=== {' '.join(args)} ===", flush=True)
        failed |= subprocess.call([sys.executable, str(HERE / args[0]), *args[1:]])
    sys.exit(failed)
