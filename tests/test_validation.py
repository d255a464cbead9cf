"""Spec validation: good configs pass; every kind of bad config is reported with its key path and a fix."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from components.balancing import nginx_shares, upstream_members
from components.plan import build_plan
from components.validation import SpecError, parse_spec
from tests.conftest import STACKS, stack_raw


def problems(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    return {issue.path: issue.message for issue in caught.value.issues}


@pytest.mark.parametrize("stack", STACKS)
def test_shipped_stacks_are_valid(stack: str) -> None:
    spec = parse_spec(stack_raw(stack))
    assert spec.environment == stack


def test_minimal_config_is_valid(minimal: dict[str, Any]) -> None:
    spec = parse_spec(minimal)
    assert [w.name for w in spec.workloads] == ["api", "web"]


def test_unknown_workload_reference_names_the_key_and_suggests(minimal: dict[str, Any]) -> None:
    minimal["routes"][0]["backends"][0]["workload"] = "apii"
    found = problems(minimal)
    assert "unknown workload 'apii'" in found["netopt:routes[0].backends[0].workload"]
    assert "Did you mean 'api'" in found["netopt:routes[0].backends[0].workload"]


def test_every_problem_is_reported_at_once(minimal: dict[str, Any]) -> None:
    minimal["routes"][0]["backends"][0]["workload"] = "apii"
    minimal["workloads"][0]["port"] = "eighty"
    minimal["workloads"][1]["replicas"] = 0
    minimal["gateway"]["algoritm"] = "least_conn"
    minimal["rate_limits"][0]["rps"] = -1
    found = problems(minimal)
    assert set(found) >= {
        "netopt:routes[0].backends[0].workload",
        "netopt:workloads[0].port",
        "netopt:workloads[1].replicas",
        "netopt:gateway.algoritm",
        "netopt:rate_limits[0].rps",
    }
    assert "Did you mean 'algorithm'" in found["netopt:gateway.algoritm"]


def test_unknown_top_level_key(minimal: dict[str, Any]) -> None:
    minimal["routs"] = []
    assert "Did you mean 'routes'" in problems(minimal)["netopt:routs"]


def test_duplicate_names(minimal: dict[str, Any]) -> None:
    minimal["workloads"][1]["name"] = "api"
    assert "duplicate name 'api'" in problems(minimal)["netopt:workloads[1].name"]


def test_unknown_rate_limit_and_traffic_route(minimal: dict[str, Any]) -> None:
    minimal["routes"][1]["rate_limit"] = "nope"
    minimal["traffic"] = {"wbe": 10}
    found = problems(minimal)
    assert "unknown rate limit 'nope'" in found["netopt:routes[1].rate_limit"]
    assert "Did you mean 'web'" in found["netopt:traffic.wbe"]


@pytest.mark.parametrize(
    ("path", "value", "key"),
    [
        (("routes", 0, "backends", 0, "weight"), 0, "netopt:routes[0].backends[0].weight"),
        (("workloads", 0, "response_time_ms"), 0, "netopt:workloads[0].response_time_ms"),
        (("rate_limits", 0, "rps"), 0, "netopt:rate_limits[0].rps"),
        (("rate_limits", 0, "rps"), 0.31, "netopt:rate_limits[0].rps"),
        (("workloads", 0, "max_concurrency"), -3, "netopt:workloads[0].max_concurrency"),
    ],
)
def test_non_positive_values(minimal: dict[str, Any], path: tuple[Any, ...], value: object, key: str) -> None:
    target: Any = minimal
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    assert key in problems(minimal)


def test_invalid_regex(minimal: dict[str, Any]) -> None:
    minimal["routes"][0]["match"] = {"path": "^/api/(v1", "path_type": "regex"}
    assert "not a valid regex" in problems(minimal)["netopt:routes[0].match"]


def test_conflicting_routes(minimal: dict[str, Any]) -> None:
    minimal["routes"].append({"name": "api2", "match": {"path": "/api/", "methods": ["GET"]}, "backends": [{"workload": "web"}]})
    assert "conflicts with netopt:routes[0]" in problems(minimal)["netopt:routes[2].match"]


def test_routes_split_by_method_do_not_conflict(minimal: dict[str, Any]) -> None:
    minimal["routes"][0]["match"]["methods"] = ["POST"]
    minimal["routes"].append({"name": "api_read", "match": {"path": "/api/", "methods": ["GET", "HEAD"]}, "backends": [{"workload": "web"}]})
    plan = build_plan(parse_spec(minimal))
    (location,) = [loc for server in plan.servers for loc in server.locations if loc.path == "/api/"]
    chain = {rule.route.name: rule.route.match.methods for rule in location.rules}
    # One location, its two routes told apart by method; other methods fall through to what `/` would serve.
    assert chain == {"api": ["POST"], "api_read": ["GET", "HEAD"], "web": None}
    assert plan.route_upstreams["api"] != plan.route_upstreams["api_read"]


def test_port_clash(minimal: dict[str, Any]) -> None:
    minimal["gateway"]["status_port"] = 8080
    assert "status port" in problems(minimal)["netopt:gateway"]


def test_keepalive_must_stay_below_backend_idle_timeout(minimal: dict[str, Any]) -> None:
    minimal["workloads"][1]["idle_timeout_s"] = 30
    minimal["gateway"]["keepalive"] = {"timeout_s": 60}
    assert "idle_timeout_s" in problems(minimal)["netopt:gateway.keepalive.timeout_s"]


def test_docker_target_needs_a_subnet_with_room(minimal: dict[str, Any]) -> None:
    del minimal["network"]["subnet"]
    assert "needs an IPv4 subnet" in problems(minimal)["netopt:network.subnet"]
    minimal["network"]["subnet"] = "10.9.0.0/29"
    assert "larger subnet" in problems(minimal)["netopt:network.subnet"]


def test_consistent_hash_needs_a_key(minimal: dict[str, Any]) -> None:
    minimal["gateway"]["algorithm"] = "consistent_hash"
    assert "hash_key" in problems(minimal)["netopt:gateway"]


def test_latency_optimal_needs_the_peak_of_every_route_to_unequal_replicas(minimal: dict[str, Any]) -> None:
    minimal["gateway"]["algorithm"] = "latency_optimal"
    minimal["workloads"][0]["response_time_ms"] = [10, 50]
    minimal["routes"].append({"name": "api2", "match": {"path": "/v2/"}, "backends": [{"workload": "api", "weight": 3}, {"workload": "web"}]})
    minimal["traffic"] = {"api": 100, "api2": 0}
    minimal["workloads"][1]["idle_timeout_s"] = 30  # another consistency problem: reported in the same report
    found = problems(minimal)
    message = found["netopt:traffic.api2"]
    assert "latency_optimal" in message and "workload 'api'" in message and "declared peak" in message
    assert "declare the route's peak" in message and "latency_weighted" in message
    assert "netopt:traffic.api" not in found, "a declared peak is enough"
    assert "netopt:traffic.web" not in found, "web has one replica: its split needs no peak"
    assert "netopt:gateway.keepalive.timeout_s" in found
    minimal["workloads"][1]["idle_timeout_s"] = 75
    minimal["traffic"]["api2"] = 40
    parse_spec(minimal)


def test_latency_optimal_with_equal_response_times_needs_no_traffic(minimal: dict[str, Any]) -> None:
    minimal["gateway"]["algorithm"] = "latency_optimal"
    spec = parse_spec(minimal)
    assert spec.traffic == {}
    api = next(r for r in spec.routes if r.name == "api")
    assert nginx_shares(api, spec) == [("api", 0, Fraction(1, 2)), ("api", 1, Fraction(1, 2))], "equal times: equal shares, no peak needed"


def test_latency_optimal_needs_no_traffic_on_kubernetes(minimal: dict[str, Any]) -> None:
    """Service balancing spreads a workload's pods evenly whatever the peak, so the split does not depend on it."""
    minimal.update(target="kubernetes", network={"name": "t"})
    minimal["gateway"]["algorithm"] = "latency_optimal"
    minimal["workloads"][0]["response_time_ms"] = [10, 50]
    spec = parse_spec(minimal)
    assert spec.traffic == {} and spec.target == "kubernetes"
    api = next(r for r in spec.routes if r.name == "api")
    assert upstream_members(api, spec) == [("api", 0, Fraction(1))], "one member, the workload's Service, whatever the peak"


def test_per_replica_list_must_match_replicas(minimal: dict[str, Any]) -> None:
    minimal["workloads"][0]["response_time_ms"] = [10, 20, 30]
    assert "one per replica" in problems(minimal)["netopt:workloads[0]"]


def test_report_lists_everything_in_one_message(minimal: dict[str, Any]) -> None:
    minimal["routes"][0]["backends"][0]["workload"] = "apii"
    minimal["workloads"][0]["port"] = 0
    with pytest.raises(SpecError) as caught:
        parse_spec(minimal)
    report = caught.value.report()
    assert report.startswith("netopt: 2 problems in the stack config (nothing was deployed or rendered):")
    assert "netopt:routes[0].backends[0].workload" in report and "netopt:workloads[0].port" in report
