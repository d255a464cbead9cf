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
