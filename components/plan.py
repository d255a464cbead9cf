"""The target-neutral plan: upstreams, servers and locations, limits — everything a renderer or target needs.

Built once from a validated `Spec`, pure and deterministic. The nginx renderer turns it into text; the Docker and
Kubernetes targets turn it into resources; the routing score reads the match steps computed here from the same
location kinds and order that the renderer emits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from components.balancing import integer_weights, member_max_conns, member_max_fails, upstream_members
from components.spec import ConcurrencyLimit, RateLimit, Route, Spec, Timeouts

DEFAULT_SERVER = "_"


@dataclass(frozen=True)
class UpstreamServer:
    workload: str
    replica: int  # index into the address map: the replica (gateway balancing) or 0, the workload's Service (service balancing)
    weight: int
    max_conns: int
    max_fails: int | None = None  # None: the gateway's passive_health.max_fails


@dataclass(frozen=True)
class Upstream:
    name: str
    servers: tuple[UpstreamServer, ...]


@dataclass(frozen=True)
class Rule:
    """One route inside a location. `conditions` are (variable, regex) pairs tested by the dispatch map."""

    route: Route
    upstream: str
    host_specific: bool

    @property
    def conditional(self) -> bool:
        return bool(self.route.match.methods or self.route.match.headers)


@dataclass(frozen=True)
class Location:
    kind: str  # "exact" | "prefix" | "regex"
    path: str
    stops_regex: bool  # prefix rendered with ^~: no regex can match below it, so nginx stops searching
    rules: tuple[Rule, ...]  # dispatch order: first match wins

    @property
    def needs_dispatch(self) -> bool:
        return len(self.rules) > 1 or self.rules[0].conditional

    @property
    def has_fallback(self) -> bool:
        return not self.rules[-1].conditional

    @property
    def timeouts(self) -> Timeouts | None:
        return self.rules[0].route.timeouts


@dataclass(frozen=True)
class Server:
    host: str  # DEFAULT_SERVER for routes without a host
    locations: tuple[Location, ...]  # render order: exact, prefix (sorted), regex (declaration order)


@dataclass(frozen=True)
class Plan:
    spec: Spec
    upstreams: tuple[Upstream, ...]
    servers: tuple[Server, ...]
    rate_limits: tuple[RateLimit, ...]
    concurrency_limits: tuple[ConcurrencyLimit, ...]
    match_steps: dict[str, int]  # route name -> r_j of the routing score
    route_upstreams: dict[str, str]  # route name -> upstream name


def ident(name: str) -> str:
    """nginx variable/zone-safe form of a spec name."""
    return name.replace("-", "_")


def build_plan(spec: Spec) -> Plan:
    upstreams, upstream_of = _upstreams(spec)
    servers = _servers(spec, upstream_of)
    used_limits = {r.rate_limit for r in spec.routes}
    used_conns = {r.concurrency_limit for r in spec.routes}
    return Plan(
        spec=spec,
        upstreams=upstreams,
        servers=servers,
        rate_limits=tuple(l for l in spec.rate_limits if l.name in used_limits),
        concurrency_limits=tuple(c for c in spec.concurrency_limits if c.name in used_conns),
        match_steps=_match_steps(servers),
        route_upstreams=upstream_of,
    )


def _upstreams(spec: Spec) -> tuple[tuple[Upstream, ...], dict[str, str]]:
    """One upstream per distinct weighted backend set, shared by routes with the same set (one keepalive pool)."""
    by_signature: dict[tuple[tuple[str, int, int], ...], Upstream] = {}
    upstream_of: dict[str, str] = {}
    names: set[str] = set()
    for route in spec.routes:
        shares = upstream_members(route, spec)
        weights = integer_weights([share for _, _, share in shares])
        signature = tuple((w, r, weight) for (w, r, _), weight in zip(shares, weights, strict=True))
        if signature not in by_signature:
            label = "_".join(ident(b.workload) + (f"_{b.weight}" if len(route.backends) > 1 else "") for b in route.backends)
            name = f"up_{label}"
            if name in names:
                name = f"{name}__{ident(route.name)}"
            names.add(name)
            servers = tuple(UpstreamServer(w, r, weight, member_max_conns(spec.workload(w), spec), member_max_fails(spec))
                            for w, r, weight in signature)
            by_signature[signature] = Upstream(name, servers)
        upstream_of[route.name] = by_signature[signature].name
    return tuple(by_signature.values()), upstream_of


def regex_literal_prefix(pattern: str) -> str | None:
    """The literal text every match of an anchored regex starts with; None if it can match anywhere."""
    if not pattern.startswith("^"):
        return None
    match = re.match(r"[^.^$*+?{}\[\]\\|()]*", pattern[1:])
    literal = match.group(0) if match else ""
    rest = pattern[1 + len(literal):]
    if rest[:1] in ("*", "?", "{"):  # the last literal character is optional or repeated
        literal = literal[:-1]
    return literal


def _may_overlap(prefix: str, regex: str) -> bool:
    literal = regex_literal_prefix(regex)
    return literal is None or literal.startswith(prefix) or prefix.startswith(literal)


def _servers(spec: Spec, upstream_of: dict[str, str]) -> tuple[Server, ...]:
    hosts = sorted({r.match.host for r in spec.routes if r.match.host is not None})
    servers = [_server(DEFAULT_SERVER, [r for r in spec.routes if r.match.host is None], spec, upstream_of)]
    for host in hosts:
        # Routes without a host apply to every host: they follow the host's own routes as fallbacks.
        routes = [r for r in spec.routes if r.match.host == host] + [r for r in spec.routes if r.match.host is None]
        servers.append(_server(host, routes, spec, upstream_of))
    return tuple(s for s in servers if s.locations or s.host == DEFAULT_SERVER)


def _server(host: str, routes: list[Route], spec: Spec, upstream_of: dict[str, str]) -> Server:
    grouped: dict[tuple[str, str], list[Rule]] = {}
    for route in routes:
        key = (route.match.path_type, route.match.path)
        grouped.setdefault(key, []).append(Rule(route, upstream_of[route.name], route.match.host is not None))
    regexes = [path for kind, path in grouped if kind == "regex"]
    locations = []
    for (kind, path), rules in grouped.items():
        ordered = sorted(rules, key=lambda r: (not r.host_specific, -_specificity(r.route)))
        stops = kind == "prefix" and not any(_may_overlap(path, rx) for rx in regexes)
        locations.append(Location(kind, path, stops, tuple(ordered)))
    order = {"exact": 0, "prefix": 1, "regex": 2}
    exact_prefix = sorted((loc for loc in locations if loc.kind != "regex"), key=lambda l: (order[l.kind], l.path))
    return Server(host, tuple(exact_prefix + [loc for loc in locations if loc.kind == "regex"]))


def _specificity(route: Route) -> int:
    return len(route.match.headers) + (1 if route.match.methods else 0)


def _match_steps(servers: tuple[Server, ...]) -> dict[str, int]:
    """r_j: lookups nginx performs before route j is selected, in the server that owns the route.

    1 for the static location tree (exact and prefix share one tree walk), plus each regex location tried
    in order (a prefix without ^~ tries them all before falling back), plus each dispatch-map condition tested
    before this route's rule (methods and headers of routes sharing the location).
    """
    steps: dict[str, int] = {}
    for server in servers:
        regex_locations = [loc for loc in server.locations if loc.kind == "regex"]
        regex_position = {id(loc): i + 1 for i, loc in enumerate(regex_locations)}
        for location in server.locations:
            if location.kind == "regex":
                regex_tries = regex_position[id(location)]
            elif location.kind == "prefix" and not location.stops_regex:
                regex_tries = len(regex_locations)
            else:
                regex_tries = 0
            conditional = [rule for rule in location.rules if rule.conditional]
            for rule in location.rules:
                owned = (rule.route.match.host or DEFAULT_SERVER) == server.host
                if not owned:
                    continue
                dispatch = conditional.index(rule) + 1 if rule.conditional else (len(conditional) if location.needs_dispatch else 0)
                steps[rule.route.name] = 1 + regex_tries + dispatch
    return steps
