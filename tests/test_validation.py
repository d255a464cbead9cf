"""Spec validation: good configs pass; every kind of bad config is reported with its key path and a fix."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from components.plan.balancing import nginx_shares, target_balancing, upstream_members
from components.spec.validation import SpecError, parse_spec
from tests.conftest import STACKS, plan_of, stack_raw


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
    plan = plan_of(parse_spec(minimal))
    (location,) = [loc for server in plan.gateway.servers for loc in server.locations if loc.path == "/api/"]
    chain = {rule.route.name: rule.route.methods for rule in location.rules}
    # One location, its two routes told apart by method; other methods fall through to what `/` would serve.
    assert chain == {"api": ("POST",), "api_read": ("GET", "HEAD"), "web": None}
    assert plan.gateway.route_upstreams["api"] != plan.gateway.route_upstreams["api_read"]


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
    assert "or larger" in problems(minimal)["netopt:network.subnet"]


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
    members = upstream_members(api, spec, target_balancing(spec.target))
    assert members == [("api", 0, Fraction(1))], "one member, the workload's Service, whatever the peak"


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


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (("workloads", 0, "port"), "netopt:workloads[0].port"),
        (("workloads", 0, "replicas"), "netopt:workloads[0].replicas"),
        (("workloads", 0, "response_time_ms"), "netopt:workloads[0].response_time_ms"),
        (("workloads", 0, "max_concurrency"), "netopt:workloads[0].max_concurrency"),
        (("routes", 0, "backends", 0, "weight"), "netopt:routes[0].backends[0].weight"),
        (("rate_limits", 0, "rps"), "netopt:rate_limits[0].rps"),
        (("rate_limits", 0, "burst"), "netopt:rate_limits[0].burst"),
    ],
)
def test_a_boolean_is_not_a_number(minimal: dict[str, Any], path: tuple[Any, ...], key: str) -> None:
    target: Any = minimal
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = True
    found = problems(minimal)
    assert list(found) == [key]
    assert "got true (a boolean)" in found[key]


def test_strict_types_keep_the_legitimate_forms(minimal: dict[str, Any]) -> None:
    """Whole numbers where a fraction may be given, per-replica lists, text subnets and addresses all still validate."""
    minimal["workloads"][0].update(response_time_ms=[10, 12.5], resources={"cpu": 1, "memory_mb": 256}, idle_timeout_s=90)
    minimal["rate_limits"][0].update(rps=0.5, burst=0)
    minimal["gateway"].update(timeouts={"connect_s": 1, "read_s": 2.5, "send_s": 30}, allowed_sources=["10.0.0.0/8", "::1/128"],
                              publish={"address": "::1", "port": 8080})
    minimal["traffic"] = {"api": 10, "web": {"peak_rps": 2.5, "clients": 3}}
    spec = parse_spec(minimal)
    assert spec.workloads[0].replica_response_times_s() == [0.01, 0.0125]
    assert [str(n) for n in spec.gateway.allowed_sources] == ["10.0.0.0/8", "::1/128"]
    assert spec.traffic["api"].peak_rps == 10 and spec.workloads[0].resources.cpu == 1


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("port", "8080", "expected a whole number, got the text '8080'; write the number without quotes"),
        ("port", 8080.0, "expected a whole number, got 8080.0; write 8080"),
        ("read_only_root_fs", "yes", "expected true or false, got the text 'yes'; write true or false without quotes"),
        ("image", 5, "expected text, got 5; quote it if you mean the text ('5')"),
        ("response_time_ms", float("nan"), "expected a finite number or a list, got nan"),
        ("response_time_ms", float("inf"), "expected a finite number or a list, got inf"),
        ("max_concurrency", 10**30, "must be at most 1000000000, got a number of 31 digits"),
    ],
)
def test_wrong_types_say_what_to_write(minimal: dict[str, Any], field: str, value: object, expected: str) -> None:
    minimal["workloads"][0][field] = value
    assert problems(minimal) == {f"netopt:workloads[0].{field}": expected}


def test_key_paths_are_the_users_not_pydantics(minimal: dict[str, Any]) -> None:
    minimal["workloads"][0]["response_time_ms"] = "fast"
    minimal["workloads"][1]["response_time_ms"] = [10, "x"]
    minimal["gateway"]["allowed_sources"] = ["10.0.0.0/8", 7]
    minimal["gateway"]["publish"] = {"address": "localhost"}
    found = problems(minimal)
    assert found == {
        "netopt:workloads[0].response_time_ms": "expected a number or a list, got the text 'fast'",
        "netopt:workloads[1].response_time_ms[1]": "expected a number, got the text 'x'",
        "netopt:gateway.allowed_sources[1]": "expected a subnet in CIDR form (e.g. 10.42.0.0/24 or fd00::/64) as text, got 7",
        "netopt:gateway.publish.address": "'localhost' is not an IP address (e.g. 127.0.0.1 or ::1)",
    }


def test_subnet_messages_name_the_network_meant(minimal: dict[str, Any]) -> None:
    minimal["network"]["subnet"] = "10.42.0.1/16"
    minimal["network"]["edge_subnet"] = "fd00::/64"
    found = problems(minimal)
    assert found["netopt:network.subnet"] == "10.42.0.1/16 has host bits set; did you mean 10.42.0.0/16?"
    assert found["netopt:network.edge_subnet"].startswith("fd00::/64 is an IPv6 subnet; this key needs IPv4")


def test_keepalive_beyond_idle_timeouts_is_one_problem_with_one_fix(minimal: dict[str, Any]) -> None:
    minimal["gateway"]["keepalive"] = {"timeout_s": 90}
    minimal["workloads"][1]["idle_timeout_s"] = 80
    with pytest.raises(SpecError) as caught:
        parse_spec(minimal)
    assert [str(issue) for issue in caught.value.issues] == [
        "netopt:gateway.keepalive.timeout_s: 90s is not below the idle_timeout_s of workloads api (75s), web (80s), so a backend "
        "would close pooled connections under the gateway; set it below 75 (or raise those workloads' idle_timeout_s)"]


def test_malformed_sections_are_reported_once_not_as_unknown_references(minimal: dict[str, Any]) -> None:
    minimal["workloads"] = {"api": {}}
    minimal["routes"][0]["backends"] = 5
    assert problems(minimal) == {"netopt:workloads": "expected a list, got a mapping",
                                 "netopt:routes[0].backends": "expected a list, got 5"}


def test_header_names_differing_only_in_case_are_refused(minimal: dict[str, Any]) -> None:
    """Found by the differential fuzzer: the renderer kept the last of `X-A: 1` / `x-a: 2`, a route no request matches."""
    minimal["routes"][0]["match"]["headers"] = {"X-Tenant": "a", "x-tenant": "b"}
    with pytest.raises(SpecError) as caught:
        parse_spec(minimal)
    (issue,) = caught.value.issues
    assert issue.path == "netopt:routes[0].match"
    assert "'X-Tenant' and 'x-tenant' name the same header" in issue.message
