"""Offline-plan scaling: validate + run the program under mocks + score + render, for 1,000 and 2,000 workloads.

Target on a 2-core machine (issue 19): ≤ 5 s for 1,000 workloads (≤ 10 s at worst) and near-linear growth (2,000 ≤
2.1× the time). Run: `.venv/bin/python bench/plan_scale.py` (part of `make bench`). Prints a markdown table: the
whole plan (median, min, max of `--runs` runs, wall and CPU time, each run in a fresh interpreter as `make plan` is)
and, of it, the median time inside `run_program` (the program under mocks, the run's garbage frozen, not collected,
as in `make plan`), and writes the same figures to bench/results/plan_scale.json (`--out`), which bench/check.py
compares with the targets. The machine's load average is printed with it, since a busy machine moves the wall times
(CPU time is steadier). `--source-positions` runs with the SDK's per-resource stack capture (off by default in the
offline runner; see offline/program.py), to measure what skipping it buys.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.generate import generated_cli_config
from components.resources.pulumi_config import namespace_values
from components.spec.validation import parse_spec
from offline.artifacts import write_artifacts
from offline.program import run_program

RESULTS = Path(__file__).resolve().parent / "results"


def one_plan(workloads: int, source_positions: bool = False, one_shot: bool = False) -> tuple[float, float, float, int]:
    """Seconds for the whole plan (wall, CPU), wall seconds of it in the program run, and the number of registered
    resources. `one_shot` as `make plan` runs it: the process exits after this plan (see offline/program.py)."""
    config = generated_cli_config(workloads)
    started, cpu_started = time.perf_counter(), time.process_time()
    parse_spec(namespace_values(config))  # as make plan: the config is validated before the program runs
    program_started = time.perf_counter()
    finished: dict[str, Any] = {}
    resources = run_program(config, "scale", source_positions=source_positions, one_shot=one_shot, program_globals=finished)
    program = time.perf_counter() - program_started
    _target, plan, configs, _report = finished["app"].analysis
    with tempfile.TemporaryDirectory() as out:
        write_artifacts(plan, configs, resources, Path(out))
    return time.perf_counter() - started, time.process_time() - cpu_started, program, len(resources)


def _fresh_process_plan(workloads: int, source_positions: bool) -> tuple[float, float, float, int]:
    """`one_plan` in a new interpreter, as `make plan` runs: nothing warmed by an earlier run, garbage left to exit."""
    command = [sys.executable, __file__, "--child", str(workloads)] + (["--source-positions"] if source_positions else [])
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    wall, cpu, program, count = json.loads(done.stdout.splitlines()[-1])
    return float(wall), float(cpu), float(program), int(count)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per size (default 3)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000], help="workload counts (default 1000 2000)")
    parser.add_argument("--source-positions", action="store_true", help="keep the SDK's per-resource stack capture")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where plan_scale.json goes (default bench/results)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)  # one plan of that size, its figures as JSON
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(one_plan(args.child, args.source_positions, one_shot=True)))
        return
    load_before = _load()
    sizes: dict[str, dict[str, Any]] = {}
    for n in args.sizes:
        walls: list[float] = []
        cpus: list[float] = []
        programs: list[float] = []
        count = 0
        for _ in range(args.runs):
            wall, cpu, program, count = _fresh_process_plan(n, args.source_positions)
            walls.append(wall)
            cpus.append(cpu)
            programs.append(program)
        sizes[str(n)] = {"resources": count, "median_s": statistics.median(walls), "min_s": min(walls), "max_s": max(walls),
                         "cpu_median_s": statistics.median(cpus), "cpu_min_s": min(cpus), "cpu_max_s": max(cpus),
                         "program_median_s": statistics.median(programs), "runs_s": walls, "cpu_runs_s": cpus}
    print("| workloads | resources | median s | min s | max s | CPU median s | CPU min s | of which program s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, row in sizes.items():
        print(f"| {n} | {row['resources']} | {row['median_s']:.2f} | {row['min_s']:.2f} | {row['max_s']:.2f} | "
              f"{row['cpu_median_s']:.2f} | {row['cpu_min_s']:.2f} | {row['program_median_s']:.2f} |")
    load_after = _load()
    print(f"\n{args.runs} runs per size; source positions {'on' if args.source_positions else 'off'}; "
          f"load average (1/5/15 min) before {load_before}, after {load_after}; {os.cpu_count()} CPUs")
    if len(sizes) >= 2:
        (n0, r0), (n1, r1) = list(sizes.items())[:2]
        line = (f"{int(n1):,} / {int(n0):,} workloads time ratio: {r1['median_s'] / r0['median_s']:.2f}× wall, "
                f"{r1['cpu_median_s'] / r0['cpu_median_s']:.2f}× CPU")
        if (n0, n1) == ("1000", "2000"):
            line += f" (target ≤ 2.1×); 1,000 workloads: {r0['median_s']:.2f} s (target ≤ 5 s, ≤ 10 s at worst)"
        print(line)
    args.out.mkdir(parents=True, exist_ok=True)
    document = {"command": "python bench/plan_scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpus": os.cpu_count(), "runs": args.runs,
                "source_positions": args.source_positions, "loadavg_before": load_before, "loadavg_after": load_after, "sizes": sizes}
    (args.out / "plan_scale.json").write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main()
