"""Plan: location kinds, ^~ decisions, dispatch chains with fall-through, and the routing model's match steps."""

from __future__ import annotations

from typing import Any

import pytest

from components.plan.build import Plan
from components.plan.ir import DEFAULT_SERVER, Location
from components.plan.locations import regex_literal_prefix
from components.spec.validation import parse_spec
from tests.conftest import plan_of


def chain(plan: Plan, host: str, kind: str, path: str) -> list[str]:
    server = next(s for s in plan.gateway.servers if s.host == host)
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
    assert plan.gateway.match_steps["login"] == 2 and plan.gateway.match_steps["api"] == 1


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


def test_prefix_without_slash_belongs_to_the_prefix(minimal: dict[str, Any]) -> None:
    plan = plan_of(parse_spec(minimal))
    # "/api/" is the prefix "/api" (Gateway API: the trailing slash does not count): /api is the api route's, in its own
    # exact location, so nginx never answers it with a 301 to /api/.
    assert chain(plan, DEFAULT_SERVER, "exact", "/api") == ["api"]
    del minimal["routes"][1]
    plan = plan_of(parse_spec(minimal))
    assert chain(plan, DEFAULT_SERVER, "exact", "/api") == ["api"]
    assert [(loc.kind, loc.path) for loc in plan.gateway.servers[0].locations] == [("exact", "/api"), ("prefix", "/api/")]


def _cart(minimal: dict[str, Any], *extra: dict[str, Any]) -> Plan:
    minimal["routes"] = [{"name": "cart", "match": {"path": "/cart"}, "backends": [{"workload": "api"}], "rate_limit": "per_ip"},
                         *extra, {"name": "web", "match": {"path": "/"}, "backends": [{"workload": "web"}]}]
    return plan_of(parse_spec(minimal))


def _resolved(plan: Plan, path: str, host: str = DEFAULT_SERVER) -> list[str]:
    """The chain of the location nginx picks for `path`: exact, else the longest string prefix (no regexes here)."""
    server = next(s for s in plan.gateway.servers if s.host == host)
    exact = [loc for loc in server.locations if loc.kind == "exact" and loc.path == path]
    prefixes = [loc for loc in server.locations if loc.kind == "prefix" and path.startswith(loc.path)]
    location = exact[0] if exact else max(prefixes, key=lambda loc: len(loc.path))
    return [rule.route.name for rule in location.rules]


def test_prefix_matches_whole_segments(minimal: dict[str, Any]) -> None:
    plan = _cart(minimal)
    # Rendered as `location = /cart` and `location ^~ /cart/`, never `location /cart`: nginx compares strings.
    assert [(loc.kind, loc.path, loc.stops_regex) for loc in plan.gateway.servers[0].locations] == [
        ("exact", "/cart", False), ("prefix", "/", True), ("prefix", "/cart/", True)]
    for path in ("/cart", "/cart/", "/cart/x", "/cart/x/y"):
        assert _resolved(plan, path) == ["cart"], path
    for path in ("/cartx", "/cartx/y", "/car", "/"):
        assert _resolved(plan, path) == ["web"], path
    assert plan.gateway.match_steps == {"cart": 1, "web": 1}


def test_prefix_and_its_slash_form_are_one_path(minimal: dict[str, Any]) -> None:
    from components.spec.validation import SpecError

    with pytest.raises(SpecError, match="prefixes /cart and /cart/ are one path"):
        _cart(minimal, {"name": "slash", "match": {"path": "/cart/"}, "backends": [{"workload": "web"}]})
    # Told apart by a header, they share both locations, as routes on one path do.
    plan = _cart(minimal, {"name": "slash", "match": {"path": "/cart/", "headers": {"X-Cart": "v2"}}, "backends": [{"workload": "web"}]})
    assert chain(plan, DEFAULT_SERVER, "prefix", "/cart/") == chain(plan, DEFAULT_SERVER, "exact", "/cart") == ["slash", "cart"]


def test_longer_name_is_another_segment(minimal: dict[str, Any]) -> None:
    plan = _cart(minimal, {"name": "cartx", "match": {"path": "/cartx", "methods": ["GET"]}, "backends": [{"workload": "web"}]})
    assert _resolved(plan, "/cartx/1") == ["cartx", "web"]  # a POST falls back to "/", not to /cart: not its segment
    assert _resolved(plan, "/cart/1") == ["cart"] and _resolved(plan, "/cartxy") == ["web"]
    nested = _cart(minimal, {"name": "items", "match": {"path": "/cart/items", "methods": ["GET"]}, "backends": [{"workload": "web"}]})
    assert _resolved(nested, "/cart/items") == _resolved(nested, "/cart/items/3") == ["items", "cart"]  # falls back to /cart
    assert _resolved(nested, "/cart/itemsx") == ["cart"]


def test_regex_overlapping_a_prefix_keeps_its_bare_path(minimal: dict[str, Any]) -> None:
    plan = _cart(minimal, {"name": "carts", "match": {"path": "^/cart[a-z]*$", "path_type": "regex"}, "backends": [{"workload": "web"}]})
    # A regex can match below /cart/'s string prefix "/cart": no ^~. The bare /cart is the regex's (regexes beat prefixes).
    assert chain(plan, DEFAULT_SERVER, "exact", "/cart") == ["carts"]
    assert not next(loc for loc in plan.gateway.servers[0].locations if loc.path == "/cart/").stops_regex
    assert plan.gateway.match_steps["cart"] == 2


def test_prefix_per_host(minimal: dict[str, Any]) -> None:
    plan = _cart(minimal, {"name": "shop", "match": {"host": "shop.example.com", "path": "/cart/"}, "backends": [{"workload": "web"}]})
    assert _resolved(plan, "/cart", "shop.example.com") == ["shop"] and _resolved(plan, "/cartx", "shop.example.com") == ["web"]
    assert _resolved(plan, "/cart") == ["cart"]


def test_prefix_stops_regex_search_only_when_no_regex_can_match_below_it(minimal: dict[str, Any]) -> None:
    minimal["routes"].append({"name": "v", "match": {"path": "^/v[0-9]+/", "path_type": "regex"}, "backends": [{"workload": "web"}]})
    plan = plan_of(parse_spec(minimal))
    locations = {(loc.kind, loc.path): loc for loc in plan.gateway.servers[0].locations}
    assert locations[("prefix", "/api/")].stops_regex
    assert not locations[("prefix", "/")].stops_regex
    assert [loc.kind for loc in plan.gateway.servers[0].locations][-1] == "regex"


def test_routes_in_one_location_must_agree_on_timeouts(minimal: dict[str, Any]) -> None:
    from components.spec.validation import SpecError

    minimal["routes"].append({"name": "login", "match": {"path": "/api/login", "path_type": "exact", "methods": ["POST"]},
                              "backends": [{"workload": "web"}], "timeouts": {"read_s": 5}})
    try:
        parse_spec(minimal)
    except SpecError as error:
        assert "netopt:routes[0]" in str(error) and "same nginx location" in str(error)
    else:
        raise AssertionError("a fall-through with different timeouts must be rejected")
