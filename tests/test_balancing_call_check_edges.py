"""Edges of the replica balancing (water-filling, service proxies' shares), the call graph's versions and hops,
and the call-policy checks: every expected value below is worked by hand from the docstrings and the README."""

from __future__ import annotations

import copy
import math
from fractions import Fraction
from typing import Any

import pytest

from components.plan.balancing import (
    _arrival_at,
    _increasing_root,
    called_shares,
    latency_optimal_split,
    version_members,
)
from components.plan.graph import GATEWAY, Flow, hops, proxy_name, versions
from components.plan.queueing import marginal_latency_s, mean_latency_s
from components.spec.schema import Spec
from components.spec.validation import SpecError, parse_spec
from tests.conftest import MINIMAL, plan_of


def _raw() -> dict[str, Any]:
    return copy.deepcopy(MINIMAL)


def _problems(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    return {issue.path: issue.message for issue in caught.value.issues}


def _with_canary(raw: dict[str, Any], port: int = 8001, **fields: Any) -> dict[str, Any]:
    """web calls api; api's calls are split 9:1 between api and api-v2 (1 replica, 10 in flight at 100 ms)."""
    raw["workloads"][1]["calls"] = [{"workload": "api"}]
    raw["workloads"].append({"name": "api-v2", "image": "api:2", "port": port, "response_time_ms": 100,
                             "max_concurrency": 10, **fields})
    raw["workloads"][0]["traffic_policy"] = {"split": [{"workload": "api", "weight": 9}, {"workload": "api-v2", "weight": 1}]}
    return raw


def _tcp_api(raw: dict[str, Any], **policy: Any) -> dict[str, Any]:
    """api speaks tcp (so the HTTP gateway no longer routes to it) and web calls it."""
    raw["workloads"][0]["protocol"] = "tcp"
    if policy:
        raw["workloads"][0]["traffic_policy"] = policy
    raw["routes"] = [r for r in raw["routes"] if r["name"] != "api"]
    raw["workloads"][1]["calls"] = [{"workload": "api"}]
    return raw


# --- water-filling (latency_optimal) ---------------------------------------------------------------------------


def test_a_replica_whose_first_request_costs_exactly_nu_gets_no_arrivals() -> None:
    # Docstring: 0 "if even its first request costs more (t ≥ ν)": at t = ν exactly the replica gets nothing.
    assert _arrival_at(4, 0.1, 0.1) == 0.0
    assert _arrival_at(4, 0.1, 0.05) == 0.0
    # Just above t the replica takes some load, below its saturation c/t = 40.
    assert 0.0 < _arrival_at(4, 0.1, 0.2) < 40.0


def test_increasing_root_returns_a_tight_bracket_even_when_f_high_is_one() -> None:
    # f(x) = x² − 3 on [0, 2]: f(0) = −3 < 0 ≤ f(2) = 1; the root is √3, bracketed 10^-12 of high wide.
    low, high = _increasing_root(lambda x: x * x - 3.0, 0.0, 2.0)
    assert low <= math.sqrt(3.0) <= high
    assert high - low <= 1e-12 * high * 2


def test_increasing_root_stops_on_an_exact_zero_at_high() -> None:
    # f(x) = x − 0.5 on [0, 1.5]: false position hits the root 0.5 exactly, f(high) = 0 ends the search there.
    low, high = _increasing_root(lambda x: x - 0.5, 0.0, 1.5)
    assert high == 0.5
    assert low <= 0.5


def test_water_filling_equalizes_marginal_costs_when_the_slow_replica_is_flat() -> None:
    """Many servers: the slow replica's marginal cost is flat at its t = 0.1 s until its knee, so the total sent
    jumps inside the final bracket; the split must still send exactly the load with equal marginal costs."""
    servers, load = 200, 4400.0
    rates = [Fraction(4000), Fraction(2000)]  # t = 200/4000 = 0.05 s and 200/2000 = 0.1 s
    times = [servers / float(r) for r in rates]
    shares = latency_optimal_split(rates, load, servers)
    assert sum(shares) == 1
    costs = [marginal_latency_s(servers, t, float(s) * load) for t, s in zip(times, shares, strict=True)]
    # Both replicas are used (the slow one's t = 0.1 is below what the fast one costs at 4400/s), at one ν.
    assert all(s > 0 for s in shares)
    assert costs[0] == pytest.approx(costs[1], rel=1e-4)
    assert costs[1] == pytest.approx(0.1, rel=1e-4)

    def total_time(fast: float) -> float:
        parts = [(fast * load, times[0]), ((1 - fast) * load, times[1])]
        return sum(rate * (mean_latency_s(servers, t, rate) or math.inf) for rate, t in parts)

    best = float(shares[0])  # an optimum: moving 1 % of the load either way costs more time in the replicas
    assert total_time(best) < total_time(best - 0.01)
    assert total_time(best) < total_time(best + 0.01)


# --- service proxies' shares ----------------------------------------------------------------------------------


def _spec(raw: dict[str, Any]) -> Spec:
    return parse_spec(raw)


def _api_two_speeds(raw: dict[str, Any], **policy: Any) -> dict[str, Any]:
    """api: replica 0 answers in 50 ms, replica 1 in 100 ms, 10 in flight: 200/s and 100/s. web calls api."""
    raw["workloads"][0]["response_time_ms"] = [50, 100]
    raw["workloads"][0]["traffic_policy"] = policy
    raw["workloads"][1]["calls"] = [{"workload": "api"}]
    return raw


@pytest.mark.parametrize(("policy", "expected"), [
    ({"balancing": "round_robin"}, [Fraction(1, 2), Fraction(1, 2)]),
    ({"balancing": "least_conn"}, [Fraction(2, 3), Fraction(1, 3)]),
    ({"balancing": "latency_weighted"}, [Fraction(2, 3), Fraction(1, 3)]),
])
def test_called_shares_follow_the_callees_own_algorithm(policy: dict[str, Any], expected: list[Fraction]) -> None:
    plan = plan_of(_spec(_api_two_speeds(_raw(), **policy)))
    assert plan.balancing == "gateway" and plan.services
    assert called_shares(plan, "api", 100.0) == expected


def test_called_shares_weighted_uses_the_declared_replica_weights() -> None:
    raw = _api_two_speeds(_raw(), balancing="weighted")
    raw["workloads"][0]["replica_weights"] = [1, 3]
    assert called_shares(plan_of(_spec(raw)), "api", 100.0) == [Fraction(1, 4), Fraction(3, 4)]


def test_called_shares_read_the_policy_of_the_proxy_that_serves_the_workload() -> None:
    """batch (round_robin) is called first, api (least_conn) second: api's replicas follow least_conn."""
    raw = _api_two_speeds(_raw(), balancing="least_conn")
    raw["workloads"].append({"name": "batch", "image": "b:1", "port": 7000, "replicas": 2, "response_time_ms": [10, 40],
                             "max_concurrency": 4, "traffic_policy": {"balancing": "round_robin"}})
    raw["workloads"][1]["calls"] = [{"workload": "batch"}, {"workload": "api"}]
    plan = plan_of(_spec(raw))
    assert [e.callee for e in plan.edges] == ["batch", "api"]
    assert called_shares(plan, "api", 100.0) == [Fraction(2, 3), Fraction(1, 3)]
    assert called_shares(plan, "batch", 100.0) == [Fraction(1, 2), Fraction(1, 2)]


# --- version_members -----------------------------------------------------------------------------------------


def test_version_members_keep_the_versions_weights() -> None:
    spec = _spec(_with_canary(_raw()))
    # gateway balancing, round_robin: api's 9/10 spread evenly over its 2 replicas, api-v2 takes 1/10.
    assert version_members((("api", 9), ("api-v2", 1)), spec, "round_robin", "gateway", lambda _: 0.0) == [
        ("api", 0, Fraction(9, 20)), ("api", 1, Fraction(9, 20)), ("api-v2", 0, Fraction(1, 10))]
    # service balancing: each version's Service carries its whole weight.
    assert version_members((("api", 9), ("api-v2", 1)), spec, "round_robin", "service", lambda _: 0.0) == [
        ("api", 0, Fraction(9, 10)), ("api-v2", 0, Fraction(1, 10))]


@pytest.mark.parametrize(("load", "expected"), [
    (1000.0, [Fraction(2, 3), Fraction(1, 3)]),  # at or past Σμ = 300/s: ∝ μ
    (0.0, [Fraction(1), Fraction(0)]),  # no load: the fastest replica takes it
])
def test_version_members_split_latency_optimal_at_the_given_load(load: float, expected: list[Fraction]) -> None:
    raw = _with_canary(_raw())
    raw["workloads"][0]["response_time_ms"] = [50, 100]  # μ = 200/s and 100/s
    raw["traffic"] = {"api": 150}  # the declared peak (150/s) is not the load the caller passes in
    spec = _spec(raw)
    assert spec.workload_peak_rps("api") == 150
    members = version_members((("api", 1),), spec, "latency_optimal", "gateway", lambda name: load if name == "api" else 0.0)
    assert [share for _, _, share in members] == expected


# --- the call graph ------------------------------------------------------------------------------------------


def test_versions_are_the_split_or_the_workload_alone() -> None:
    spec = _spec(_with_canary(_raw()))
    assert versions(spec, "api") == (("api", 9), ("api-v2", 1))
    assert versions(spec, "web") == (("web", 1),)


def test_mesh_hops_go_straight_to_each_version_on_its_own_port() -> None:
    spec = _spec(_with_canary(_raw(), port=8001))
    flows = hops(spec, service_proxies=False)
    assert Flow("web", "api", 8000) in flows
    assert Flow("web", "api-v2", 8001) in flows
    assert not any(f.destination == proxy_name("api") for f in flows)
    assert Flow(GATEWAY, "web", 3000) in flows


# --- call policy checks --------------------------------------------------------------------------------------


def test_a_valid_split_is_accepted() -> None:
    spec = parse_spec(_with_canary(_raw()))
    split = spec.workload("api").traffic_policy.split
    assert split is not None and [v.workload for v in split] == ["api", "api-v2"]


def test_a_version_of_another_protocol_is_reported_at_its_split_entry() -> None:
    found = _problems(_with_canary(_raw(), protocol="tcp"))
    key = "netopt:workloads[0].traffic_policy.split[1].workload"
    assert "speaks tcp" in found[key] and "one protocol" in found[key]


def test_a_version_in_two_splits_is_reported_at_the_second() -> None:
    raw = _with_canary(_raw())
    raw["workloads"].append({"name": "cart", "image": "c:1", "port": 8000, "response_time_ms": 50, "max_concurrency": 10,
                             "traffic_policy": {"split": [{"workload": "cart"}, {"workload": "api-v2"}]}})
    raw["workloads"][1]["calls"].append({"workload": "cart"})
    found = _problems(raw)
    assert "already a version of 'api'" in found["netopt:workloads[3].traffic_policy.split[1].workload"]
    assert "netopt:workloads[0].traffic_policy.split[1].workload" not in found


def test_calling_a_version_directly_is_reported_at_the_call() -> None:
    raw = _with_canary(_raw())
    raw["workloads"].append({"name": "batch", "image": "b:1", "port": 7000, "response_time_ms": 10, "max_concurrency": 4,
                             "calls": [{"workload": "web"}, {"workload": "api-v2"}]})
    found = _problems(raw)
    key = "netopt:workloads[3].calls[1].workload"
    assert "a version of 'api'" in found[key] and "call 'api' instead" in found[key]
    assert list(found) == [key]


def test_a_workload_named_like_a_callees_backend_service_is_reported_at_its_name() -> None:
    raw = _raw()
    raw["workloads"][1]["calls"] = [{"workload": "api"}]
    raw["workloads"].append({"name": "api-backend", "image": "x:1", "port": 1, "response_time_ms": 1, "max_concurrency": 1})
    found = _problems(raw)
    assert list(found) == ["netopt:workloads[2].name"]
    assert "'api-backend'" in found["netopt:workloads[2].name"] and "'api'" in found["netopt:workloads[2].name"]


def test_a_proxy_like_name_is_fine_when_nobody_calls_the_workload() -> None:
    raw = _raw()
    raw["workloads"].append({"name": "api-proxy", "image": "x:1", "port": 1, "response_time_ms": 1, "max_concurrency": 1})
    assert [w.name for w in parse_spec(raw).workloads] == ["api", "web", "api-proxy"]


@pytest.mark.parametrize(("policy", "key", "fragment"), [
    ({"limit_rps": 5}, "limit_rps", "counts connections"),
    ({"burst": 5}, "burst", "counts connections"),
    ({"retries": {"conditions": ["error"]}}, "retries", "connection attempt"),
    ({"retries": {"non_idempotent": True}}, "retries", "connection attempt"),
    ({"balancing": "consistent_hash", "hash_key": "uri"}, "hash_key", "client_ip"),
])
def test_what_a_tcp_proxy_cannot_do_is_reported_at_its_key(policy: dict[str, Any], key: str, fragment: str) -> None:
    found = _problems(_tcp_api(_raw(), **policy))
    path = f"netopt:workloads[0].traffic_policy.{key}"
    assert list(found) == [path]
    assert "'api' speaks tcp" in found[path] and fragment in found[path]


def test_a_tcp_policy_with_only_tries_and_client_ip_hashing_is_accepted() -> None:
    spec = parse_spec(_tcp_api(_raw(), balancing="consistent_hash", hash_key="client_ip", retries={"tries": 3}))
    assert spec.workload("api").traffic_policy.retries.tries == 3


@pytest.mark.parametrize("limits", [{"limit_rps": 5}, {"burst": 2}])
def test_a_rate_limit_on_a_call_to_tcp_is_reported_at_the_call(limits: dict[str, Any]) -> None:
    raw = _tcp_api(_raw())
    raw["workloads"][1]["calls"][0].update(limits)
    found = _problems(raw)
    path = "netopt:workloads[1].calls[0].limit_rps"
    assert list(found) == [path]
    assert "'api' speaks tcp" in found[path] and "max_concurrency" in found[path]
