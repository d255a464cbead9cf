"""Edges of the call plan: callee policies (components/plan/calls.py), the service proxy built from them
(components/plan/service_proxy.py) and the capacity rows of calls, routes and consumers (components/plan/capacity.py).

Every expectation is worked by hand from the documented semantics (README "Calls between workloads", the docstrings
of `TrafficPolicy`, `CallRetries`, `ClientSettings`, `status_port`, `upstream_name`).
"""

from __future__ import annotations

from typing import Any

import pytest

from components.plan.build import Plan
from components.plan.capacity import compute_capacity
from components.plan.ir import Method, Proxy
from components.spec.validation import parse_spec
from tests.conftest import plan_of
from tests.test_calls import graph as _graph  # web and batch call api: 2 replicas × 10 in flight at 50 ms (400 calls/s)
from tests.test_calls import tcp as _tcp


def _plan(raw: dict[str, Any]) -> Plan:
    return plan_of(parse_spec(raw))


def _api_proxy(plan: Plan) -> Proxy:
    (proxy,) = [p for p in plan.services if p.workload == "api"]
    return proxy


def _with_metrics(minimal: dict[str, Any], metrics_port: int, *, main_call: bool = True) -> dict[str, Any]:
    """api also serves `metrics` (tcp) on `metrics_port`; web calls api:metrics first, then (if `main_call`) api's
    main port."""
    raw = minimal
    raw["workloads"][0]["ports"] = [{"name": "metrics", "port": metrics_port}]
    calls: list[dict[str, Any]] = [{"workload": "api", "port": "metrics"}]
    if main_call:
        calls.append({"workload": "api", "ratio": 0.3})
    raw["workloads"][1]["calls"] = calls
    raw["traffic"] = {"web": 100}
    return raw


# --- calls.py: the callee's policy ------------------------------------------------------------------------------


def test_http_callers_may_hold_twice_their_share_of_calls_in_flight_at_most_all(minimal: dict[str, Any]) -> None:
    plan = _plan(_graph(minimal))
    # shares 30/40 and 10/40 of api's 20 in flight: ceil(2 × 20 × 3/4) = 30 capped at 20; ceil(2 × 20 × 1/4) = 10.
    assert [(e.caller, e.max_concurrency) for e in plan.edges] == [("web", 20), ("batch", 10)]


def test_tcp_callers_connection_caps_round_down_to_their_share(minimal: dict[str, Any]) -> None:
    plan = _plan(_tcp(_graph(minimal)))
    # a stream proxy's caps must add up to no more than api's 20: floor(20 × 3/4) = 15, floor(20 × 1/4) = 5.
    assert [(e.caller, e.max_concurrency) for e in plan.edges] == [("web", 15), ("batch", 5)]


def test_the_callees_concurrency_is_its_replicas_times_their_max_concurrency(minimal: dict[str, Any]) -> None:
    policy = _plan(_graph(minimal)).edges[0].policy
    assert policy.concurrency == 20  # 2 replicas × 10 in flight
    assert isinstance(policy.concurrency, int)


def test_an_http_callee_times_out_at_ten_slowest_response_times_not_its_idle_timeout(minimal: dict[str, Any]) -> None:
    raw = _graph(minimal)
    raw["workloads"][0].update(response_time_ms=[20, 300], idle_timeout_s=75)
    assert _plan(raw).edges[0].policy.timeout_s == pytest.approx(3.0)  # 10 × 0.3 s, within [1, 60]


def test_a_tcp_callee_times_out_at_its_idle_timeout(minimal: dict[str, Any]) -> None:
    policy = _plan(_tcp(_graph(minimal), idle_timeout_s=300)).edges[0].policy
    assert policy.timeout_s == 300  # not 10 × 50 ms (→ 1 s): an idle pooled connection is normal


def test_consistent_hash_keeps_its_key_into_the_proxy(minimal: dict[str, Any]) -> None:
    raw = _graph(minimal)
    raw["workloads"][0]["traffic_policy"] = {"balancing": "consistent_hash", "hash_key": "uri"}
    plan = _plan(raw)
    assert plan.edges[0].policy.hash_key == "uri"
    assert _api_proxy(plan).upstreams[0].method == Method("hash", "uri")


def test_non_idempotent_retries_reach_the_policy_and_the_proxy(minimal: dict[str, Any]) -> None:
    raw = _graph(minimal)
    raw["workloads"][0]["traffic_policy"] = {"retries": {"tries": 3, "non_idempotent": True}}
    plan = _plan(raw)
    assert plan.edges[0].policy.retries.non_idempotent is True
    assert plan.edges[0].policy.retries.tries == 3
    assert _api_proxy(plan).retries.non_idempotent is True


