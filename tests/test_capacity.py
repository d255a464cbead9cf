"""Capacity model: shares by algorithm, M/M/c latency, overload and admitted load."""

from __future__ import annotations

import math
from typing import Any

import pytest

from components.plan.capacity import compute_capacity
from components.plan.queueing import erlang_c_wait_probability, marginal_latency_s, mean_latency_s
from components.spec.validation import parse_spec
from tests.conftest import plan_of


def test_erlang_c_single_server_is_rho() -> None:
    # M/M/1: probability of waiting equals utilization.
    assert erlang_c_wait_probability(1, 0.6) == pytest.approx(0.6)
    assert mean_latency_s(1, 0.1, 6.0) == pytest.approx(0.1 / (1 - 0.6))


def test_erlang_c_known_value() -> None:
    # c=2, a=1 Erlang: C = 1/3 (textbook value).
    assert erlang_c_wait_probability(2, 1.0) == pytest.approx(1 / 3)


def test_overload_is_flagged(minimal: dict[str, Any]) -> None:
    minimal["traffic"] = {"api": 500}  # 2 replicas × 10 / 0.05 s = 400 r/s capacity
    rows = {(r.workload, r.replica): r for r in compute_capacity(plan_of(parse_spec(minimal))).replicas}
    assert rows[("api", 0)].utilization == pytest.approx(250 / 200)
    assert rows[("api", 0)].overloaded and rows[("api", 0)].mean_latency_ms is None


def test_canary_split_reaches_replicas(minimal: dict[str, Any]) -> None:
    minimal["routes"][0]["backends"] = [{"workload": "api", "weight": 90}, {"workload": "web", "weight": 10}]
    minimal["traffic"] = {"api": 100}
    rows = {(r.workload, r.replica): r for r in compute_capacity(plan_of(parse_spec(minimal))).replicas}
    assert rows[("api", 0)].offered_rps == pytest.approx(45)
    assert rows[("web", 0)].offered_rps == pytest.approx(10)


def test_latency_weighted_and_least_conn_follow_service_rate(minimal: dict[str, Any]) -> None:
    minimal["workloads"][0]["response_time_ms"] = [10, 50]  # service rates 1000 and 200 r/s
    minimal["traffic"] = {"api": 120}
    for algorithm in ("latency_weighted", "least_conn"):
        minimal["gateway"]["algorithm"] = algorithm
        rows = {(r.workload, r.replica): r for r in compute_capacity(plan_of(parse_spec(minimal))).replicas}
        assert rows[("api", 0)].offered_rps == pytest.approx(100)
        assert rows[("api", 1)].offered_rps == pytest.approx(20)
        assert rows[("api", 0)].utilization == pytest.approx(rows[("api", 1)].utilization)
    minimal["gateway"]["algorithm"] = "round_robin"
    rows = {(r.workload, r.replica): r for r in compute_capacity(plan_of(parse_spec(minimal))).replicas}
    assert rows[("api", 1)].offered_rps == pytest.approx(60)


def test_admitted_load_per_client_and_unlimited(minimal: dict[str, Any]) -> None:
    minimal["traffic"] = {"api": {"peak_rps": 30, "clients": 4}}
    capacity = compute_capacity(plan_of(parse_spec(minimal)))
    routes = {r.route: r for r in capacity.routes}
    assert routes["api"].admitted_max_rps == 40 and routes["api"].admits_peak
    assert routes["web"].admitted_max_rps is None
    rows = {(r.workload, r.replica): r for r in capacity.replicas}
    assert rows[("api", 0)].admitted_utilization == pytest.approx(20 / 200)
    assert rows[("web", 0)].admitted_utilization is None


def test_global_limit_below_peak_does_not_admit_it(minimal: dict[str, Any]) -> None:
    minimal["rate_limits"][0]["key"] = "global"
    minimal["traffic"] = {"api": {"peak_rps": 30, "clients": 4}}
    routes = {r.route: r for r in compute_capacity(plan_of(parse_spec(minimal))).routes}
    assert routes["api"].admitted_max_rps == 10 and not routes["api"].admits_peak


def test_latency_optimal_leaves_the_slow_replica_idle_at_light_load(minimal: dict[str, Any]) -> None:
    """μ = 800, 800, 800, 160 at 1,000 req/s: the fast replicas take ⅓ each, the backup is modelled at 0 (no spill-over)."""
    minimal["gateway"]["algorithm"] = "latency_optimal"
    minimal["workloads"][0].update(replicas=4, response_time_ms=[10, 10, 10, 50], max_concurrency=8)
    minimal["traffic"] = {"api": 1000}
    rows = {(r.workload, r.replica): r for r in compute_capacity(plan_of(parse_spec(minimal))).replicas}
    assert [rows[("api", i)].offered_rps for i in range(3)] == pytest.approx([1000 / 3] * 3)
    assert rows[("api", 3)].offered_rps == 0 and rows[("api", 3)].utilization == 0
    assert rows[("api", 3)].mean_latency_ms == pytest.approx(50)
    minimal["traffic"] = {"api": 2300}
    rows = {(r.workload, r.replica): r for r in compute_capacity(plan_of(parse_spec(minimal))).replicas}
    assert 0 < rows[("api", 3)].offered_rps < 2300 * 160 / 2560  # less than latency_weighted would send it
    assert rows[("api", 3)].utilization < rows[("api", 0)].utilization


@pytest.mark.parametrize(("servers", "service_time_s", "utilization"), [(1, 0.1, 0.5), (2, 0.01, 0.3), (8, 0.01, 0.9), (32, 0.005, 0.99)])
def test_marginal_latency_is_the_derivative_of_the_time_in_system(servers: int, service_time_s: float, utilization: float) -> None:
    """latency_optimal equalizes d/dλ[λ·W(λ)] across replicas: the analytic derivative matches a central difference."""
    rate = utilization * servers / service_time_s
    step = rate * 1e-6

    def in_system(arrival: float) -> float:
        latency = mean_latency_s(servers, service_time_s, arrival)
        assert latency is not None
        return arrival * latency

    numeric = (in_system(rate + step) - in_system(rate - step)) / (2 * step)
    assert marginal_latency_s(servers, service_time_s, rate) == pytest.approx(numeric, rel=1e-6)
    assert marginal_latency_s(servers, service_time_s, 0.0) == service_time_s
    assert marginal_latency_s(servers, service_time_s, servers / service_time_s) == math.inf
