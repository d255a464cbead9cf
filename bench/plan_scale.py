"""Offline-plan scaling: validate + run the program under mocks + score + render, for 1,000 and 2,000 workloads.

Target on a 2-core machine: ≤ 10 s for 1,000 workloads and near-linear growth (2,000 ≤ 2.2× the time).
Run: `.venv/bin/python bench/plan_scale.py` (part of `make bench`). Prints a markdown table: the whole plan
(median, min, max of `--runs` runs) and, of it, the median time inside `run_program` (the program under mocks,
including the one garbage collection at its end). The machine's load average is printed with it, since a busy
machine moves these figures. `--source-positions` runs with the SDK's per-resource stack capture (off by
default in the offline runner; see offline/program.py), to measure what skipping it buys.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.generate import generated_cli_config
from components.resources.app_network import analyse
from components.resources.pulumi_config import namespace_values
from components.spec.validation import parse_spec
from offline.artifacts import write_artifacts
from offline.program import run_program


def one_plan(workloads: int, source_positions: bool = False) -> tuple[float, float, int]:
    """Seconds for the whole plan, seconds of it in the program run, and the number of registered resources."""
    config = generated_cli_config(workloads)
    started = time.perf_counter()
    spec = parse_spec(namespace_values(config))
    program_started = time.perf_counter()
    resources = run_program(config, "scale", source_positions=source_positions)
    program = time.perf_counter() - program_started
    target, plan, _report = analyse(spec)
    with tempfile.TemporaryDirectory() as out:
        write_artifacts(target, plan, resources, Path(out))
    return time.perf_counter() - started, program, len(resources)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per size (default 3)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000], help="workload counts (default 1000 2000)")
    parser.add_argument("--source-positions", action="store_true", help="keep the SDK's per-resource stack capture")
    args = parser.parse_args(argv)
    load_before = _load()
    rows = []
    for n in args.sizes:
        times: list[float] = []
        programs: list[float] = []
        count = 0
        for _ in range(args.runs):
            elapsed, program, count = one_plan(n, args.source_positions)
            times.append(elapsed)
            programs.append(program)
        rows.append((n, count, statistics.median(times), min(times), max(times), statistics.median(programs)))
    print("| workloads | resources | median s | min s | max s | of which program s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, count, med, lo, hi, program in rows:
        print(f"| {n} | {count} | {med:.2f} | {lo:.2f} | {hi:.2f} | {program:.2f} |")
    print(f"\n{args.runs} runs per size; source positions {'on' if args.source_positions else 'off'}; "
          f"load average (1/5/15 min) before {load_before}, after {_load()}; {os.cpu_count()} CPUs")
    if len(rows) >= 2:
        (n0, _, t0, *_), (n1, _, t1, *_) = rows[0], rows[1]
        line = f"{n1:,} / {n0:,} workloads time ratio: {t1 / t0:.2f}×"
        if (n0, n1) == (1000, 2000):
            line += f" (target ≤ 2.2×); 1,000 workloads: {t0:.2f} s (target ≤ 10 s)"
        print(line)


if __name__ == "__main__":
    main()
