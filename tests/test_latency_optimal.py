"""latency_optimal: the split that minimizes the capacity table's M/M/c mean latency, by worked examples, against
brute force and by its properties, per workload of a route.

Every expectation here is computed with the test's own M/M/c latency (the textbook Erlang C sum, not
components/plan/queueing.py's Erlang B recursion) and its own marginal cost (a central difference of λ·W(λ)), so
the split is checked against an independent model, never against numbers the code under test produced."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.plan.balancing import expected_shares, latency_optimal_split, nginx_shares
from components.spec.validation import parse_spec

# t = 10, 10, 10, 50 ms at max_concurrency 8: μ = 8 / t.
SKEWED = [Fraction(800), Fraction(800), Fraction(800), Fraction(160)]
SKEWED_SERVERS = 8


def _latency(servers: int, time_s: float, rate: float) -> float:
    """M/M/c mean response time W = t + C·t/(c − a), Erlang C from its textbook sum: C = P_c / (Σ_{k<c} a^k/k! + P_c),
    P_c = a^c/c! · c/(c − a), a = λ·t (∞ from a = c on)."""
    a = rate * time_s
    if a >= servers:
        return math.inf
    term, below = 1.0, 0.0
    for k in range(servers):
        below += term
        term *= a / (k + 1)
    waiting = term * servers / (servers - a)
    return time_s + waiting / (below + waiting) * time_s / (servers - a)


def _marginal(servers: int, time_s: float, rate: float) -> float:
    """d(λ·W)/dλ by a central difference (one-sided at 0, where it is t)."""
    h = max(rate, 1.0) * 1e-6
    if rate < h:
        return time_s
    return ((rate + h) * _latency(servers, time_s, rate + h) - (rate - h) * _latency(servers, time_s, rate - h)) / (2 * h)


def _mean_latency(rates: Sequence[Fraction], servers: int, load: float, shares: Sequence[float]) -> float:
    """What the capacity table reports for a split: Σ share_i · W_i(λ·share_i), each replica M/M/c (∞ if one saturates)."""
    return math.fsum(share * _latency(servers, servers / float(rate), load * share)
                     for rate, share in zip(rates, shares, strict=True) if share > 0)


def _joins_at(servers: int, fast_time_s: float, slow_time_s: float) -> float:
    """The per-replica load at which a fast replica's marginal cost reaches a slow replica's cost at no load."""
    low, high = 0.0, servers / fast_time_s
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if _marginal(servers, fast_time_s, middle) < slow_time_s else (low, middle)
    return low


def _kkt(rates: Sequence[Fraction], servers: int, load: float, shares: Sequence[Fraction]) -> None:
    """The optimality conditions of min Σ λ_i·W_i(λ_i) with Σ λ_i = λ: every used replica has the same marginal
    cost, and no unused replica would be cheaper at its first request (its service time)."""
    costs = [_marginal(servers, servers / float(r), load * float(s)) for r, s in zip(rates, shares, strict=True)]
    used = [c for c, s in zip(costs, shares, strict=True) if s > 0]
    assert max(used) == pytest.approx(min(used), rel=1e-4), costs
    for rate, share in zip(rates, shares, strict=True):
        if share == 0:
            assert servers / float(rate) >= min(used) * (1 - 1e-4), (costs, shares)


def test_light_load_leaves_the_slow_replica_out() -> None:
    assert latency_optimal_split(SKEWED, 1000, SKEWED_SERVERS) == [Fraction(1, 3), Fraction(1, 3), Fraction(1, 3), Fraction(0)]


def test_the_slow_replica_joins_where_the_fast_ones_marginal_cost_reaches_its_service_time() -> None:
    threshold = 3 * _joins_at(SKEWED_SERVERS, 0.010, 0.050)  # ≈ 2006 req/s (M/M/1 of rate 800 said ≈ 1327)
    assert 2000 < threshold < 2012
    assert latency_optimal_split(SKEWED, threshold - 1, SKEWED_SERVERS)[3] == 0
    assert latency_optimal_split(SKEWED, threshold + 5, SKEWED_SERVERS)[3] > 0


def test_pooled_servers_keep_the_slow_replica_out_where_the_single_server_model_used_it() -> None:
    """At 2,000 req/s the old M/M/1 (rate c/t) square-root split sent the slow replica 4.37 %; under the M/M/c
    latency the capacity table reports, the fast replicas (8 servers each, a third of their capacity left) absorb
    it faster: 13.995 ms mean against the old split's 14.457 ms."""
    old = [0.31877497803888, 0.31877497803888, 0.31877497803888, 0.04367506588334]
    new = latency_optimal_split(SKEWED, 2000, SKEWED_SERVERS)
    assert new == [Fraction(1, 3)] * 3 + [Fraction(0)]
    assert _mean_latency(SKEWED, 8, 2000, [float(s) for s in new]) * 1000 == pytest.approx(13.995, abs=1e-3)
    assert _mean_latency(SKEWED, 8, 2000, old) * 1000 == pytest.approx(14.457, abs=1e-3)