def test_callers_without_declared_traffic_split_the_callee_equally(minimal: dict[str, Any]) -> None:
    raw = _graph(minimal)
    del raw["traffic"]
    plan = _plan(raw)
    # two callers, no declared rate: half of 400/s each, and of the 20 in flight min(20, ceil(2 × 20 / 2)) = 20.
    assert [e.limit_rps for e in plan.edges] == [pytest.approx(200), pytest.approx(200)]
    assert [e.burst for e in plan.edges] == [200, 200]


def test_a_tcp_callee_without_declared_traffic_splits_its_connections_equally(minimal: dict[str, Any]) -> None:
    raw = _tcp(_graph(minimal))
    del raw["traffic"]
    assert [e.max_concurrency for e in _plan(raw).edges] == [10, 10]  # floor(20 / 2) each


def test_a_call_naming_the_main_ports_protocol_is_a_call_to_the_main_port(minimal: dict[str, Any]) -> None:
    raw = _graph(minimal)
    raw["workloads"][1]["calls"][0]["port"] = "http"  # api's main port is http on 8000
    plan = _plan(raw)
    web = plan.edges[0]
    assert (web.caller, web.name) == ("web", "web.api")
    assert web.policy.port_name is None
    assert (web.policy.protocol, web.policy.port) == ("http", 8000)
    assert web.limit_rps == pytest.approx(300)  # still one share of api's main port with batch's: 3/4 of 400
    assert len(plan.services) == 1 and _api_proxy(plan).listen_port == 8000


def test_a_call_to_another_named_port_is_a_tcp_pass_through(minimal: dict[str, Any]) -> None:
    plan = _plan(_with_metrics(minimal, 9100, main_call=False))
    (edge,) = plan.edges
    assert (edge.name, edge.policy.port_name, edge.policy.port, edge.policy.protocol) == ("web.api:metrics", "metrics", 9100, "tcp")
    assert edge.limit_rps is None


# --- capacity.py --------------------------------------------------------------------------------------------------


def test_call_rows_share_the_callees_capacity_and_fit_it(minimal: dict[str, Any]) -> None:
    capacity = compute_capacity(_plan(_graph(minimal)))
    rows = {(r.caller, r.callee): r for r in capacity.edges}
    web, batch = rows[("web", "api")], rows[("batch", "api")]
    # limits 300 and 100 of api's 400/s: shares 3/4 and 1/4, adding up to exactly what api serves.
    assert [web.capacity_share, batch.capacity_share] == [pytest.approx(0.75), pytest.approx(0.25)]
    # http callers fit by rate (300 + 100 ≤ 400) even though their in-flight caps (20 + 10) exceed api's 20.
    assert web.callers_fit and batch.callers_fit
    assert web.admits_declared and batch.admits_declared  # 300 ≥ 30 and 100 ≥ 10


def test_http_callers_whose_limits_exceed_the_callee_do_not_fit(minimal: dict[str, Any]) -> None:
    raw = _graph(minimal)
    raw["workloads"][1]["calls"][0]["limit_rps"] = 301  # 301 + 100 > 400
    rows = compute_capacity(_plan(raw)).edges
    assert [r.callers_fit for r in rows] == [False, False]
    assert rows[0].capacity_share == pytest.approx(301 / 400)


def test_tcp_callers_fit_by_connections_not_by_rate(minimal: dict[str, Any]) -> None:
    raw = _tcp(_graph(minimal))
    fitting = compute_capacity(_plan(raw)).edges
    assert [(r.limit_rps, r.capacity_share, r.callers_fit) for r in fitting] == [(None, None, True), (None, None, True)]  # 15 + 5 ≤ 20
    raw["workloads"][1]["calls"][0]["max_concurrency"] = 18  # 18 + 5 connections > the 20 api holds
    assert [r.callers_fit for r in compute_capacity(_plan(raw)).edges] == [False, False]


def test_a_route_row_carries_its_rate_limit(minimal: dict[str, Any]) -> None:
    routes = {r.route: r for r in compute_capacity(_plan(minimal)).routes}
    assert (routes["api"].rate_limit, routes["api"].limit_rps, routes["api"].burst) == ("per_ip", 10, 5)
    assert (routes["web"].rate_limit, routes["web"].limit_rps, routes["web"].burst) == (None, None, None)


