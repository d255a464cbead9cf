"""The benchmarks' regression guard: the figures in bench/results/ against the project's speed targets.

`make bench` runs it last; it also runs alone on existing results files:

    .venv/bin/python bench/check.py                 # bench/results/*.json
    .venv/bin/python bench/check.py --results DIR   # another run's files (e.g. bench/run.py --out DIR)

One line per target: PASS (the target is met), WARN (missed, but within the "at worst" bound the issue allows a
busy shared machine), FAIL (past that bound, or past a target that has none), MISSING (the results file or the
figure is absent: a section was skipped or crashed). Exit 1 on any FAIL or MISSING (`--strict`: on WARN too).

It is not a timed test: it only reads what the benchmarks wrote. Each target is one row of `TARGETS`: a name, the
figure (a key path into a JSON file under bench/results/, or the ratio of two such figures) and its bound(s).
To guard a new figure, make its benchmark write it to a JSON file there and add a row.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

PLAN = "plan_scale.json"  # bench/plan_scale.py
PACK = "pack_scale.json"  # python -m offline.analyzer --generated N
DATA_PLANE = "results.json"  # bench/run.py
EASTWEST = "eastwest.json"  # bench/eastwest.py


@dataclass(frozen=True)
class Figure:
    """One number: `path` (keys, outermost first) into the JSON document `file` under the results directory."""

    file: str
    path: tuple[str, ...]

    def read(self, results: Path) -> float:
        """The number; KeyError naming what is missing."""
        source = results / self.file
        if not source.is_file():
            raise KeyError(f"{source} does not exist")
        value: Any = json.loads(source.read_text())
        for i, key in enumerate(self.path):
            if not isinstance(value, dict) or key not in value:
                raise KeyError(f"{self.file}: no {' > '.join(self.path[:i + 1])}")
            value = value[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise KeyError(f"{self.file}: {' > '.join(self.path)} is {value!r}, not a number")
        return float(value)

    def label(self) -> str:
        return f"{self.file}: {' > '.join(self.path)}"


@dataclass(frozen=True)
class Ratio:
    """numerator / denominator, e.g. the gateway's req/s over HAProxy's in the same run."""

    numerator: Figure
    denominator: Figure

    def read(self, results: Path) -> float:
        below = self.denominator.read(results)
        if below == 0:
            raise KeyError(f"{self.denominator.label()} is 0")
        return self.numerator.read(results) / below

    def label(self) -> str:
        return f"{self.numerator.label()} / {self.denominator.label()}"


@dataclass(frozen=True)
class Target:
    """`at_most` or `at_least` is the target; `worst` (optional, same direction) the bound past which it FAILs."""

    name: str
    figure: Figure | Ratio
    at_most: float | None = None
    at_least: float | None = None
    worst: float | None = None
    unit: str = ""
    source: str = ""  # where the target was set (an issue)

    def __post_init__(self) -> None:
        if (self.at_most is None) == (self.at_least is None):
            raise ValueError(f"{self.name}: give exactly one of at_most and at_least")

    def verdict(self, value: float) -> str:
        if self.at_most is not None:
            within, within_worst = value <= self.at_most, self.worst is not None and value <= self.worst
        else:
            assert self.at_least is not None
            within, within_worst = value >= self.at_least, self.worst is not None and value >= self.worst
        return "PASS" if within else "WARN" if within_worst else "FAIL"

    def bound(self) -> str:
        sign, value = ("≤", self.at_most) if self.at_most is not None else ("≥", self.at_least)
        worst = f" (worst {sign} {self.worst:g}{self.unit})" if self.worst is not None else ""
        return f"{sign} {value:g}{self.unit}{worst}"


def _plan(size: int, key: str) -> Figure:
    return Figure(PLAN, ("sizes", str(size), key))


def _pack(size: int, key: str) -> Figure:
    return Figure(PACK, ("generated", str(size), key))


def _limited(row: str, key: str) -> Figure:
    return Figure(DATA_PLANE, ("limited", "targets", row, key))


def _skew(row: str, key: str) -> Figure:
    return Figure(DATA_PLANE, ("skew", "summary", row, key))


def _eastwest(*path: str) -> Figure:
    return Figure(EASTWEST, path)


GATEWAY, HAPROXY, MINIMAL, NAIVE = "generated gateway", "HAProxy 2.6 (equivalent)", "minimal nginx (ceiling)", "naive tutorial nginx"

TARGETS: tuple[Target, ...] = (
    Target("plan, 1,000 workloads (median wall)", _plan(1000, "median_s"), at_most=5.0, worst=10.0, unit=" s", source="issue 19"),
    Target("plan, 2,000 / 1,000 workloads (median wall)", Ratio(_plan(2000, "median_s"), _plan(1000, "median_s")),
           at_most=2.1, unit="×", source="issue 19"),
    Target("pack, 1,000 workloads (total)", _pack(1000, "total_s"), at_most=3.0, worst=5.0, unit=" s", source="issue 19"),
    Target("pack, Analyze per resource", _pack(1000, "analyze_ms_per_resource"), at_most=0.5, unit=" ms", source="issue 19"),
    Target("gateway / HAProxy equivalent req/s at the CPU limit", Ratio(_limited(GATEWAY, "rps"), _limited(HAPROXY, "rps")),
           at_least=1.1, unit="×", source="issue 19"),
    Target("gateway / HAProxy equivalent p99 at the CPU limit", Ratio(_limited(GATEWAY, "p99_ms"), _limited(HAPROXY, "p99_ms")),
           at_most=1.0, unit="×", source="issue 19"),
    Target("gateway / minimal nginx CPU per request at the CPU limit",
           Ratio(_limited(GATEWAY, "cpu_us_per_req"), _limited(MINIMAL, "cpu_us_per_req")), at_most=1.15, unit="×", source="issue 19"),
    Target("gateway / naive nginx req/s at the CPU limit", Ratio(_limited(GATEWAY, "rps"), _limited(NAIVE, "rps")),
           at_least=2.5, unit="×", source="README, Benchmarks"),
    Target("latency_optimal / round_robin p99, skewed backends", Ratio(_skew("latency_optimal", "p99_ms"), _skew("round_robin", "p99_ms")),
           at_most=0.5, unit="×", source="README, Benchmarks"),
    Target("east-west hop, http: p99 added by the service proxy", _eastwest("hop", "http", "added_p99_ms"), at_most=0.5, unit=" ms",
           source="issue 18"),
    Target("east-west hop, grpc: p99 added by the service proxy", _eastwest("hop", "grpc", "added_p99_ms"), at_most=0.5, unit=" ms",
           source="issue 18"),
    Target("gRPC over a slow replica, heavy load: least_conn p99 / one connection direct",
           _eastwest("grpc_balancing", "heavy", "least_conn", "p99_ratio"), at_most=0.5, unit="×", source="issue 18"),
    Target("gRPC over a slow replica, light load: latency_optimal p99 / one connection direct",
           _eastwest("grpc_balancing", "light", "latency_optimal", "p99_ratio"), at_most=0.5, unit="×", source="issue 18"),
    Target("noisy neighbour: the quiet caller's success", _eastwest("noisy", "quiet_success"), at_least=0.999, source="issue 18"),
    Target("noisy neighbour: the quiet caller's p99 / its p99 alone", _eastwest("noisy", "quiet_p99_ratio"), at_most=1.2, unit="×",
           source="issue 18"),
)


def check(targets: Sequence[Target], results: Path) -> list[tuple[Target, str, str]]:
    """(target, verdict, what was read) per target."""
    rows = []
    for target in targets:
        try:
            value = target.figure.read(results)
        except KeyError as missing:
            rows.append((target, "MISSING", str(missing.args[0])))
            continue
        rows.append((target, target.verdict(value), f"{value:.3g}{target.unit}"))
    return rows


def _provenance(results: Path) -> list[str]:
    """When and how each results file was made, and the load average then: a figure is only as good as its run."""
    lines = []
    for name in sorted({t.figure.file if isinstance(t.figure, Figure) else t.figure.numerator.file for t in TARGETS}):
        path = results / name
        if not path.is_file():
            continue
        document = json.loads(path.read_text())
        load = document.get("loadavg_before") or document.get("load_before")
        lines.append(f"  {name}: {document.get('when', '?')}, `{document.get('command', '?')}`, load average before {load}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS, help="directory of the results files (default bench/results)")
    parser.add_argument("--strict", action="store_true", help="fail on WARN too (a target missed within its worst bound)")
    args = parser.parse_args(argv)
    rows = check(TARGETS, args.results)
    width = max(len(t.name) for t in TARGETS)
    for target, verdict, read in rows:
        print(f"{verdict:7} {target.name:{width}}  {read:>12}  target {target.bound()}  [{target.source}]")
    print("sources:", *_provenance(args.results), sep="\n")
    failing = {"FAIL", "MISSING"} | ({"WARN"} if args.strict else set())
    bad = [t.name for t, verdict, _ in rows if verdict in failing]
    print(f"bench/check.py: {len(rows) - len(bad)} of {len(rows)} targets met" + (f"; not met: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