def test_heavy_load_gives_the_slow_replica_less_than_its_service_rate_share() -> None:
    shares = latency_optimal_split(SKEWED, 2300, SKEWED_SERVERS)
    _kkt(SKEWED, SKEWED_SERVERS, 2300, shares)  # the slow replica is used, at the fast ones' marginal cost
    assert shares[0] == shares[1] == shares[2]
    assert 0 < shares[3] < Fraction(160, 2560)
    assert sum(shares) == 1


def test_one_server_per_replica_is_the_square_root_rule() -> None:
    """With c = 1 an M/M/c replica is M/M/1 of rate μ_i, whose optimum has a closed form (Bell & Stidham):
    λ_i = μ_i − sqrt(μ_i)·(Σ μ − λ)/Σ sqrt(μ) over the used replicas."""
    rates, load = [Fraction(100), Fraction(100), Fraction(100), Fraction(20)], 230.0
    k = (320 - load) / (3 * math.sqrt(100) + math.sqrt(20))
    expected = [(100 - math.sqrt(100) * k) / load] * 3 + [(20 - math.sqrt(20) * k) / load]
    assert [float(s) for s in latency_optimal_split(rates, load, 1)] == pytest.approx(expected, abs=2e-6)
    assert sum(expected) == pytest.approx(1.0)


@pytest.mark.parametrize("load", [2560, 2561, 10_000])
def test_overload_falls_back_to_service_rate(load: float) -> None:
    assert latency_optimal_split(SKEWED, load, SKEWED_SERVERS) == [Fraction(5, 16)] * 3 + [Fraction(1, 16)]


@pytest.mark.parametrize("load", [0, 1, 500, 10_000])
def test_equal_rates_give_exactly_equal_shares(load: float) -> None:
    assert latency_optimal_split([Fraction(400)] * 3, load, 4) == [Fraction(1, 3)] * 3


@pytest.mark.parametrize("load", [0, -5])
def test_no_load_goes_to_the_fastest_replicas(load: float) -> None:
    assert latency_optimal_split(SKEWED, load, SKEWED_SERVERS) == [Fraction(1, 3)] * 3 + [Fraction(0)]
    assert latency_optimal_split([Fraction(160), Fraction(800)], load, SKEWED_SERVERS) == [Fraction(0), Fraction(1)]


def test_no_replicas_no_shares() -> None:
    assert latency_optimal_split([], 100, 8) == []


@pytest.mark.parametrize("load", [500, 2100, 2300, 2500])
def test_the_split_follows_the_replicas_not_their_order(load: float) -> None:
    """Listing the replicas in another order gives each the same share, and the split meets the optimality conditions."""
    order = [3, 1, 0, 2]
    shuffled = latency_optimal_split([SKEWED[i] for i in order], load, SKEWED_SERVERS)
    assert shuffled == [latency_optimal_split(SKEWED, load, SKEWED_SERVERS)[i] for i in order]
    _kkt(SKEWED, SKEWED_SERVERS, load, latency_optimal_split(SKEWED, load, SKEWED_SERVERS))


# ---- against brute force: no other split has a lower M/M/c mean latency --------------------------------------


def _grid(replicas: int, steps: int) -> list[list[float]]:
    points = []
    for head in itertools.product(range(steps + 1), repeat=replicas - 1):
        if sum(head) <= steps:
            points.append([h / steps for h in head] + [(steps - sum(head)) / steps])
    return points


