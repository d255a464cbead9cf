"""Plan: location kinds, ^~ decisions, dispatch chains with fall-through, and the routing model's match steps."""

from __future__ import annotations

from typing import Any

from components.plan import DEFAULT_SERVER, Location, Plan, regex_literal_prefix
from components.validation import parse_spec
from tests.conftest import plan_of


def chain(plan: Plan, host: str, kind: str, path: str) -> list[str]:
    server = next(s for s in plan.servers if s.host == host)
    location: Location = next(loc for loc in server.locations if (loc.kind, loc.path) == (kind, path))
    return [rule.route.name for rule in location.rules]


def test_regex_literal_prefix() -> None:
    assert regex_literal_prefix("^/v[0-9]+/orders") == "/v"
    assert regex_literal_prefix("^/api/x?") == "/api/"
    assert regex_literal_prefix("^/a|^/b") is None
    assert regex_literal_prefix("\\.json$") is None


def test_conditional_route_falls_through_to_the_covering_route(minimal: dict[str, Any]) -> None:
    minimal["routes"].append({"name": "login", "match": {"path": "/api/login", "path_type": "exact", "methods": ["POST"]},
                              "backends": [{"workload": "web"}], "rate_limit": "per_ip"})
    plan = plan_of(parse_spec(minimal))
    # GET /api/login is not the POST-only route's: it falls through to /api/, as if the exact location did not exist.
    assert chain(plan, DEFAULT_SERVER, "exact", "/api/login") == ["login", "api"]
    assert plan.match_steps["login"] == 2 and plan.match_steps["api"] == 1


def test_host_route_is_not_shadowed_by_hostless_routes(minimal: dict[str, Any]) -> None:
    minimal["routes"] += [
        {"name": "shop_api", "match": {"host": "shop.example.com", "path": "/api/"}, "backends": [{"workload": "web"}]},
        {"name": "api_write", "match": {"path": "/api/", "methods": ["POST"]}, "backends": [{"workload": "api"}]},
    ]
    minimal["routes"][0]["match"]["methods"] = ["GET"]
    plan = plan_of(parse_spec(minimal))
    # On its host, the unconditional host route wins; hostless routes after it are unreachable there.
    assert chain(plan, "shop.example.com", "prefix", "/api/") == ["shop_api"]
    assert chain(plan, DEFAULT_SERVER, "prefix", "/api/") == ["api", "api_write", "web"]


def test_prefix_without_slash_belongs_to_the_covering_route(minimal: dict[str, Any]) -> None:
    plan = plan_of(parse_spec(minimal))
    # nginx would answer /api with a 301 to /api/; under the routing semantics /api is the "/" route's.
    assert chain(plan, DEFAULT_SERVER, "exact", "/api") == ["web"]
    del minimal["routes"][1]
    plan = plan_of(parse_spec(minimal))
    assert chain(plan, DEFAULT_SERVER, "exact", "/api") == []  # nothing covers it: 404, not a redirect


def test_prefix_stops_regex_search_only_when_no_regex_can_match_below_it(minimal: dict[str, Any]) -> None:
    minimal["routes"].append({"name": "v", "match": {"path": "^/v[0-9]+/", "path_type": "regex"}, "backends": [{"workload": "web"}]})
    plan = plan_of(parse_spec(minimal))
    locations = {(loc.kind, loc.path): loc for loc in plan.servers[0].locations}
    assert locations[("prefix", "/api/")].stops_regex
    assert not locations[("prefix", "/")].stops_regex
    assert [loc.kind for loc in plan.servers[0].locations][-1] == "regex"


def test_routes_in_one_location_must_agree_on_timeouts(minimal: dict[str, Any]) -> None:
    from components.validation import SpecError

    minimal["routes"].append({"name": "login", "match": {"path": "/api/login", "path_type": "exact", "methods": ["POST"]},
                              "backends": [{"workload": "web"}], "timeouts": {"read_s": 5}})
    try:
        parse_spec(minimal)
    except SpecError as error:
        assert "netopt:routes[0]" in str(error) and "same nginx location" in str(error)
    else:
        raise AssertionError("a fall-through with different timeouts must be rejected")
