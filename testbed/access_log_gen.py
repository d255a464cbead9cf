"""Synthetic access-log lines in the gateway's schema (components/render/access_log.py) for observe's tests and benchmark.

Requests arrive at a fixed total rate, pick a route in proportion to its declared peak and a member by the
deployed split (`balancing.upstream_members`), and take an exponential upstream time with the given mean per
member (default: the member's declared response time). Every field of `access_log.FIELDS` is present, so a line has the size and shape nginx writes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping

from components.plan.addressing import AddressMap
from components.plan.balancing import target_balancing, upstream_members
from components.render.access_log import FIELDS, SCHEMA_VERSION
from components.spec.schema import Spec


def log_line(**values: str) -> str:
    """One line with every schema field ("" unless given), in the schema's order, as nginx prints it."""
    document: dict[str, object] = {"v": SCHEMA_VERSION}
    document.update({name: values.get(name, "") for name in FIELDS})
    return json.dumps(document, separators=(",", ":"))


def synthetic_lines(spec: Spec, addresses: AddressMap, count: int, rate_rps: float, mean_ms: Mapping[tuple[str, int], float],
                    seed: int = 1, start: float = 1_764_000_000.0) -> Iterator[str]:
    rng = random.Random(seed)
    routes = [r for r in spec.routes if spec.peak(r.name).peak_rps > 0] or list(spec.routes)
    weights = [spec.peak(r.name).peak_rps or 1.0 for r in routes]
    members = {r.name: upstream_members(r, spec, target_balancing(spec.target)) for r in routes}
    clock = start
    for i in range(count):
        clock += rng.expovariate(rate_rps)
        route = rng.choices(routes, weights)[0]
        choices = members[route.name]
        workload, member, _ = rng.choices(choices, [float(share) or 1e-9 for _, _, share in choices])[0]
        declared = spec.workload(workload).replica_response_times_s()
        seconds = rng.expovariate(1000.0 / mean_ms.get((workload, member), 1000.0 * declared[member % len(declared)]))
        yield log_line(time="2026-12-02T12:00:00+00:00", msec=f"{clock:.3f}", request_id=f"gw-1-{clock:.3f}-{i}-1",
                       client=f"127.0.0.{1 + i % 50}", method="GET", host="shop.example", uri=f"{route.match.path}item/{i % 997}",
                       route=route.name, status="200", request_time=f"{seconds + 0.0004:.3f}",
                       upstream_addr=addresses[workload][member], upstream_status="200", upstream_connect_time="0.000",
                       upstream_header_time=f"{seconds:.3f}", upstream_response_time=f"{seconds:.3f}", bytes_sent="512")


def main(argv: list[str] | None = None) -> int:
    """`python -m testbed.access_log_gen --stack staging --lines 20000 --rate 200 --time api/1=120 > access.log`."""
    import argparse
    import sys

    from components.targets import target_for
    from testbed.specs import load_stack

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=100.0, help="total req/s")
    parser.add_argument("--time", action="append", default=[], help="<workload>/<member>=<mean ms> (default: as declared)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    spec = load_stack(args.stack)
    times = {}
    for item in args.time:
        member, _, ms = item.partition("=")
        workload, _, index = member.partition("/")
        times[(workload, int(index or 0))] = float(ms)
    for line in synthetic_lines(spec, target_for(spec).address_map(), args.lines, args.rate, times, args.seed):
        sys.stdout.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