@pytest.mark.parametrize(("times_ms", "servers", "fraction_of_capacity"), [
    ([10, 50], 8, 0.5), ([10, 50], 8, 0.9), ([10, 12], 1, 0.6), ([5, 20], 32, 0.95),
    ([10, 20, 50], 4, 0.7), ([10, 10, 40], 2, 0.85), ([5, 15, 30], 16, 0.9),
])
def test_no_split_on_a_fine_grid_is_faster(times_ms: list[int], servers: int, fraction_of_capacity: float) -> None:
    rates = [Fraction(servers * 1000, t) for t in times_ms]
    load = fraction_of_capacity * float(sum(rates))
    optimal = _mean_latency(rates, servers, load, [float(s) for s in latency_optimal_split(rates, load, servers)])
    best_on_grid = min(_mean_latency(rates, servers, load, p) for p in _grid(len(rates), 2000 if len(rates) == 2 else 200))
    assert optimal <= best_on_grid * (1 + 1e-9)
    assert optimal == pytest.approx(best_on_grid, rel=5e-3), "the grid comes close: the comparison means something"


_times_ms = st.lists(st.sampled_from([1, 5, 10, 12, 50, 200]) | st.integers(1, 2000), min_size=1, max_size=6)
_servers = st.sampled_from([1, 2, 4, 8, 32, 100])


def _rates(times_ms: list[int], servers: int) -> list[Fraction]:
    return [Fraction(servers * 1000, t) for t in times_ms]


@settings(max_examples=150, deadline=None)
@given(_times_ms, _servers, st.floats(0.001, 0.99))
def test_moving_load_between_replicas_never_helps(times_ms: list[int], servers: int, fraction_of_capacity: float) -> None:
    """First-order optimality checked directly: shifting 0.1 % of the load from any replica that has some to any other
    replica does not lower the mean latency."""
    rates = _rates(times_ms, servers)
    load = fraction_of_capacity * float(sum(rates))
    shares = [float(s) for s in latency_optimal_split(rates, load, servers)]
    optimal = _mean_latency(rates, servers, load, shares)
    for source, sink in itertools.permutations(range(len(rates)), 2):
        step = min(shares[source], 1e-3)
        if step > 0:
            moved = list(shares)
            moved[source] -= step
            moved[sink] += step
            assert optimal <= _mean_latency(rates, servers, load, moved) * (1 + 1e-9)


@settings(max_examples=150, deadline=None)
@given(_times_ms, _servers, st.floats(0.001, 0.99))
def test_mean_latency_is_no_worse_than_the_service_rate_split(times_ms: list[int], servers: int, fraction_of_capacity: float) -> None:
    rates = _rates(times_ms, servers)
    load = fraction_of_capacity * float(sum(rates))
    optimal = _mean_latency(rates, servers, load, [float(s) for s in latency_optimal_split(rates, load, servers)])
    proportional = _mean_latency(rates, servers, load, [float(r / sum(rates)) for r in rates])
    assert optimal <= proportional * (1 + 1e-9)


@settings(max_examples=200, deadline=None)
@given(_times_ms, _servers, st.floats(0.0, 1.5))
def test_shares_are_a_distribution_ordered_by_speed(times_ms: list[int], servers: int, fraction_of_capacity: float) -> None:
    rates = _rates(times_ms, servers)
    shares = latency_optimal_split(rates, fraction_of_capacity * float(sum(rates)), servers)
    assert sum(shares) == 1
    assert all(s >= 0 for s in shares)
    for (rate_a, share_a), (rate_b, share_b) in itertools.product(zip(rates, shares, strict=True), repeat=2):
        if rate_a > rate_b:
            assert share_a >= share_b, "a faster replica got a smaller share than a slower one"
        elif rate_a == rate_b:
            assert share_a == share_b


@settings(max_examples=100, deadline=None)
@given(_times_ms, _servers, st.floats(0.01, 0.98), st.floats(0.01, 0.98))
def test_more_load_never_takes_load_from_a_replica(times_ms: list[int], servers: int, low: float, high: float) -> None:
    """Every replica's marginal cost rises with its load, so a higher multiplier gives each one at least as much."""
    rates = _rates(times_ms, servers)
    capacity = float(sum(rates))
    light, heavy = sorted((low * capacity, high * capacity))
    before = latency_optimal_split(rates, light, servers)
    after = latency_optimal_split(rates, heavy, servers)
    for share_before, share_after in zip(before, after, strict=True):
        assert float(share_after) * heavy >= float(share_before) * light - 1e-6 * heavy


