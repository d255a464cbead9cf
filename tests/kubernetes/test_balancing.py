"""Service balancing: one upstream member per workload Service, and a capacity model that says what kube-proxy does."""

from __future__ import annotations

import copy
import re
from fractions import Fraction
from typing import Any

import pytest

from components.plan.addressing import kubernetes_service_host
from components.plan.balancing import target_balancing, upstream_members
from components.plan.capacity import compute_capacity
from components.plan.scores import compute_scores
from components.resources.app_network import analyse
from components.spec.schema import Spec
from components.spec.validation import SpecError, parse_spec
from components.targets import proxy_config, target_for
from tests.conftest import STACKS, plan_of, stack_spec
from tests.kubernetes.conftest import PROD

ALGORITHMS = ["round_robin", "weighted", "least_conn", "ip_hash", "consistent_hash", "latency_weighted", "latency_optimal"]


def _gateway(algorithm: str) -> dict[str, Any]:
    return {"image": "nginx:1.27.3", "algorithm": algorithm, **({"hash_key": "client_ip"} if algorithm == "consistent_hash" else {})}


def _uneven(raw: dict[str, Any], algorithm: str) -> dict[str, Any]:
    """api: 3 replicas, one of them slow; one route split 3:1 between api and web."""
    raw = copy.deepcopy(raw)
    raw["gateway"] = _gateway(algorithm)
    raw["workloads"][0].update(replicas=3, response_time_ms=[20, 20, 80])
    raw["routes"][0]["backends"] = [{"workload": "api", "weight": 3}, {"workload": "web", "weight": 1}]
    raw["traffic"] = {"api": 100}
    return raw


def test_each_target_reports_the_balancing_the_plan_uses() -> None:
    for stack in STACKS:
        spec = stack_spec(stack)
        _, plan, report = analyse(spec)
        assert plan.balancing == target_balancing(spec.target) == report["balancing"]
    assert analyse(stack_spec(PROD))[2]["balancing"] == "service"
    assert analyse(stack_spec("dev"))[2]["balancing"] == "gateway"


def test_prod_upstreams_have_one_member_per_workload_service() -> None:
    spec = stack_spec(PROD)
    plan = plan_of(spec)
    addresses = target_for(spec).address_map()
    assert all(len(members) == 1 for members in addresses.values())
    for route in spec.routes:
        upstream = next(u for u in plan.gateway.upstreams if u.name == plan.gateway.route_upstreams[route.name])
        assert [s.workload for s in upstream.servers] == [b.workload for b in route.backends]
        assert all(s.replica == 0 for s in upstream.servers)
        weights = [s.weight for s in upstream.servers]
        assert [Fraction(w, sum(weights)) for w in weights] == [Fraction(b.weight, sum(x.weight for x in route.backends)) for b in route.backends]
        for server in upstream.servers:
            assert server.max_fails == 0, "a Service member is never ejected: that would drop every healthy pod with it"
            assert server.max_conns == spec.workload(server.workload).max_concurrency * spec.workload(server.workload).replicas
    api = next(u for u in plan.gateway.upstreams if u.name == "up_api_90_api_2dcanary_10")
    # api autoscales 3..6: admission is sized for the 3 pods the capacity model plans with, not for 6
    assert [(s.workload, s.weight, s.max_conns) for s in api.servers] == [("api", 9, 32 * 3), ("api-canary", 1, 32 * 3)]


def _rendered_max_conns(spec: Spec, workload: str) -> int:
    target, plan, _ = analyse(spec)
    config = proxy_config(target, plan.gateway)
    found = {int(n) for n in re.findall(rf"server {re.escape(kubernetes_service_host(spec, workload))}:\d+ .*max_conns=(\d+);", config)}
    assert len(found) == 1, found
    return found.pop()


@pytest.mark.parametrize(("peak", "clients", "admits_peak", "admitted_within"), [
    (100, 1, True, True),     # 100 req/s of 400; the limit admits 10
    (399, 10, True, True),    # just below 400; admits 100
    (401, 10, False, True),   # just above
    (1000, 50, False, False),  # admits 500 > 400: the limit lets through more than the pods serve
    (300, 45, True, False),   # admits 450 > 400
])
def test_nginx_admits_what_the_capacity_table_says_the_minimum_pods_serve(k8s_minimal: dict[str, Any], peak: float, clients: int,
                                                                          admits_peak: bool, admitted_within: bool) -> None:
    """Hand-worked: api runs 2 pods, 10 requests in service each at 50 ms: 2 x 10 / 0.05 = 400 req/s, and nginx's
    max_conns for the api Service is 2 x 10 = 20 in flight (Little: 400 req/s x 0.05 s). Its autoscaler may add 4
    more pods, but admission is sized for the 2 the capacity model plans with (6 would say 60). The route's limit
    admits 10 req/s per client."""
    k8s_minimal["kubernetes"] = {"autoscaling": {"api": {"max_replicas": 6}}}
    k8s_minimal["traffic"] = {"api": {"peak_rps": peak, "clients": clients}}
    spec = parse_spec(k8s_minimal)
    assert _rendered_max_conns(spec, "api") == 20
    capacity = compute_capacity(plan_of(spec))
    rows = [r for r in capacity.replicas if r.workload == "api"]
    assert [r.service_rate_rps for r in rows] == pytest.approx([200.0, 200.0])
    workload = next(w for w in capacity.workloads if w.workload == "api")
    assert workload.admits_peak == admits_peak
    route = next(r for r in capacity.routes if r.route == "api")
    assert route.admitted_max_rps == pytest.approx(10.0 * clients)
    assert (max(r.admitted_utilization or 0.0 for r in rows) < 1) == admitted_within


