"""Offline-plan scaling: validate + run the program under mocks + score + render, for 1,000 and 2,000 workloads.

Target on a 2-core machine: ≤ 10 s for 1,000 workloads and near-linear growth (2,000 ≤ 2.2× the time).
Run: `.venv/bin/python bench/plan_scale.py` (part of `make bench`). Prints a markdown table.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.generate import generated_cli_config
from components.app_network import analyse
from components.config import namespace_values
from components.validation import parse_spec
from offline.artifacts import write_artifacts
from offline.program import run_program


def one_plan(workloads: int) -> tuple[float, int]:
    config = generated_cli_config(workloads)
    started = time.perf_counter()
    spec = parse_spec(namespace_values(config))
    resources = run_program(config, "scale")
    target, plan, _report = analyse(spec)
    with tempfile.TemporaryDirectory() as out:
        write_artifacts(target, plan, resources, Path(out))
    return time.perf_counter() - started, len(resources)


def main() -> None:
    runs = 3
    rows = []
    for n in (1000, 2000):
        times = []
        count = 0
        for _ in range(runs):
            elapsed, count = one_plan(n)
            times.append(elapsed)
        rows.append((n, count, statistics.median(times), min(times), max(times)))
    print("| workloads | resources | median s | min s | max s |")
    print("|---:|---:|---:|---:|---:|")
    for n, count, med, lo, hi in rows:
        print(f"| {n} | {count} | {med:.2f} | {lo:.2f} | {hi:.2f} |")
    ratio = rows[1][2] / rows[0][2]
    print(f"\n2,000 / 1,000 workloads time ratio: {ratio:.2f}× (target ≤ 2.2×); 1,000 workloads: {rows[0][2]:.2f} s (target ≤ 10 s)")


if __name__ == "__main__":
    main()
