"""latency_optimal: the square-root split by hand-computed examples and by its properties, per workload of a route."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.balancing import expected_shares, latency_optimal_split, nginx_shares
from components.validation import parse_spec

# t = 10, 10, 10, 50 ms at max_concurrency 8: μ = 8 / t.
SKEWED = [Fraction(800), Fraction(800), Fraction(800), Fraction(160)]


def test_light_load_leaves_the_slow_replica_out() -> None:
    # S = all four: K = (2560 − 1000) / (3·√800 + √160) ≈ 16.0 > √160 ≈ 12.6, so the slow replica is out.
    # S = the fast three: K = (2400 − 1000) / (3·√800) ≈ 16.5 < √800: each gets 800 − √800·K = 1000/3.
    assert latency_optimal_split(SKEWED, 1000) == [Fraction(1, 3), Fraction(1, 3), Fraction(1, 3), Fraction(0)]


def test_the_slow_replica_joins_past_the_threshold() -> None:
    threshold = 2400 - 3 * math.sqrt(800 * 160)  # √160 = (2400 − λ) / (3·√800)
    assert latency_optimal_split(SKEWED, threshold - 1)[3] == 0
    assert latency_optimal_split(SKEWED, threshold + 5)[3] > 0


def test_heavy_load_gives_the_slow_replica_less_than_its_service_rate_share() -> None:
    load = 2300
    k = (2560 - load) / (3 * math.sqrt(800) + math.sqrt(160))
    slow = (160 - math.sqrt(160) * k) / load  # ≈ 0.0549
    fast = (800 - math.sqrt(800) * k) / load
    shares = latency_optimal_split(SKEWED, load)
    assert float(shares[3]) == pytest.approx(slow, abs=1e-6)
    assert [float(s) for s in shares[:3]] == pytest.approx([fast] * 3, abs=1e-6)
    assert shares[0] == shares[1] == shares[2]
    assert 0 < shares[3] < Fraction(160, 2560)
    assert sum(shares) == 1


@pytest.mark.parametrize("load", [2560, 2561, 10_000])
def test_overload_falls_back_to_service_rate(load: float) -> None:
    assert latency_optimal_split(SKEWED, load) == [Fraction(5, 16)] * 3 + [Fraction(1, 16)]


@pytest.mark.parametrize("load", [0, 1, 500, 10_000])
def test_equal_rates_give_exactly_equal_shares(load: float) -> None:
    assert latency_optimal_split([Fraction(400)] * 3, load) == [Fraction(1, 3)] * 3


def test_no_load_goes_to_the_fastest_replicas() -> None:
    assert latency_optimal_split(SKEWED, 0) == [Fraction(1, 3)] * 3 + [Fraction(0)]


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
    assert [s for _, _, s in first] == latency_optimal_split(SKEWED, 2300)


def test_equal_response_times_are_an_even_split(minimal: dict[str, Any]) -> None:
    spec = parse_spec(_optimal(minimal, {}))  # no traffic declared: equal times need none
    assert [s for _, _, s in expected_shares(spec.routes[0], spec)] == [Fraction(1, 2)] * 2


# ---- properties -------------------------------------------------------------------------------------------

_rates = st.lists(st.sampled_from([50, 160, 200, 800, 801, 1000, 4000]) | st.integers(1, 100_000), min_size=1, max_size=8).map(
    lambda values: [Fraction(v) for v in values])


def _mean_sojourn(rates: list[Fraction], load: float, shares: list[float]) -> float:
    """M/M/1 per replica: mean response time Σ (λ_i/λ) / (μ_i − λ_i)."""
    total = 0.0
    for mu, share in zip(rates, shares, strict=True):
        arrival = load * share
        if arrival == 0:
            continue
        assert arrival < float(mu), "a replica is overloaded below the workload's capacity"
        total += share / (float(mu) - arrival)
    return total


@settings(max_examples=300, deadline=None)
@given(_rates, st.floats(0.0, 1.5))
def test_shares_are_a_distribution_ordered_by_speed(rates: list[Fraction], fraction_of_capacity: float) -> None:
    shares = latency_optimal_split(rates, fraction_of_capacity * float(sum(rates)))
    assert sum(shares) == 1
    assert all(s >= 0 for s in shares)
    for mu_a, share_a in zip(rates, shares, strict=True):
        for mu_b, share_b in zip(rates, shares, strict=True):
            if mu_a > mu_b:
                assert share_a >= share_b, "a faster replica got a smaller share than a slower one"
            elif mu_a == mu_b:
                assert share_a == share_b


@settings(max_examples=300, deadline=None)
@given(_rates, st.floats(0.001, 0.97))
def test_mean_latency_is_no_worse_than_the_service_rate_split(rates: list[Fraction], fraction_of_capacity: float) -> None:
    load = fraction_of_capacity * float(sum(rates))
    optimal = _mean_sojourn(rates, load, [float(s) for s in latency_optimal_split(rates, load)])
    proportional = _mean_sojourn(rates, load, [float(mu / sum(rates)) for mu in rates])
    assert optimal <= proportional * (1 + 1e-9)


def _water_filling(rates: list[Fraction], load: float) -> list[float]:
    """The optimum found another way: the KKT conditions of min Σ λ_i/(μ_i − λ_i) subject to Σ λ_i = λ say every used
    replica has the same marginal cost μ_i/(μ_i − λ_i)² = ν and an unused one 1/μ_i ≥ ν, i.e. λ_i = max(0, μ_i − sqrt(μ_i/ν));
    bisect on ν until the λ_i add up to λ."""
    mu = [float(r) for r in rates]
    low, high = 1.0 / max(mu), 1e30  # ν = 1/max μ: nothing is sent; ν → ∞: everything up to capacity

    def sent(nu: float) -> float:
        return sum(max(0.0, m - math.sqrt(m / nu)) for m in mu)

    for _ in range(400):
        mid = math.sqrt(low * high)
        low, high = (mid, high) if sent(mid) < load else (low, mid)
    return [max(0.0, m - math.sqrt(m / high)) / load for m in mu]


@settings(max_examples=300, deadline=None)
@given(_rates, st.floats(0.001, 0.97))
def test_the_split_is_the_optimum_found_by_water_filling(rates: list[Fraction], fraction_of_capacity: float) -> None:
    load = fraction_of_capacity * float(sum(rates))
    shares = latency_optimal_split(rates, load)
    reference = _water_filling(rates, load)
    assert [float(s) for s in shares] == pytest.approx(reference, abs=1e-5)
    assert _mean_sojourn(rates, load, [float(s) for s in shares]) == pytest.approx(_mean_sojourn(rates, load, reference), rel=1e-6)


def test_a_copy_with_other_traffic_splits_by_the_new_peak(minimal: dict[str, Any]) -> None:
    """Spec caches its lookups; a model_copy that replaces fields must not keep the old ones."""
    from components.spec import Traffic

    minimal["workloads"][0].update(replicas=4, response_time_ms=[10, 10, 10, 50], max_concurrency=8)
    spec = parse_spec(_optimal(minimal, {"api": 1000}))
    assert spec.workload_peak_rps("api") == 1000
    busier = spec.model_copy(update={"traffic": {"api": Traffic(peak_rps=2300)}})
    assert busier.workload_peak_rps("api") == 2300
    assert [s for _, _, s in expected_shares(busier.routes[0], busier)] == latency_optimal_split(SKEWED, 2300)
