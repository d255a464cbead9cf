"""How traffic is shared between replicas: the weights nginx gets and the shares the capacity model assumes.

A route's declared split between workloads (e.g. api 90 / api-canary 10) always holds; the algorithm decides
how a workload's share is spread over its replicas. nginx needs integer weights, so shares are kept as exact
fractions and scaled to the smallest integers with the same ratios.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Literal

from components.plan.queueing import marginal_latency_s
from components.spec.base import Algorithm
from components.spec.schema import Route, Spec, Target, Workload

if TYPE_CHECKING:
    from components.plan.build import Plan

MAX_WEIGHT = 1000

BalancingMode = Literal["gateway", "service"]
"""Who spreads a workload's share over its replicas — an input of the plan, never read from the spec.

"gateway": nginx picks each replica (every replica has a fixed address, one upstream server each).
"service": nginx picks the workload's Service, the platform spreads its connections over the ready pods (pod
addresses change on every restart, a Service's address stays fixed for its lifetime).
"""

ShareFunction = Callable[[Route, Spec], list[tuple[str, int, Fraction]]]

_TARGET_BALANCING: dict[Target, BalancingMode] = {"docker": "gateway", "kubernetes": "service"}


def target_balancing(target: Target) -> BalancingMode:
    """The balancing mode a deployment target gives the plan: the one mapping, read at the program's edge
    (`app_network.analyse`, the observation, validation) so the plan and the targets never branch on the target."""
    return _TARGET_BALANCING[target]


def service_rate(workload: Workload, replica: int) -> Fraction:
    """Requests per second one replica completes at full concurrency: max_concurrency / response time."""
    t = Fraction(workload.replica_response_times_s()[replica]).limit_denominator(1_000_000)
    return Fraction(workload.max_concurrency) / t


Within = Literal["even", "declared", "service_rate", "latency_optimal"]
# How nginx's weights spread a workload's share over its replicas; every other algorithm: evenly (in expectation).
_NGINX_WITHIN: dict[str, Within] = {"weighted": "declared", "latency_weighted": "service_rate", "latency_optimal": "latency_optimal"}


def latency_optimal_split(rates: Sequence[Fraction], load: float, servers: int) -> list[Fraction]:
    """Shares of `load` req/s that minimize the mean response time over replicas of the given service rates.

    Each replica is the M/M/c queue of the capacity table (`components.plan.queueing`): c = `servers` (max_concurrency),
    mean service time t_i = c/μ_i, so the split is optimal by the very latency the table reports. There is no
    closed form; at the optimum every used replica has the same marginal cost d/dλ[λ·W_i(λ)] = ν and a replica
    whose cost at λ = 0 (t_i) is above ν gets nothing (`_water_fill`). Replicas of equal rate get one value, so
    equal rates give exactly equal shares. At or past overload (λ ≥ Σ μ) the shares fall back to ∝ μ; with no load
    (λ ≤ 0) the fastest replicas share it evenly (the optimum's limit as λ → 0).

    Each share is rounded to a fraction with a denominator ≤ 10^6 (a share below 5·10^-7 becomes 0), then the
    shares are renormalized to sum to 1: nginx weights and the report need exact, reproducible numbers.
    """
    return list(_split(tuple(rates), load, servers))


@functools.lru_cache(maxsize=4096)
def _split(rates: tuple[Fraction, ...], load: float, servers: int) -> tuple[Fraction, ...]:
    """`latency_optimal_split`, remembered: the plan asks for one workload's split once per route and share
    function (nginx weights, capacity, scores), and the water-filling is the costly part of a large plan."""
    if not rates:
        return ()
    if len(set(rates)) == 1:
        return (Fraction(1, len(rates)),) * len(rates)
    total = sum(rates)
    if load >= total:
        return tuple(rate / total for rate in rates)
    if load <= 0:
        fastest = max(rates)
        count = sum(1 for rate in rates if rate == fastest)
        return tuple(Fraction(1, count) if rate == fastest else Fraction(0) for rate in rates)
    per_rate = _water_fill(servers, Counter(rates), load)
    sent = sum(per_rate[rate] for rate in rates)
    rounded = [Fraction(per_rate[rate] / sent).limit_denominator(1_000_000) for rate in rates]
    norm = sum(rounded)
    return tuple(share / norm for share in rounded)


_RELATIVE_TOLERANCE = 1e-12  # far below the 10^-6 the shares are rounded to, far above a float's 2·10^-16
_MAX_STEPS = 200  # a guard only: the brackets close in 10-30 steps


def _water_fill(servers: int, replicas: Counter[Fraction], load: float) -> dict[Fraction, float]:
    """λ per replica of each rate at the multiplier ν where the replicas' arrivals add up to `load`.

    The total sent at marginal cost ν grows with ν (each replica's marginal cost increases with its load), so ν
    lies between the fastest replica's cost at no load, where nothing is sent, and a ν found by doubling that
    sends at least `load`. Below its knee a many-server replica's cost is flat to a float's precision (nobody
    waits), so the total can jump within the final bracket; the loads at its two ends are blended to send exactly
    `load`, every replica's cost staying within the bracket, which is all the optimum asks.
    """
    times = {rate: servers / float(rate) for rate in replicas}

    def arrivals(nu: float) -> dict[Fraction, float]:
        return {rate: _arrival_at(servers, t, nu) for rate, t in times.items()}

    def sent(at: dict[Fraction, float]) -> float:
        return sum(count * at[rate] for rate, count in replicas.items())

    low = high = min(times.values())
    while sent(arrivals(high)) < load:
        low, high = high, 2 * high
    low, high = _increasing_root(lambda nu: sent(arrivals(nu)) - load, low, high)
    at_low, at_high = arrivals(low), arrivals(high)
    sent_low, sent_high = sent(at_low), sent(at_high)
    blend = 1.0 if sent_high == sent_low else min(1.0, max(0.0, (load - sent_low) / (sent_high - sent_low)))
    return {rate: at_low[rate] + blend * (at_high[rate] - at_low[rate]) for rate in times}


def _arrival_at(servers: int, service_time_s: float, nu: float) -> float:
    """The arrival rate at which one replica's marginal cost is ν: 0 if even its first request costs more
    (t ≥ ν), else the root on [0, c/t), where the marginal cost rises from t to ∞. Solved for 1/cost, which
    falls from 1/t to 0 and stays finite up to saturation, so the bracket's ends are both usable."""
    if nu <= service_time_s:
        return 0.0
    return _increasing_root(lambda rate: 1.0 / nu - 1.0 / marginal_latency_s(servers, service_time_s, rate),
                            0.0, servers / service_time_s)[1]


def _increasing_root(f: Callable[[float], float], low: float, high: float) -> tuple[float, float]:
    """The bracket, 10^-12 of `high` wide, where an increasing f crosses 0 in [low, high] (f(low) < 0 ≤ f(high)).

    Bisection's guarantee (the root never leaves the bracket, the result is a pure function of the inputs) at
    false position's speed: Illinois' variant halves the value kept at an end that survives twice, so neither end
    sticks. A nested plain bisection took ~20 ms per split, too slow for a stack of a thousand workloads.
    """
    f_low, f_high = f(low), f(high)
    kept = 0  # +1: the last step moved high, -1: it moved low
    for _ in range(_MAX_STEPS):
        if f_high == 0 or high - low <= _RELATIVE_TOLERANCE * high:
            break
        x = high - f_high * (high - low) / (f_high - f_low)
        if not low < x < high:
            x = (low + high) / 2
        fx = f(x)
        if fx < 0:
            low, f_low, f_high = x, fx, f_high / 2 if kept < 0 else f_high
            kept = -1
        else:
            high, f_high, f_low = x, fx, f_low / 2 if kept > 0 else f_low
            kept = 1
    return low, high


def _within_workload(workload: Workload, spec: Spec, within: Within, load_rps: float | None = None) -> list[Fraction]:
    """A workload's replicas' parts of its share; latency_optimal splits `load_rps` (default: the workload's declared
    peak from the gateway's routes)."""
    if within == "latency_optimal":
        rates = [service_rate(workload, r) for r in range(workload.replicas)]
        load = spec.workload_peak_rps(workload.name) if load_rps is None else load_rps
        return latency_optimal_split(rates, load, workload.max_concurrency)
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

    latency_optimal: the M/M/c water-filling split at the workload's declared peak; a backup replica is expected to serve
    nothing (the model ignores spill-over, which only happens when every primary is down or at max_conns).
    """
    algorithm = algorithm or spec.gateway.algorithm
    within = "service_rate" if algorithm == "least_conn" else _NGINX_WITHIN.get(algorithm, "even")
    return _shares(route, spec, within)


def upstream_members(route: Route, spec: Spec, balancing: BalancingMode) -> list[tuple[str, int, Fraction]]:
    """The servers nginx balances for a route, with their share: (workload, member index, share).

    With gateway balancing a member is a replica (the index is the replica number), as `nginx_shares`. With
    service balancing a member is a workload's Service (index 0) and carries the workload's whole split.
    """
    if balancing == "service":
        total_weight = sum(b.weight for b in route.backends)
        return [(b.workload, 0, Fraction(b.weight, total_weight)) for b in route.backends]
    return nginx_shares(route, spec)


def member_max_conns(workload: Workload, balancing: BalancingMode) -> int:
    """nginx's max_conns for one upstream member: one replica's concurrency, or the declared replicas' behind a Service.

    A Service member is sized for the workload's declared (minimum) replicas, the count the capacity model plans
    with, never for an autoscaler's ceiling: nginx then admits no more than the pods at minimum scale serve, and
    the capacity table's admitted load is what nginx lets through. Pods an autoscaler adds are headroom (lower
    utilization, shorter queues), not more admission.
    """
    if balancing == "service":
        return workload.max_concurrency * workload.replicas
    return workload.max_concurrency


def member_max_fails(balancing: BalancingMode) -> int | None:
    """nginx's max_fails for one upstream member; None: the gateway's passive_health.max_fails.

    A Service member is a whole workload: ejecting it after a few failed attempts would take every healthy pod of
    the workload out with the failing one, so passive ejection is off (0) and per-pod health is the readiness probe.
    """
    return 0 if balancing == "service" else None


def service_shares(route: Route, spec: Spec) -> list[tuple[str, int, Fraction]]:
    """Expected shares when a Service spreads a workload's replicas: the route split holds, each replica of a
    workload gets an equal part whatever the algorithm (kube-proxy picks a ready endpoint per connection, at
    random or in turn, blind to load, weights and per-replica response times)."""
    return _shares(route, spec, "even")


def share_function(balancing: BalancingMode) -> ShareFunction:
    """The shares the capacity model expects under a balancing mode: nginx's algorithm, or the Service's even spread."""
    return service_shares if balancing == "service" else expected_shares


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


def version_members(versions: Sequence[tuple[str, int]], spec: Spec, algorithm: Algorithm, balancing: BalancingMode,
                    load_rps: Callable[[str], float]) -> list[tuple[str, int, Fraction]]:
    """A service proxy's upstream members with their shares: (workload, member index, share), as `upstream_members`
    for a route. The versions' weights always hold; within a version the algorithm spreads its share over the
    replicas (gateway balancing) or the version's Service carries it whole (service balancing). `load_rps`: the
    calls a version receives at the declared peak, which latency_optimal splits."""
    total = sum(weight for _, weight in versions)
    members = []
    for name, weight in versions:
        workload = spec.workload(name)
        split = Fraction(weight, total)
        if balancing == "service":
            members.append((name, 0, split))
            continue
        for replica, part in enumerate(_within_workload(workload, spec, _NGINX_WITHIN.get(algorithm, "even"), load_rps(name))):
            members.append((name, replica, split * part))
    return members


def weighted_members(shares: Sequence[tuple[str, int, Fraction]], spec: Spec) -> tuple[tuple[str, int, int, bool], ...]:
    """(workload, member, integer weight, backup) per upstream server, in the order of `shares`.

    Members with a share are primaries, weighted by their shares. A member with share 0 (latency_optimal: a replica
    the water-filling split leaves out at the declared peak) is a backup: nginx sends it requests only while every
    primary is down or at max_conns, so its capacity still absorbs overflow; backups are weighted among themselves
    by service rate.
    """
    primary = [i for i, (_, _, share) in enumerate(shares) if share > 0]
    backup = [i for i, (_, _, share) in enumerate(shares) if share == 0]
    weights = dict(zip(primary, integer_weights([shares[i][2] for i in primary]), strict=True))
    if backup:
        rates = [service_rate(spec.workload(shares[i][0]), shares[i][1]) for i in backup]
        weights |= dict(zip(backup, integer_weights(rates), strict=True))  # scale-free: the rates themselves
    return tuple((w, r, weights[i], share == 0) for i, (w, r, share) in enumerate(shares))


def called_shares(plan: Plan, workload: str, load_rps: float) -> list[Fraction]:
    """How the calls a workload receives spread over its replicas: as its service proxy balances them (least_conn in
    proportion to service rate, latency_optimal by its split of `load_rps`), evenly behind a Service (service
    balancing) or a mesh, and evenly for a workload no proxy serves (it receives no calls)."""
    spec = plan.spec
    target = spec.workload(workload)
    owner = next((edge.policy for edge in plan.edges if any(v == workload for v, _ in edge.policy.versions)), None)
    if owner is None or plan.balancing == "service" or not plan.services:
        return [Fraction(1, target.replicas)] * target.replicas
    within = "service_rate" if owner.algorithm == "least_conn" else _NGINX_WITHIN.get(owner.algorithm, "even")
    return _within_workload(target, spec, within, load_rps)
