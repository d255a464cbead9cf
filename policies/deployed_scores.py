"""r_j and f_l recomputed from the nginx.conf the gateway really loads — a second computation, not components'.

The report's routing and flow-control scores come from the plan (`components/plan/build.py`, `components/plan/scores.py`).
This module derives the same per-route numbers from the deployed artifact alone, parsed by crossplane, with
nothing imported from `components`: if a template bug, a hand edit or a stale report makes the two disagree, the
pack sees it. Only structural features of the config are read, not the renderer's variable spellings:

- a route is the value of `set $netopt_route <route>` in a location, or — when the location dispatches by method
  or headers — the values of the `map <source> <variable>` that `set $netopt_route <variable>` names;
- r_j (README "Scores") = 1 for the static location tree (exact and prefix locations, one walk)
  + the regex locations (`~`, `~*`) nginx tries: a regex location's position among the server's regex locations,
  every regex location for a prefix location without `^~`, none for `=` and `^~`
  + the dispatch conditions tested: the map's n-th entry is found after n tests, its `default` after all of them;
- f_l = the rate (`limit_req_zone ... rate=`) of the `limit_req zone=` directives in force in the route's
  locations (a location's own, else the server's, else http's) whose key counts the route: a zone keyed by
  `map $netopt_route <key>` counts the routes it maps to a non-empty key (nginx does not account an empty key);
  several zones: the strictest binds. A route served by several locations gets the loosest of them, and none at
  all (f = ∞) if one location leaves it unlimited: a client can pick the location.

A tcp proxy's config (a `stream` block) has one call route per server, the values of its `map ... $netopt_route`:
r_j = 1 (no location is searched) and no f_l (connections are capped, requests are not counted).

A route without a host is served by the default server and again, as a fallback, inside each host's server;
it is scored where it is owned — the `default_server`. Within a server a route is owned by its own location and
inherited as a fallback by more specific ones (an exact location below its prefix, a longer prefix): the owner is
its regex location, else its shortest prefix location, else its (single) exact location.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from policies.nginx_config import Directive, ParsedConfig

ROUTE_VARIABLE = "$netopt_route"
_MAP_PARAMETERS = frozenset({"default", "hostnames", "volatile", "include"})
_RATE = re.compile(r"^rate=(\d+)r/([sm])$")


def mean_reciprocal(values: Sequence[float | None]) -> float:
    """(1/N) Σ 1/x, an infinite x (None) adding 0 — the scores' formula, written here again on purpose (see module doc)."""
    return math.fsum(0.0 if v is None else 1.0 / v for v in values) / len(values) if values else 0.0


@dataclass(frozen=True)
class _Map:
    source: str
    entries: tuple[tuple[str, str], ...]  # (key, value) in order, without `default` and the map's parameters
    default: str

    def lookup(self, value: str) -> str:
        """nginx's map lookup: an exact key first, then the regexes (`~`, `~*` caseless) in order, else the default."""
        exact = next((result for key, result in self.entries if not key.startswith("~") and key == value), None)
        if exact is not None:
            return exact
        for key, result in self.entries:
            caseless = key.startswith("~*")
            if key.startswith("~") and re.search(key[2:] if caseless else key[1:], value, re.I if caseless else 0):
                return result
        return self.default


@dataclass(frozen=True)
class _Served:
    """One location serving one route."""

    server: int
    default_server: bool
    kind: str  # "exact" | "prefix" | "regex"
    path: str
    steps: int
    limit_rps: float | None


@dataclass
class DeployedScores:
    steps: dict[str, int] = field(default_factory=dict)  # route -> r_j, in the order the config first serves them
    limits: dict[str, float | None] = field(default_factory=dict)  # route -> f_l (None = ∞)
    problems: list[str] = field(default_factory=list)  # what kept a number from being derived

    @property
    def routing(self) -> float:
        return mean_reciprocal([float(s) for s in self.steps.values()])

    @property
    def flow_control(self) -> float:
        return mean_reciprocal(list(self.limits.values()))


def deployed_scores(config: ParsedConfig) -> DeployedScores:
    result = DeployedScores(problems=[f"crossplane: {e}" for e in config.errors])
    stream = config.stream()
    if stream is not None and stream.block is not None:  # a tcp proxy, or another proxy's passed-through ports
        _stream(stream, result)
    http = config.http()
    if http is None or http.block is None:
        result.problems.append("no http block")
        return result
    maps = {d.args[1]: _map(d) for d in http.children("map") if len(d.args) == 2}
    zones = _zones(http, result.problems)
    served: dict[str, list[_Served]] = {}
    for index, server in enumerate(http.children("server")):
        _server(index, server, _limit_zones(http.block), maps, zones, served, result.problems)
    for route, places in served.items():
        owner = _owner(route, places, result.problems)
        if owner is None:
            continue
        result.steps[route] = owner.steps
        limits = [p.limit_rps for p in places]
        result.limits[route] = None if any(limit is None for limit in limits) else max(limit for limit in limits if limit is not None)
    return result


def _stream(stream: Directive, result: DeployedScores) -> None:
    """A tcp proxy: the routes are the values of the `map ... $netopt_route` (one per caller's server, found by the
    address a connection arrives at, or its default): each found without any location (r_j = 1). It caps connections
    (`limit_conn`) but counts no requests, so a route has no f_l."""
    routes = [d for d in stream.children("map") if len(d.args) == 2 and d.args[1] == ROUTE_VARIABLE]
    if len(routes) != 1:
        result.problems.append(f"the stream block has {len(routes)} maps to {ROUTE_VARIABLE} (required: 1)")
        return
    route_map = _map(routes[0])
    for route in [value for _, value in route_map.entries] + [route_map.default]:
        if route and route != '""':
            result.steps[route] = 1


