"""How traffic is shared between replicas: the weights nginx gets and the shares the capacity model assumes.

A route's declared split between workloads (e.g. api 90 / api-canary 10) always holds; the algorithm decides
how a workload's share is spread over its replicas. nginx needs integer weights, so shares are kept as exact
fractions and scaled to the smallest integers with the same ratios.
"""

from __future__ import annotations

import math
from fractions import Fraction

from components.spec import Algorithm, Route, Spec, Workload

MAX_WEIGHT = 1000


def service_rate(workload: Workload, replica: int) -> Fraction:
    """Requests per second one replica completes at full concurrency: max_concurrency / response time."""
    t = Fraction(workload.replica_response_times_s()[replica]).limit_denominator(1_000_000)
    return Fraction(workload.max_concurrency) / t


def _within_workload(workload: Workload, by_service_rate: bool, use_declared_weights: bool) -> list[Fraction]:
    if by_service_rate:
        rates = [service_rate(workload, r) for r in range(workload.replicas)]
    elif use_declared_weights and workload.replica_weights:
        rates = [Fraction(w) for w in workload.replica_weights]
    else:
        rates = [Fraction(1)] * workload.replicas
    total = sum(rates)
    return [rate / total for rate in rates]


def nginx_shares(route: Route, spec: Spec) -> list[tuple[str, int, Fraction]]:
    """(workload, replica, share of the route's requests) as the nginx upstream weights will encode it."""
    algorithm = spec.gateway.algorithm
    return _shares(route, spec, by_service_rate=algorithm == "latency_weighted", use_declared_weights=algorithm == "weighted")


def expected_shares(route: Route, spec: Spec, algorithm: Algorithm | None = None) -> list[tuple[str, int, Fraction]]:
    """The share each replica is expected to serve: least_conn sends work in proportion to service rate."""
    algorithm = algorithm or spec.gateway.algorithm
    adaptive = algorithm in ("latency_weighted", "least_conn")
    return _shares(route, spec, by_service_rate=adaptive, use_declared_weights=algorithm == "weighted")


def balancing_mode(spec: Spec) -> str:
    """Who spreads a workload's share over its replicas.

    "gateway": nginx picks each replica (Docker: every replica has a fixed address, one upstream server each).
    "service": nginx picks the workload's Service, the platform spreads its connections over the ready pods
    (Kubernetes: pod addresses change on every restart, a ClusterIP stays fixed for the Service's lifetime).
    """
    return "service" if spec.target == "kubernetes" else "gateway"


def upstream_members(route: Route, spec: Spec) -> list[tuple[str, int, Fraction]]:
    """The servers nginx balances for a route, with their share: (workload, member index, share).

    With gateway balancing a member is a replica (the index is the replica number), as `nginx_shares`. With
    service balancing a member is a workload's Service (index 0) and carries the workload's whole split.
    """
    if balancing_mode(spec) == "service":
        total_weight = sum(b.weight for b in route.backends)
        return [(b.workload, 0, Fraction(b.weight, total_weight)) for b in route.backends]
    return nginx_shares(route, spec)


def member_max_conns(workload: Workload, spec: Spec) -> int:
    """nginx's max_conns for one upstream member: one replica's concurrency, or all replicas' behind a Service."""
    if balancing_mode(spec) == "service":
        return workload.max_concurrency * spec.max_replicas(workload.name)
    return workload.max_concurrency


def member_max_fails(spec: Spec) -> int | None:
    """nginx's max_fails for one upstream member; None: the gateway's passive_health.max_fails.

    A Service member is a whole workload: ejecting it after a few failed attempts would take every healthy pod of
    the workload out with the failing one, so passive ejection is off (0) and per-pod health is the readiness probe.
    """
    return 0 if balancing_mode(spec) == "service" else None


def service_shares(route: Route, spec: Spec) -> list[tuple[str, int, Fraction]]:
    """Expected shares when a Service spreads a workload's replicas: the route split holds, each replica of a
    workload gets an equal part whatever the algorithm (kube-proxy picks a ready endpoint per connection, at
    random or in turn, blind to load, weights and per-replica response times)."""
    return _shares(route, spec, by_service_rate=False, use_declared_weights=False)


def _shares(route: Route, spec: Spec, by_service_rate: bool, use_declared_weights: bool) -> list[tuple[str, int, Fraction]]:
    total_weight = sum(b.weight for b in route.backends)
    shares = []
    for backend in route.backends:
        workload = spec.workload(backend.workload)
        split = Fraction(backend.weight, total_weight)
        for replica, within in enumerate(_within_workload(workload, by_service_rate, use_declared_weights)):
            shares.append((workload.name, replica, split * within))
    return shares


def integer_weights(shares: list[Fraction]) -> list[int]:
    """Smallest integers in the same ratios; past MAX_WEIGHT, rounded (every server keeps weight >= 1)."""
    lcm = math.lcm(*(s.denominator for s in shares))
    ints = [int(s * lcm) for s in shares]
    divisor = math.gcd(*ints)
    ints = [i // divisor for i in ints]
    if max(ints) <= MAX_WEIGHT:
        return ints
    top = max(shares)
    return [max(1, round(float(s / top) * MAX_WEIGHT)) for s in shares]
