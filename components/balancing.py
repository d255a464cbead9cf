"""How traffic is shared between replicas: the weights nginx gets and the shares the capacity model assumes.

A route's declared split between workloads (e.g. api 90 / api-canary 10) always holds; the algorithm decides
how a workload's share is spread over its replicas. nginx needs integer weights, so shares are kept as exact
fractions and scaled to the smallest integers with the same ratios.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Literal

from components.spec import Algorithm, Route, Spec, Workload

MAX_WEIGHT = 1000


def service_rate(workload: Workload, replica: int) -> Fraction:
    """Requests per second one replica completes at full concurrency: max_concurrency / response time."""
    t = Fraction(workload.replica_response_times_s()[replica]).limit_denominator(1_000_000)
    return Fraction(workload.max_concurrency) / t


Within = Literal["even", "declared", "service_rate", "latency_optimal"]
# How nginx's weights spread a workload's share over its replicas; every other algorithm: evenly (in expectation).
_NGINX_WITHIN: dict[str, Within] = {"weighted": "declared", "latency_weighted": "service_rate", "latency_optimal": "latency_optimal"}


def latency_optimal_split(rates: Sequence[Fraction], load: float) -> list[Fraction]:
    """Shares of `load` req/s that minimize the mean response time over servers of the given service rates.

    Each replica is modelled as one M/M/1 server of rate μ_i; the square-root rule (Bell & Stidham) gives, over
    the set S of used replicas, λ_i = μ_i − sqrt(μ_i)·(Σ_S μ − λ)/Σ_S sqrt(μ). S is the largest prefix of the
    replicas sorted by rate, fastest first, in which every λ_i > 0 (replicas of equal rate are all in or all out).
    The others get share 0. At or past overload (λ ≥ Σ μ) the shares fall back to ∝ μ; with no load (λ ≤ 0) the
    fastest replicas share it evenly (the rule's limit as λ → 0). Equal rates give exactly equal shares.

    The square roots make the shares irrational: they are computed to 60 digits, each is rounded to a fraction
    with a denominator ≤ 10^6 (a share below 5·10^-7 becomes 0), then the shares are renormalized to sum to 1.
    """
    if not rates:
        return []
    if len(set(rates)) == 1:
        return [Fraction(1, len(rates))] * len(rates)
    total = sum(rates)
    if load >= total:
        return [rate / total for rate in rates]
    if load <= 0:
        fastest = max(rates)
        count = sum(1 for rate in rates if rate == fastest)
        return [Fraction(1, count) if rate == fastest else Fraction(0) for rate in rates]
    with localcontext() as ctx:
        ctx.prec = 60  # λ_i is a difference of nearly equal terms when λ is small against Σ μ
        mu = [Decimal(rate.numerator) / Decimal(rate.denominator) for rate in rates]
        root = [m.sqrt() for m in mu]
        order = sorted(range(len(mu)), key=lambda i: -rates[i])
        used, factor = 0, Decimal(0)
        sum_mu = sum_root = Decimal(0)
        for position, i in enumerate(order, start=1):
            sum_mu += mu[i]
            sum_root += root[i]
            if position < len(order) and rates[order[position]] == rates[i]:
                continue  # a prefix never splits replicas of equal rate
            k = (sum_mu - Decimal(load)) / sum_root
            if root[i] > k:  # the slowest of this prefix still gets λ_i > 0, so do the faster ones
                used, factor = position, k
        if used == 0:  # only when λ is too small for the precision: the rule's limit, the fastest alone
            return latency_optimal_split(rates, 0)
        chosen = set(order[:used])
        # λ_i = sqrt(μ_i)·(sqrt(μ_i) − K): positive and increasing in μ_i on S, one value per distinct rate
        per_rate = {rates[i]: root[i] * (root[i] - factor) for i in chosen}
        rounded = [Fraction(per_rate[rates[i]] / Decimal(load)).limit_denominator(1_000_000) if i in chosen else Fraction(0)
                   for i in range(len(rates))]
    norm = sum(rounded)
    return [share / norm for share in rounded]


def _within_workload(workload: Workload, spec: Spec, within: Within) -> list[Fraction]:
    if within == "latency_optimal":
        rates = [service_rate(workload, r) for r in range(workload.replicas)]
        return latency_optimal_split(rates, spec.workload_peak_rps(workload.name))
    if within == "service_rate":
        rates = [service_rate(workload, r) for r in range(workload.replicas)]
    elif within == "declared" and workload.replica_weights:
        rates = [Fraction(w) for w in workload.replica_weights]
    else:
        rates = [Fraction(1)] * workload.replicas
    total = sum(rates)
    return [rate / total for rate in rates]


def nginx_shares(route: Route, spec: Spec) -> list[tuple[str, int, Fraction]]:
    """(workload, replica, share of the route's requests) as the nginx upstream weights will encode it.

    With latency_optimal a share may be 0: that replica is rendered as a `backup` server (spill-over only).
    """
    return _shares(route, spec, _NGINX_WITHIN.get(spec.gateway.algorithm, "even"))


def expected_shares(route: Route, spec: Spec, algorithm: Algorithm | None = None) -> list[tuple[str, int, Fraction]]:
    """The share each replica is expected to serve: least_conn sends work in proportion to service rate.

    latency_optimal: the square-root split at the workload's declared peak; a backup replica is expected to serve
    nothing (the model ignores spill-over, which only happens when every primary is down or at max_conns).
    """
    algorithm = algorithm or spec.gateway.algorithm
    within = "service_rate" if algorithm == "least_conn" else _NGINX_WITHIN.get(algorithm, "even")
    return _shares(route, spec, within)


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
    return _shares(route, spec, "even")


def _shares(route: Route, spec: Spec, within: Within) -> list[tuple[str, int, Fraction]]:
    total_weight = sum(b.weight for b in route.backends)
    shares = []
    for backend in route.backends:
        workload = spec.workload(backend.workload)
        split = Fraction(backend.weight, total_weight)
        for replica, part in enumerate(_within_workload(workload, spec, within)):
            shares.append((workload.name, replica, split * part))
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