def _map(directive: Directive) -> _Map:
    entries = tuple((d.name, d.args[0] if d.args else "") for d in directive.block or [] if d.name not in _MAP_PARAMETERS)
    default = next((d.args[0] for d in directive.block or [] if d.name == "default" and d.args), "")
    return _Map(directive.args[0], entries, default)


def _zones(http: Directive, problems: list[str]) -> dict[str, tuple[str, float]]:
    """zone name -> (key, requests per second) of every limit_req_zone."""
    zones: dict[str, tuple[str, float]] = {}
    for directive in http.children("limit_req_zone"):
        name = next((a[5:].split(":", 1)[0] for a in directive.args if a.startswith("zone=")), None)
        rate = next((_RATE.match(a) for a in directive.args if a.startswith("rate=")), None)
        if name is None or rate is None or not directive.args:
            problems.append(f"line {directive.line}: limit_req_zone {' '.join(directive.args)} has no zone=NAME:SIZE or rate=Nr/s|Nr/m")
            continue
        zones[name] = (directive.args[0], int(rate.group(1)) / (60.0 if rate.group(2) == "m" else 1.0))
    return zones


def _limit_zones(block: list[Directive]) -> list[str] | None:
    """The zones of a level's own limit_req directives; None when it has none (the enclosing level's apply)."""
    found = [next((a[5:] for a in d.args if a.startswith("zone=")), "") for d in block if d.name == "limit_req"]
    return found or None


def _modifier(location: Directive) -> tuple[str, str] | None:
    """(kind, path) of a location; None for a named location (@name), which no request URI selects."""
    args = location.args
    if len(args) == 2 and args[0] in ("=", "^~", "~", "~*"):
        return {"=": "exact", "^~": "stop", "~": "regex", "~*": "regex"}[args[0]], args[1]
    if len(args) == 1 and not args[0].startswith("@"):
        return "prefix", args[0]
    return None


def _server(index: int, server: Directive, http_zones: list[str] | None, maps: dict[str, _Map],
            zones: dict[str, tuple[str, float]], served: dict[str, list[_Served]], problems: list[str]) -> None:
    block = server.block or []
    default_server = any("default_server" in d.args for d in server.children("listen"))
    server_zones = _limit_zones(block) or http_zones
    locations = [(d, modifier) for d in server.children("location") if (modifier := _modifier(d)) is not None]
    regex_count = sum(1 for _, (kind, _) in locations if kind == "regex")
    regex_position = 0
    for location, (kind, path) in locations:
        if kind == "regex":
            regex_position += 1
        tries = {"exact": 0, "stop": 0, "prefix": regex_count, "regex": regex_position}[kind]
        if any(d.name == "location" for d in location.block or []):
            problems.append(f"line {location.line}: nested locations inside 'location {' '.join(location.args)}' are not scored")
        routes = _routes(location, maps, problems)
        zone_names = _limit_zones(location.block or []) or server_zones or []
        for route, dispatch in routes:
            limit = _limit(route, zone_names, maps, zones, problems)
            served.setdefault(route, []).append(
                _Served(index, default_server, "prefix" if kind == "stop" else kind, path, 1 + tries + dispatch, limit))


def _routes(location: Directive, maps: dict[str, _Map], problems: list[str]) -> list[tuple[str, int]]:
    """(route, dispatch conditions tested before it) for each route this location serves."""
    values = [d.args[1] for d in location.block or [] if d.name == "set" and len(d.args) == 2 and d.args[0] == ROUTE_VARIABLE]
    if not values or not values[-1]:
        return []
    value = values[-1]
    if not value.startswith("$"):
        return [(value, 0)]
    dispatch = maps.get(value)
    if dispatch is None:
        problems.append(f"line {location.line}: {ROUTE_VARIABLE} is set to {value}, which no map defines")
        return []
    routes: dict[str, int] = {}
    for position, (_, route) in enumerate(dispatch.entries, start=1):
        if route:
            routes.setdefault(route, position)
    if dispatch.default:
        routes.setdefault(dispatch.default, len(dispatch.entries))
    return list(routes.items())


def _limit(route: str, zone_names: list[str], maps: dict[str, _Map], zones: dict[str, tuple[str, float]],
           problems: list[str]) -> float | None:
    """The strictest rate among the zones that count `route`; None when none does."""
    rates = []
    for name in zone_names:
        if name not in zones:
            problems.append(f"limit_req zone={name} names no limit_req_zone")
            continue
        key, rps = zones[name]
        key_map = maps.get(key)
        if key_map is not None and key_map.source == ROUTE_VARIABLE and key_map.lookup(route) == "":
            continue  # this route's key is empty: nginx does not account it in this zone
        rates.append(rps)
    return min(rates) if rates else None


def _owner(route: str, places: list[_Served], problems: list[str]) -> _Served | None:
    defaults = [p for p in places if p.default_server]
    mine = defaults or places
    if len({p.server for p in mine}) > 1:
        problems.append(f"route '{route}' is served by several servers and none is the default_server")
        return None
    regexes = [p for p in mine if p.kind == "regex"]
    prefixes = sorted((p for p in mine if p.kind == "prefix"), key=lambda p: len(p.path))
    exact = [p for p in mine if p.kind == "exact"]
    if len(regexes) > 1 or (not regexes and not prefixes and len(exact) > 1):
        where = ", ".join(f"{p.kind} {p.path}" for p in regexes or exact)
        problems.append(f"route '{route}' is owned by more than one location ({where})")
        return None
    return (regexes or prefixes or exact)[0]