# ---- per workload of a route ----------------------------------------------------------------------------------


def _optimal(raw: dict[str, Any], traffic: dict[str, float]) -> dict[str, Any]:
    raw["gateway"]["algorithm"] = "latency_optimal"
    raw["traffic"] = traffic
    return raw


def test_route_split_holds_per_workload(minimal: dict[str, Any]) -> None:
    """api 90 / canary 10 at 1,000 req/s: api's λ = 900 leaves its slow replica out, the canary's λ = 100 too."""
    minimal["workloads"][0].update(replicas=4, response_time_ms=[10, 10, 10, 50], max_concurrency=8)
    minimal["workloads"].append({"name": "canary", "image": "api:2", "port": 8000, "replicas": 2, "response_time_ms": [10, 50],
                                 "max_concurrency": 8})
    minimal["routes"][0]["backends"] = [{"workload": "api", "weight": 90}, {"workload": "canary", "weight": 10}]
    spec = parse_spec(_optimal(minimal, {"api": 1000}))
    shares = expected_shares(spec.routes[0], spec)
    assert shares == nginx_shares(spec.routes[0], spec)
    assert sum(s for w, _, s in shares if w == "api") == Fraction(9, 10)
    assert sum(s for w, _, s in shares if w == "canary") == Fraction(1, 10)
    assert [s for _, _, s in shares] == [Fraction(3, 10)] * 3 + [0, Fraction(1, 10), 0]


def test_a_workload_load_sums_every_route_that_reaches_it(minimal: dict[str, Any]) -> None:
    """Two routes of 1,200 and 1,100 req/s on one workload: split at 2,300, the same in both routes' upstreams."""
    minimal["workloads"][0].update(replicas=4, response_time_ms=[10, 10, 10, 50], max_concurrency=8)
    minimal["routes"].append({"name": "api2", "match": {"path": "/v2/"}, "backends": [{"workload": "api"}]})
    spec = parse_spec(_optimal(minimal, {"api": 1200, "api2": 1100}))
    assert spec.workload_peak_rps("api") == 2300
    first, second = (expected_shares(route, spec) for route in spec.routes if route.name in ("api", "api2"))
    assert first == second
    assert [s for _, _, s in first] == latency_optimal_split(SKEWED, 2300, SKEWED_SERVERS)


def test_equal_response_times_are_an_even_split(minimal: dict[str, Any]) -> None:
    spec = parse_spec(_optimal(minimal, {}))  # no traffic declared: equal times need none
    assert [s for _, _, s in expected_shares(spec.routes[0], spec)] == [Fraction(1, 2)] * 2


def test_the_capacity_table_reports_the_latency_the_split_minimizes(minimal: dict[str, Any]) -> None:
    """One queue model: the workload latency in the capacity table is the split's M/M/c mean latency."""
    from components.plan.capacity import compute_capacity
    from tests.conftest import plan_of

    minimal["workloads"][0].update(replicas=4, response_time_ms=[10, 10, 10, 50], max_concurrency=8)
    spec = parse_spec(_optimal(minimal, {"api": 2300}))
    row = next(w for w in compute_capacity(plan_of(spec)).workloads if w.workload == "api")
    shares = [float(s) for s in latency_optimal_split(SKEWED, 2300, SKEWED_SERVERS)]
    assert row.mean_latency_ms == pytest.approx(_mean_latency(SKEWED, SKEWED_SERVERS, 2300, shares) * 1000, rel=1e-12)


def test_a_copy_with_other_traffic_splits_by_the_new_peak(minimal: dict[str, Any]) -> None:
    """Spec caches its lookups; a model_copy that replaces fields must not keep the old ones."""
    from components.spec.schema import Traffic

    minimal["workloads"][0].update(replicas=4, response_time_ms=[10, 10, 10, 50], max_concurrency=8)
    spec = parse_spec(_optimal(minimal, {"api": 1000}))
    assert spec.workload_peak_rps("api") == 1000
    busier = spec.model_copy(update={"traffic": {"api": Traffic(peak_rps=2300)}})
    assert busier.workload_peak_rps("api") == 2300
    assert [s for _, _, s in expected_shares(busier.routes[0], busier)] == latency_optimal_split(SKEWED, 2300, SKEWED_SERVERS)
