"""Synthetic access-log lines in the proxies' schema (components/render/access_log.py) for observe's tests and benchmark.

Requests arrive at the gateway at a fixed total rate, pick a route in proportion to its declared peak and a member
by the deployed split (`balancing.upstream_members`), and take an exponential upstream time with the given mean per
member (default: the member's declared response time). Every field of `access_log.FIELDS` is present, so a line has
the size and shape nginx writes.

`synthetic_traffic` adds what the service proxies log: each request a workload serves makes its declared calls
(`ratio` per request on average: the whole part always, the fraction as a coin flip; `ratios` overrides one edge),
each through the callee's service proxy of the plan — a member drawn by the proxy upstream's weights, at its address
on the proxy's side (`observation.proxy_address_map`), with the caller the proxy logs (`-` where callers share one
address) — and the callee's own calls in turn. `refused` makes a fraction of an edge's calls the proxy's refusal
over a limit, as each protocol logs it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from components.observe.observation import proxy_address_map
from components.plan.addressing import AddressMap
from components.plan.balancing import target_balancing, upstream_members
from components.plan.build import build_plan
from components.plan.deployment import deployment_of
from components.plan.ir import Proxy
from components.plan.service_proxy import UNKNOWN_CALLER
from components.render.access_log import FIELDS, SCHEMA_VERSION
from components.spec.schema import Spec

GATEWAY = "gateway"


def log_line(**values: str) -> str:
    """One line with every schema field ("" unless given), in the schema's order, as nginx prints it."""
    document: dict[str, object] = {"v": SCHEMA_VERSION}
    document.update({name: values.get(name, "") for name in FIELDS})
    return json.dumps(document, separators=(",", ":"))


@dataclass(frozen=True)
class _Served:
    """A request the gateway sent to a member, with its line."""

    workload: str
    member: int
    clock: float
    line: str


def _gateway_requests(spec: Spec, addresses: AddressMap, count: int, rate_rps: float, mean_ms: Mapping[tuple[str, int], float],
                      seed: int, start: float) -> Iterator[_Served]:
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
        yield _Served(workload, member, clock, log_line(
            time="2026-12-02T12:00:00+00:00", msec=f"{clock:.3f}", request_id=f"gw-1-{clock:.3f}-{i}-1",
            client=f"127.0.0.{1 + i % 50}", method="GET", host="shop.example", uri=f"{route.match.path}item/{i % 997}",
            route=route.name, status="200", request_time=f"{seconds + 0.0004:.3f}", upstream_addr=addresses[workload][member],
            upstream_status="200", upstream_connect_time="0.000", upstream_header_time=f"{seconds:.3f}",
            upstream_response_time=f"{seconds:.3f}", bytes_sent="512", proxy=GATEWAY))


def synthetic_lines(spec: Spec, addresses: AddressMap, count: int, rate_rps: float, mean_ms: Mapping[tuple[str, int], float],
                    seed: int = 1, start: float = 1_764_000_000.0) -> Iterator[str]:
    """`count` lines of the gateway alone."""
    for served in _gateway_requests(spec, addresses, count, rate_rps, mean_ms, seed, start):
        yield served.line


