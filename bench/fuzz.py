"""Differential fuzzing at scale: `python bench/fuzz.py --examples 10000 [--workers 2]`.

Every example draws (testbed/fuzzspecs.py, from `random.Random(f"{seed}-{index}")`, so any example can be redrawn)
an adversarial stack (docker or kubernetes) and 8-30 requests around its routes and checks
(testbed/fuzzcheck.py): a valid stack passes `nginx -t` and real nginx routes each request where the independent
oracle says; a faulty copy of it gets one report naming every injected problem; every `--entry-every`-th example
also runs the faulty stack through the real entry point (`python -m offline.plan`). Failures do not stop the run:
they are counted by category, and the smallest failing example of each category is reduced (routes and requests
dropped while the failure stays) and printed. Prints examples run, failures, time; exit 1 if anything failed.
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import os
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from testbed.fuzzcheck import Finding, InvalidDrawError, ProjectCopy, check_entry_point, check_invalid, check_valid
from testbed.fuzzspecs import Generated, generate_requests, generate_stack, inject_faults
from testbed.nginx_oracle import Request


@dataclass
class Tally:
    examples: int = 0
    requests: int = 0
    entry_point: int = 0
    redrawn: int = 0  # "valid" draws that were invalid for a known reason: their report checked, nothing run on nginx
    failing_examples: int = 0
    findings: dict[str, int] = field(default_factory=dict)
    smallest: dict[str, tuple[int, str, dict[str, Any], list[Request], str]] = field(default_factory=dict)  # kind, raw, requests

    def add(self, findings: list[Finding], kind: str, raw: dict[str, Any], reqs: list[Request]) -> None:
        size = len(json.dumps(raw)) + 50 * len(reqs)
        for finding in findings:
            self.findings[finding.category] = self.findings.get(finding.category, 0) + 1
            if finding.category not in self.smallest or size < self.smallest[finding.category][0]:
                self.smallest[finding.category] = (size, kind, raw, reqs, finding.detail)


def _worker(args: tuple[int, int, int, int, float]) -> Tally:
    """Examples `first`..`first + count - 1`; example i draws from `random.Random(f"{seed}-{i}")` (reproducible).
    Stops early, with what it has, once `deadline` (a time.time()) has passed."""
    first, count, run_seed, entry_every, deadline = args
    tally = Tally()
    project = ProjectCopy() if entry_every else None
    progress = max(1, count // 10)
    try:
        for i in range(first, first + count):
            if time.time() > deadline:
                break
            rng = random.Random(f"{run_seed}-{i}")
            generated = generate_stack(rng)
            reqs = generate_requests(rng, generated)
            raw, expected = inject_faults(rng, generated)
            tally.examples += 1
            tally.requests += len(reqs)
            try:
                found = check_valid(generated, reqs)
            except InvalidDrawError:
                tally.redrawn += 1
                found = []
            tally.add(found, f"valid #{i}", generated.raw, reqs)
            bad = check_invalid(raw, expected)
            tally.add(bad, f"invalid #{i}", raw, [])
            failed = bool(found or bad)
            if project is not None and i % entry_every == 0:
                tally.entry_point += 1
                entry = check_entry_point(project, raw, expected, duplicate_key=i % (2 * entry_every) == 0)
                tally.add(entry, f"entry #{i}", raw, [])
                failed = failed or bool(entry)
            tally.failing_examples += failed
            if tally.examples % progress == 0:
                print(f"  examples {first}..: {tally.examples}/{count}, {tally.failing_examples} failing", file=sys.stderr, flush=True)
    finally:
        if project is not None:
            project.remove()
    return tally


def _reduce(raw: dict[str, Any], reqs: list[Request], category: str) -> tuple[dict[str, Any], list[Request], str]:
    """Drop requests, then routes, while a finding of `category` remains (valid-stack findings only)."""
    def failing(candidate: dict[str, Any], candidate_reqs: list[Request]) -> str | None:
        try:
            found = check_valid(Generated(candidate, _examples(candidate)), candidate_reqs)
        except Exception:  # a reduction the generator would never produce (e.g. a limit left unused)
            return None
        return next((f.detail for f in found if f.category == category), None)

    detail = failing(raw, reqs)
    if detail is None:
        return raw, reqs, ""
    for request in reqs:  # one request that still fails is enough
        one = failing(raw, [request])
        if one is not None:
            reqs, detail = [request], one
            break
    i = 0
    while i < len(raw["routes"]) and len(raw["routes"]) > 1:
        candidate = copy.deepcopy(raw)
        del candidate["routes"][i]
        candidate["traffic"] = {k: v for k, v in candidate.get("traffic", {}).items() if k != raw["routes"][i]["name"]}
        again = failing(candidate, reqs)
        if again is not None:
            raw, detail = candidate, again
        else:
            i += 1
    return raw, reqs, detail


def _examples(raw: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    return {r["name"]: (r["match"]["path"],) for r in raw["routes"]}


def _merge(tallies: list[Tally]) -> Tally:
    total = Tally()
    for t in tallies:
        total.examples += t.examples
        total.requests += t.requests
        total.entry_point += t.entry_point
        total.redrawn += t.redrawn
        total.failing_examples += t.failing_examples
        for category, count in t.findings.items():
            total.findings[category] = total.findings.get(category, 0) + count
        for category, item in t.smallest.items():
            if category not in total.smallest or item[0] < total.smallest[category][0]:
                total.smallest[category] = item
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--entry-every", type=int, default=100, help="run the real entry point on every N-th faulty stack (0: never)")
    parser.add_argument("--max-seconds", type=float, default=float("inf"), help="stop drawing examples after this long")
    parser.add_argument("--no-reduce", action="store_true", help="print the smallest failing examples as drawn")
    args = parser.parse_args(argv)
    started = time.monotonic()
    counts = [args.examples // args.workers + (i < args.examples % args.workers) for i in range(args.workers)]
    deadline = time.time() + args.max_seconds
    shares = [(sum(counts[:i]), counts[i], args.seed, args.entry_every, deadline) for i in range(args.workers)]
    if args.workers == 1:
        tallies = [_worker(shares[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            tallies = pool.map(_worker, shares)
    total = _merge(tallies)
    elapsed = time.monotonic() - started
    print(f"netopt fuzz: {total.examples} examples ({total.examples - total.redrawn} valid stacks on nginx with {total.requests} requests, "
          f"{total.redrawn} drawn valid but invalid by a name collision or a regex PCRE2 refuses, not run on nginx; "
          f"{total.examples} faulty stacks, {total.entry_point} through python -m offline.plan), {args.workers} worker(s), seed {args.seed}")
    if total.examples < args.examples:
        print(f"stopped by --max-seconds {args.max_seconds:g} after {total.examples} of {args.examples} examples")
    print(f"time: {elapsed:.0f} s ({total.examples / elapsed:.1f} examples/s)")
    print(f"failures: {total.failing_examples} failing examples, {sum(total.findings.values())} findings")
    for category, count in sorted(total.findings.items(), key=lambda kv: -kv[1]):
        _, kind, raw, reqs, detail = total.smallest[category]
        if kind.startswith("valid") and not args.no_reduce:
            raw, reqs, reduced = _reduce(raw, reqs, category)
            detail = reduced or detail
        print(f"\n[{count}x] {category}\n  {detail.splitlines()[0] if detail else ''}")
        print(f"  smallest {kind} stack: {json.dumps({k: v for k, v in raw.items() if k in ('target', 'gateway', 'routes', 'rate_limits')})}")
    return 1 if total.failing_examples else 0


if __name__ == "__main__":
    sys.exit(main())
