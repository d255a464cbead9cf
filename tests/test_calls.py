"""Calls' policies resolved by the plan (components/plan/calls.py), each default checked against a hand-worked value."""

from __future__ import annotations

from typing import Any

import pytest

from components.plan.build import build_plan
from components.plan.deployment import Deployment
from components.spec.validation import SpecError, parse_spec
from tests.conftest import plan_of


def graph(minimal: dict[str, Any]) -> dict[str, Any]:
    """web (routed, 100 req/s) and batch (routed, 20 req/s) both call api; api: 2 replicas × 10 in flight at 50 ms."""
    raw = minimal
    raw["workloads"][1]["calls"] = [{"workload": "api", "ratio": 0.3}]
    raw["workloads"].append({"name": "batch", "image": "b:1", "port": 7000, "response_time_ms": 10, "max_concurrency": 4,
                             "calls": [{"workload": "api", "ratio": 0.5}]})
    raw["routes"].append({"name": "batch", "match": {"path": "/batch/"}, "backends": [{"workload": "batch"}]})
    raw["traffic"] = {"web": 100, "batch": 20}
    return raw


def tcp(raw: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """api speaks tcp: the gateway (HTTP only) no longer routes to it."""
    raw["workloads"][0].update(protocol="tcp", **fields)
    raw["routes"] = [r for r in raw["routes"] if r["name"] != "api"]
    return raw


def test_default_limits_share_the_callees_capacity_by_declared_call_rate(minimal: dict[str, Any]) -> None:
    plan = plan_of(parse_spec(graph(minimal)))
    edges = {(e.caller, e.callee): e for e in plan.edges}
    web, batch = edges[("web", "api")], edges[("batch", "api")]
    # api serves 2 × 10 / 0.05 s = 400 calls/s; web declares 100 × 0.3 = 30/s, batch 20 × 0.5 = 10/s: shares 3/4 and 1/4.
    assert web.policy.capacity_rps == pytest.approx(400)
    assert [web.declared_rps, batch.declared_rps] == pytest.approx([30, 10])
    assert [web.limit_rps, batch.limit_rps] == pytest.approx([300, 100])
    assert (web.burst, batch.burst) == (300, 100)  # one second of the limit
    # 20 calls in flight (2 replicas × 10), each caller twice its share, at most all: min(20, 30) and 10.
    assert (web.max_concurrency, batch.max_concurrency) == (20, 10)


def test_a_caller_without_declared_traffic_gets_an_equal_share(minimal: dict[str, Any]) -> None:
    raw = graph(minimal)
    del raw["traffic"]
    plan = plan_of(parse_spec(raw))
    assert [e.limit_rps for e in plan.edges] == [pytest.approx(200), pytest.approx(200)]


def test_overrides_on_the_call_beat_the_callees_defaults(minimal: dict[str, Any]) -> None:
    raw = graph(minimal)
    raw["workloads"][0]["traffic_policy"] = {"limit_rps": 50, "max_concurrency": 3, "timeout_s": 2.5}
    raw["workloads"][1]["calls"][0] |= {"limit_rps": 0.5, "burst": 2}
    plan = plan_of(parse_spec(raw))
    edges = {e.caller: e for e in plan.edges}
    assert (edges["web"].limit_rps, edges["web"].burst, edges["web"].max_concurrency) == (0.5, 2, 3)
    assert (edges["batch"].limit_rps, edges["batch"].burst, edges["batch"].max_concurrency) == (50, 50, 3)
    assert edges["web"].policy.timeout_s == 2.5


@pytest.mark.parametrize(("times", "expected"), [(50, 1.0), (300, 3.0), (123, 1.23), (9000, 60.0)])
def test_the_default_timeout_is_ten_slowest_response_times_within_one_to_sixty_seconds(
        minimal: dict[str, Any], times: float, expected: float) -> None:
    raw = graph(minimal)
    raw["workloads"][0]["response_time_ms"] = [20, times]
    assert plan_of(parse_spec(raw)).edges[0].policy.timeout_s == pytest.approx(expected)


def test_a_tcp_callee_has_no_rate_and_an_idle_timeout(minimal: dict[str, Any]) -> None:
    plan = plan_of(parse_spec(tcp(graph(minimal), idle_timeout_s=300)))
    assert [e.limit_rps for e in plan.edges] == [None, None]
    assert plan.edges[0].policy.timeout_s == 300
    # connection caps round down so the callers together fit the 20 connections api holds: 15 and 5.
    assert sum(e.max_concurrency for e in plan.edges) <= 20


def test_a_split_saturates_when_its_first_version_does(minimal: dict[str, Any]) -> None:
    raw = graph(minimal)
    raw["workloads"].append({"name": "api-v2", "image": "api:2", "port": 8000, "response_time_ms": 100, "max_concurrency": 10})
    raw["workloads"][0]["traffic_policy"] = {"split": [{"workload": "api", "weight": 3}, {"workload": "api-v2", "weight": 1}]}
    plan = plan_of(parse_spec(raw))
    policy = plan.edges[0].policy
    # api: 400/s at 3/4 of the calls -> λ ≤ 533.3; api-v2: 1 × 10 / 0.1 = 100/s at 1/4 -> λ ≤ 400: the split serves 400/s.
    assert policy.capacity_rps == pytest.approx(400)
    assert policy.versions == (("api", 3), ("api-v2", 1))
    (proxy,) = plan.services
    weights = {(s.workload, s.replica): s.weight for s in proxy.upstreams[0].servers}
    # least_conn within a version spreads by service rate; across versions the split's 3:1 holds: 3/8, 3/8, 1/4.
    assert weights == {("api", 0): 3, ("api", 1): 3, ("api-v2", 0): 2}


def test_per_caller_servers_on_links_and_one_server_of_totals_without_identity(minimal: dict[str, Any]) -> None:
    spec = parse_spec(graph(minimal))
    (linked,) = build_plan(spec, Deployment("gateway", "link")).services
    assert [s.caller for s in linked.servers] == ["web", "batch"]
    assert {(l.name, l.kind): l.rps or l.connections for l in linked.limits} == {
        ("web", "rate"): pytest.approx(300), ("batch", "rate"): pytest.approx(100), ("web", "concurrency"): 20, ("batch", "concurrency"): 10}
    (shared,) = build_plan(spec, Deployment("service", "none")).services
    assert [s.caller for s in shared.servers] == [None]
    assert {(l.name, l.kind): l.rps or l.connections for l in shared.limits} == {("-", "rate"): pytest.approx(400), ("-", "concurrency"): 30}
    assert build_plan(spec, Deployment("service", "mesh")).services == ()


def test_routing_and_flow_scores_count_every_call_route(minimal: dict[str, Any]) -> None:
    from components.plan.scores import compute_scores

    scores = compute_scores(plan_of(parse_spec(graph(minimal))))
    r = {i.item: i.value for i in scores.r}
    f = {i.item: i.value for i in scores.f_rps}
    assert r["web.api"] == r["batch.api"] == 1
    assert [f["web.api"], f["batch.api"]] == pytest.approx([300, 100])
    # Gateway routes: api (prefix, 1 step + the map dispatch? no: one route per location) -> r = 1 each, f = 10 and ∞.
    assert scores.routing == pytest.approx(sum(1 / v for v in r.values() if v) / len(r))


@pytest.mark.parametrize(("change", "key", "fragment"), [
    (lambda raw: tcp(raw, traffic_policy={"limit_rps": 5}),
     "netopt:workloads[0].traffic_policy.limit_rps", "counts connections"),
    (lambda raw: tcp(raw)["workloads"][1]["calls"][0].update(limit_rps=5),
     "netopt:workloads[1].calls[0].limit_rps", "counts connections"),
    (lambda raw: raw["workloads"][0].update(traffic_policy={"split": [{"workload": "apii"}]}),
     "netopt:workloads[0].traffic_policy.split[0].workload", "did you mean"),
    (lambda raw: raw["workloads"].append({"name": "api-proxy", "image": "x:1", "port": 1, "response_time_ms": 1, "max_concurrency": 1}),
     "netopt:workloads[3].name", "service proxy"),
    (lambda raw: raw["workloads"].append({"name": "api-v2", "image": "api:2", "port": 8000, "response_time_ms": 50, "max_concurrency": 10})
     or raw["workloads"][0].update(traffic_policy={"split": [{"workload": "api"}, {"workload": "api-v2"}]})
     or raw["workloads"][2]["calls"].__setitem__(0, {"workload": "api-v2"}),
     "netopt:workloads[2].calls[0].workload", "a version of 'api'"),
    (lambda raw: raw["workloads"].append({"name": "api-v2", "image": "api:2", "port": 8000, "response_time_ms": 50, "max_concurrency": 10,
                                          "protocol": "grpc"})
     or raw["workloads"][0].update(traffic_policy={"split": [{"workload": "api"}, {"workload": "api-v2"}]}),
     "netopt:workloads[0].traffic_policy.split[1].workload", "speaks grpc"),
])
def test_what_a_call_policy_cannot_do_is_one_report_with_its_key(minimal: dict[str, Any], change: Any, key: str, fragment: str) -> None:
    raw = graph(minimal)
    change(raw)
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    report = caught.value.report()
    assert key in report, report
    assert fragment.lower() in report.lower()