class _Calls:
    """The calls one request sets off, through each callee's service proxy of the plan."""

    def __init__(self, spec: Spec, mean_ms: Mapping[tuple[str, int], float], ratios: Mapping[str, float],
                 refused: Mapping[str, float], seed: int) -> None:
        plan = build_plan(spec, deployment_of(spec))
        self.spec = spec
        self.proxies: dict[str, Proxy] = {p.workload: p for p in plan.services if p.workload}
        self.identified = plan.deployment.callers == "link"
        self.addresses = proxy_address_map(spec)
        self.mean_ms, self.ratios, self.refused = mean_ms, ratios, refused
        self.rng = random.Random(f"calls-{seed}")
        self.made = 0

    def of(self, workload: str, clock: float, depth: int = 0) -> Iterator[tuple[str, str]]:
        rng = self.rng
        for call in self.spec.workload(workload).calls:
            ratio = self.ratios.get(f"{workload}.{call.workload}", call.ratio)
            for _ in range(int(ratio) + (rng.random() < ratio - int(ratio))):
                yield from self._call(workload, call.workload, clock + 0.0001 * (depth + 1), depth)

    def _call(self, caller: str, callee: str, clock: float, depth: int) -> Iterator[tuple[str, str]]:
        rng = self.rng
        proxy = self.proxies[callee]
        self.made += 1
        logged_caller = caller if self.identified else UNKNOWN_CALLER
        common = {"time": "2026-12-02T12:00:00+00:00", "msec": f"{clock:.3f}", "client": f"10.42.0.{200 + len(caller) % 50}",
                  "route": f"{logged_caller}.{callee}", "proxy": proxy.name, "caller": logged_caller, "callee": callee}
        tcp = proxy.protocol == "tcp"
        http = {} if tcp else {"method": "POST" if proxy.protocol == "grpc" else "GET", "host": callee, "uri": f"/call/{self.made % 997}",
                               "request_id": f"{caller}-{self.made}"}
        if rng.random() < self.refused.get(f"{caller}.{callee}", 0.0):
            status = {"tcp": "503", "grpc": "204"}.get(proxy.protocol, "429")
            yield proxy.name, log_line(**common, **http, status=status, request_time="0.000")
            return
        servers = [s for s in proxy.upstreams[0].servers if not s.backup]
        server = rng.choices(servers, [s.weight for s in servers])[0]
        declared = self.spec.workload(server.workload).replica_response_times_s()
        seconds = rng.expovariate(1000.0 / self.mean_ms.get((server.workload, server.replica), 1000.0 * declared[server.replica % len(declared)]))
        yield proxy.name, log_line(**common, **http, status="200", request_time=f"{seconds + 0.0003:.3f}",
                                   upstream_addr=self.addresses[server.workload][server.replica], upstream_status="" if tcp else "200",
                                   upstream_connect_time="0.000", upstream_header_time=f"{seconds:.3f}",
                                   upstream_response_time=f"{seconds:.3f}", bytes_sent="128")
        yield from self.of(server.workload, clock, depth + 1)


def synthetic_traffic(spec: Spec, addresses: AddressMap, count: int, rate_rps: float, mean_ms: Mapping[tuple[str, int], float],
                      ratios: Mapping[str, float] | None = None, refused: Mapping[str, float] | None = None, seed: int = 1,
                      start: float = 1_764_000_000.0) -> Iterator[tuple[str, str]]:
    """(proxy, line) of `count` gateway requests and every call they set off, in time order (each request's calls
    right after its line). The gateway's lines are `synthetic_lines`' with the same arguments."""
    calls = _Calls(spec, mean_ms, ratios or {}, refused or {}, seed)
    for served in _gateway_requests(spec, addresses, count, rate_rps, mean_ms, seed, start):
        yield GATEWAY, served.line
        yield from calls.of(served.workload, served.clock)


def _pairs(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = float(value)
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m testbed.access_log_gen --stack staging --lines 20000 --rate 200 --time api/1=120 [--calls] > access.log`."""
    import argparse
    import sys

    from components.targets import target_for
    from testbed.specs import load_stack

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--lines", type=int, default=10_000, help="requests at the gateway (with --calls, their calls add lines)")
    parser.add_argument("--rate", type=float, default=100.0, help="total req/s at the gateway")
    parser.add_argument("--time", action="append", default=[], help="<workload>/<member>=<mean ms> (default: as declared)")
    parser.add_argument("--calls", action="store_true", help="also the service proxies' lines of the calls each request makes")
    parser.add_argument("--ratio", action="append", default=[], help="<caller>.<callee>=<calls per request> (default: as declared)")
    parser.add_argument("--refused", action="append", default=[], help="<caller>.<callee>=<fraction refused over the limit>")
    parser.add_argument("--by-proxy", action="store_true", help="each proxy's lines together, as `docker logs` of each concatenated")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    spec = load_stack(args.stack)
    times = {}
    for item in args.time:
        member, _, ms = item.partition("=")
        workload, _, index = member.partition("/")
        times[(workload, int(index or 0))] = float(ms)
    addresses = target_for(spec).address_map()
    if not args.calls:
        for line in synthetic_lines(spec, addresses, args.lines, args.rate, times, args.seed):
            sys.stdout.write(line + "\n")
        return 0
    traffic = synthetic_traffic(spec, addresses, args.lines, args.rate, times, _pairs(args.ratio), _pairs(args.refused), args.seed)
    if not args.by_proxy:
        for _, line in traffic:
            sys.stdout.write(line + "\n")
        return 0
    grouped: dict[str, list[str]] = {}
    for proxy, line in traffic:
        grouped.setdefault(proxy, []).append(line)
    for lines in grouped.values():
        sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