def test_a_consumers_load_spreads_evenly_over_its_replicas(minimal: dict[str, Any]) -> None:
    raw = minimal
    raw["workloads"].append({"name": "worker", "image": "w:1", "replicas": 3, "response_time_ms": 10, "max_concurrency": 5,
                             "load_rps": 30, "health": {"kind": "none"}})
    capacity = compute_capacity(_plan(raw))
    rows = [r for r in capacity.replicas if r.workload == "worker"]
    assert [r.from_load_rps for r in rows] == [pytest.approx(10)] * 3
    assert [r.offered_rps for r in rows] == [pytest.approx(10)] * 3
    (worker,) = [w for w in capacity.workloads if w.workload == "worker"]
    assert [worker.from_load_rps, worker.from_gateway_rps] == pytest.approx([30, 0])


# --- service_proxy.py ---------------------------------------------------------------------------------------------


def test_a_service_proxy_names_its_stack_and_lets_every_caller_keep_its_connections(minimal: dict[str, Any]) -> None:
    proxy = _api_proxy(_plan(_graph(minimal)))
    assert proxy.environment == "test"
    assert proxy.client.allowed_sources == ("0.0.0.0/0", "::/0")  # the network decides who reaches it
    assert proxy.client.keepalive_requests == 1_000_000  # not nginx's 10,000: a GOAWAY fails the calls in flight


def test_a_service_proxys_one_location_is_a_hostless_prefix_that_stops_regex_search(minimal: dict[str, Any]) -> None:
    proxy = _api_proxy(_plan(_graph(minimal)))
    assert [s.caller for s in proxy.servers] == ["web", "batch"]
    for server in proxy.servers:
        (location,) = server.locations
        assert (location.kind, location.path, location.stops_regex) == ("prefix", "/", True)
        (rule,) = location.rules
        assert rule.route.host is None and rule.host_specific is False


def test_an_upstream_without_a_split_carries_no_weight_in_its_name_and_pools_connections(minimal: dict[str, Any]) -> None:
    proxy = _api_proxy(_plan(_graph(minimal)))
    (upstream,) = proxy.upstreams
    assert upstream.name == "up_api"
    assert upstream.keepalive is not None
    assert upstream.keepalive.connections == 64  # the gateway's default keepalive pool


def test_main_port_and_named_port_share_one_proxy_led_by_the_main_ports_policy(minimal: dict[str, Any]) -> None:
    proxy = _api_proxy(_plan(_with_metrics(minimal, 9100)))  # web's metrics call comes first
    assert (proxy.protocol, proxy.listen_port) == ("http", 8000)
    assert proxy.timeouts.read_s == pytest.approx(1.0)  # http: max(1 s, 10 × 50 ms), not the 75 s idle timeout
    main, metrics = proxy.upstreams  # the main port's upstream first, then the named ports by name
    assert (main.name, metrics.name) == ("up_api", "up_api_metrics")
    assert {s.port for s in main.servers} == {None}
    assert [(s.workload, s.replica, s.port) for s in metrics.servers] == [("api", 0, 9100), ("api", 1, 9100)]
    assert metrics.keepalive is None  # a stream upstream
    assert [(s.caller, s.port) for s in proxy.servers] == [("web", None), ("web", 9100)]


def test_named_ports_are_served_in_name_order(minimal: dict[str, Any]) -> None:
    raw = minimal
    raw["workloads"][0]["ports"] = [{"name": "metrics", "port": 9100}, {"name": "admin", "port": 9200}]
    raw["workloads"][1]["calls"] = [{"workload": "api"}, {"workload": "api", "port": "metrics"}, {"workload": "api", "port": "admin"}]
    proxy = _api_proxy(_plan(raw))
    assert [u.name for u in proxy.upstreams] == ["up_api", "up_api_admin", "up_api_metrics"]


def test_a_proxy_of_a_named_port_only_listens_on_that_port(minimal: dict[str, Any]) -> None:
    proxy = _api_proxy(_plan(_with_metrics(minimal, 9100, main_call=False)))
    assert (proxy.protocol, proxy.listen_port) == ("tcp", 0)
    assert [s.port for s in proxy.servers] == [9100]
    assert proxy.status_port == 8081  # the gateway's: nothing else binds it


def test_the_status_port_steps_past_a_named_port_the_proxy_serves(minimal: dict[str, Any]) -> None:
    proxy = _api_proxy(_plan(_with_metrics(minimal, 8081)))  # the gateway's status port
    assert 8081 in {s.port for s in proxy.servers}
    assert proxy.status_port == 8082  # the next port it does not listen on
    assert proxy.ports == [8000, 8081, 8082]