@pytest.mark.parametrize("stack", [s for s in STACKS if stack_spec(s).target == "docker"])
def test_docker_plans_keep_one_member_per_replica(stack: str) -> None:
    spec = stack_spec(stack)
    plan = plan_of(spec)
    for upstream in plan.gateway.upstreams:
        for server in upstream.servers:
            assert server.max_fails == spec.gateway.passive_health.max_fails
            assert server.max_conns == spec.workload(server.workload).max_concurrency
    members = {(s.workload, s.replica) for u in plan.gateway.upstreams for s in u.servers}
    routed = {b.workload for r in spec.routes for b in r.backends}
    assert members == {(w.name, r) for w in spec.workloads if w.name in routed for r in range(w.replicas)}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_capacity_spreads_a_workload_evenly_whatever_the_algorithm(k8s_minimal: dict[str, Any], algorithm: str) -> None:
    spec = parse_spec(_uneven(k8s_minimal, algorithm))
    _, plan, report = analyse(spec)
    rows = {(r.workload, r.replica): r for r in compute_capacity(plan).replicas}
    # 100 req/s split 3:1: api 75 over 3 pods (kube-proxy: equal per pod whatever nginx's algorithm), web 25
    assert [rows[("api", r)].offered_rps for r in range(3)] == pytest.approx([25.0, 25.0, 25.0])
    assert rows[("web", 0)].offered_rps == pytest.approx(25.0)
    # utilization = λ·t / c: 25 x 0.02 / 10 = 0.05 for the fast pods, 25 x 0.08 / 10 = 0.2 for the slow one
    reported = {(r["workload"], r["replica"]): r["utilization"] for r in report["capacity"]["replicas"]}
    assert reported == pytest.approx({("api", 0): 0.05, ("api", 1): 0.05, ("api", 2): 0.2, ("web", 0): 25 * 0.02 / 20})


@pytest.mark.parametrize("algorithm", ["least_conn", "latency_weighted", "latency_optimal"])
def test_docker_capacity_still_follows_the_adaptive_algorithms(minimal: dict[str, Any], algorithm: str) -> None:
    raw = _uneven(minimal, algorithm)
    _, plan, _ = analyse(parse_spec(raw))
    rows = {(r.workload, r.replica): r for r in compute_capacity(plan).replicas}
    assert rows[("api", 2)].offered_rps < rows[("api", 0)].offered_rps


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_scores_do_not_depend_on_the_target(minimal: dict[str, Any], k8s_minimal: dict[str, Any], algorithm: str) -> None:
    """Same replicas and response times, same locations, same limits: the nginx config differs only in members.
    Hand-worked: LB = (1/4)(1/0.02 + 1/0.02 + 1/0.08 + 1/0.02) = 40.625 /s; two prefix routes, R = 1; api limited
    to 10 req/s, web unlimited: F = (1/10 + 0) / 2 = 0.05."""
    for raw in (minimal, k8s_minimal):
        scores = compute_scores(plan_of(parse_spec(_uneven(raw, algorithm))))
        assert (scores.load_balancing, scores.routing, scores.flow_control) == pytest.approx((40.625, 1.0, 0.05))


@pytest.mark.parametrize("algorithm", ["latency_weighted", "latency_optimal"])
def test_route_split_is_the_only_weight_nginx_applies(k8s_minimal: dict[str, Any], algorithm: str) -> None:
    spec = parse_spec(_uneven(k8s_minimal, algorithm))
    assert upstream_members(spec.routes[0], spec, "service") == [("api", 0, Fraction(3, 4)), ("web", 0, Fraction(1, 4))]
    assert not any(server.backup for upstream in plan_of(spec).gateway.upstreams for server in upstream.servers)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda raw: raw["workloads"][0].update(replica_weights=[1, 2]), "replica_weights cannot hold on the kubernetes target"),
    (lambda raw: raw.update(kubernetes={"autoscaling": {"apx": {"max_replicas": 4}}}), "no workload named 'apx'"),
    (lambda raw: raw.update(kubernetes={"autoscaling": {"api": {"max_replicas": 1}}}), "max_replicas"),
    (lambda raw: raw.update(kubernetes={"autoscaling": {"web": {"max_replicas": 3, "cpu_utilization_percent": 5}}}), "cpu_utilization_percent"),
    (lambda raw: raw.update(kubernetes={"render_yaml_to_dir": "x"}), "render_yaml_to_directory"),
    (lambda raw: raw["workloads"][1].update(name="gateway") or raw["routes"][1]["backends"][0].update(workload="gateway"), "collide"),
])
def test_kubernetes_settings_are_checked(k8s_minimal: dict[str, Any], edit: Any, message: str) -> None:
    edit(k8s_minimal)
    with pytest.raises(SpecError, match=message):
        parse_spec(k8s_minimal)


def test_docker_target_ignores_kubernetes_settings_but_keeps_replica_weights(minimal: dict[str, Any]) -> None:
    minimal["workloads"][0]["replica_weights"] = [1, 2]
    minimal["kubernetes"] = {"autoscaling": {"api": {"max_replicas": 4}}}
    spec = parse_spec(minimal)
    assert spec.max_replicas("api") == 2
    assert plan_of(spec).balancing == "gateway"
