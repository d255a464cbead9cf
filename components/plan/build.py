"""The target-neutral plan: upstreams, servers and locations, limits — everything a renderer or target needs.

Built once from a validated `Spec`, pure and deterministic. The nginx renderer turns it into text; the Docker and
Kubernetes targets turn it into resources; the routing score reads the match steps computed here from the same
location kinds and order that the renderer emits.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from components.plan.balancing import BalancingMode, integer_weights, member_max_conns, member_max_fails, service_rate, upstream_members
from components.plan.names import upstream_name
from components.spec.regex import search
from components.spec.schema import ConcurrencyLimit, RateLimit, Route, Spec, Timeouts, match_key

DEFAULT_SERVER = "_"


@dataclass(frozen=True)
class UpstreamServer:
    workload: str
    replica: int  # index into the address map: the replica (gateway balancing) or 0, the workload's Service (service balancing)
    weight: int
    max_conns: int
    max_fails: int | None = None  # None: the gateway's passive_health.max_fails
    backup: bool = False  # nginx `backup`: takes requests only while every primary server of the upstream is unavailable


@dataclass(frozen=True)
class Upstream:
    name: str
    servers: tuple[UpstreamServer, ...]


@dataclass(frozen=True)
class Rule:
    """One route inside a location; a conditional rule (methods or headers) is tested by the dispatch map."""

    route: Route
    upstream: str
    host_specific: bool

    @property
    def conditional(self) -> bool:
        return bool(self.route.match.methods or self.route.match.headers)


@dataclass(frozen=True)
class Location:
    """An nginx location and its dispatch chain: first matching rule wins, an unconditional rule ends the chain.

    The chain is the location's own routes, then — when none of them is unconditional — the chain of the location
    nginx would have chosen without this one (so `GET /auth/login` still reaches the `/auth/` route when the exact
    `/auth/login` route takes POST only). An empty chain answers 404.
    """

    kind: str  # "exact" | "prefix" | "regex"
    path: str
    stops_regex: bool  # prefix rendered with ^~: no regex can match below it, so nginx stops searching
    rules: tuple[Rule, ...]

    @property
    def needs_dispatch(self) -> bool:
        return len(self.rules) > 1 or (len(self.rules) == 1 and self.rules[0].conditional)

    @property
    def has_fallback(self) -> bool:
        return bool(self.rules) and not self.rules[-1].conditional

    def owns(self, rule: Rule) -> bool:
        """Whether this is the route's own location (a prefix route's is `location /cart/`, not the bare `= /cart`)."""
        return rule.route.match.key == match_key(self.kind, self.path)

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
    balancing: BalancingMode  # who spreads a workload over its replicas: the plan's input, not the spec's


def build_plan(spec: Spec, balancing: BalancingMode) -> Plan:
    """The plan of a validated spec under a balancing mode (`balancing.target_balancing` maps a target to its mode:
    the graph lives in the spec and the plan, a target only translates it)."""
    upstreams, upstream_of = _upstreams(spec, balancing)
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
        balancing=balancing,
    )


def _upstreams(spec: Spec, balancing: BalancingMode) -> tuple[tuple[Upstream, ...], dict[str, str]]:
    """One upstream per distinct weighted backend set, shared by routes with the same set (one keepalive pool)."""
    by_signature: dict[tuple[tuple[str, int, int, bool], ...], Upstream] = {}
    upstream_of: dict[str, str] = {}
    for route in spec.routes:
        signature = _members(route, spec, balancing)
        if signature not in by_signature:
            # The same backends and weights give the same members, so a name stands for one signature.
            name = upstream_name([(b.workload, b.weight if len(route.backends) > 1 else None) for b in route.backends])
            servers = tuple(UpstreamServer(w, r, weight, member_max_conns(spec.workload(w), balancing), member_max_fails(balancing), backup)
                            for w, r, weight, backup in signature)
            by_signature[signature] = Upstream(name, servers)
        upstream_of[route.name] = by_signature[signature].name
    return tuple(by_signature.values()), upstream_of


def _members(route: Route, spec: Spec, balancing: BalancingMode) -> tuple[tuple[str, int, int, bool], ...]:
    """(workload, member, integer weight, backup) per upstream server, in declaration order.

    Members with a share are primaries, weighted by their shares. A member with share 0 (latency_optimal: a replica
    the water-filling split leaves out at the declared peak) is a backup: nginx sends it requests only while every
    primary is down or at max_conns, so its capacity still absorbs overflow; backups are weighted among themselves
    by service rate.
    """
    shares = upstream_members(route, spec, balancing)
    primary = [i for i, (_, _, share) in enumerate(shares) if share > 0]
    backup = [i for i, (_, _, share) in enumerate(shares) if share == 0]
    weights = dict(zip(primary, integer_weights([shares[i][2] for i in primary]), strict=True))
    if backup:
        rates = [service_rate(spec.workload(shares[i][0]), shares[i][1]) for i in backup]
        weights |= dict(zip(backup, integer_weights(rates), strict=True))  # scale-free: the rates themselves
    return tuple((w, r, weights[i], share == 0) for i, (w, r, share) in enumerate(shares))


def regex_literal_prefix(pattern: str) -> str | None:
    """The literal text every match of an anchored regex starts with; None if it can match anywhere."""
    if not pattern.startswith("^") or "|" in pattern:
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
        grouped.setdefault(route.match.key, []).append(Rule(route, upstream_of[route.name], route.match.host is not None))
    regexes = [path for kind, path in grouped if kind == "regex"]
    own = {key: _until_unconditional(sorted(rules, key=lambda r: (not r.host_specific, -_specificity(r.route)))) for key, rules in grouped.items()}
    resolver = _Resolver(own, regexes)
    locations = [location for key in own for location in resolver.locations(key)]
    order = {"exact": 0, "prefix": 1, "regex": 2}
    exact_prefix = sorted((loc for loc in locations if loc.kind != "regex"), key=lambda l: (order[l.kind], l.path))
    return Server(host, tuple(exact_prefix + [loc for loc in locations if loc.kind == "regex"]))


def _segment_prefixes(path: str) -> Iterator[str]:
    """`path`, then every prefix of it that ends before a "/", longest first: "/a/b" -> "/a/b", "/a", "/"."""
    yield path
    for end in range(len(path) - 1, 0, -1):
        if path[end] == "/":
            yield path[:end]
    if path != "/":
        yield "/"


def _until_unconditional(rules: list[Rule]) -> tuple[Rule, ...]:
    """Rules after the first unconditional one can never be selected in this location."""
    for i, rule in enumerate(rules):
        if not rule.conditional:
            return tuple(rules[: i + 1])
    return tuple(rules)


class _Resolver:
    """Which location nginx picks for a concrete path, and each location's dispatch chain with its fallbacks."""

    def __init__(self, own: dict[tuple[str, str], tuple[Rule, ...]], regexes: list[str]) -> None:
        self.own = own
        self.regexes = regexes
        self.prefixes = frozenset(path for kind, path in own if kind == "prefix")  # without trailing slashes: match_key
        self.chains: dict[tuple[str, str], tuple[Rule, ...]] = {}

    def locations(self, key: tuple[str, str]) -> list[Location]:
        """The nginx locations of one route key. nginx compares location prefixes as strings, so a prefix "/cart" is
        `location /cart/` (everything below) plus `location = /cart` (the bare path, which `/cart/` alone would answer
        with a 301): never `location /cart`, which would also take /cartx. The bare location serves what covers "/cart":
        this route, or a regex that matches it; an exact route on "/cart" is the bare location itself."""
        kind, path = key
        if kind != "prefix" or path == "/":
            return [Location(kind, path, kind == "prefix" and self.stops_regex(path), self.chain(key))]
        below = Location(kind, path + "/", self.stops_regex(path), self.chain(key))
        if ("exact", path) in self.own:
            return [below]
        target = self.resolve(path)
        return [below, Location("exact", path, False, self.chain(target) if target else ())]

    def stops_regex(self, prefix: str) -> bool:
        """No regex can match below the prefix (or at its bare path): rendered ^~, nginx stops searching there."""
        below = prefix if prefix == "/" else prefix + "/"
        return not any(_may_overlap(below, rx) for rx in self.regexes)

    def longest_prefix(self, path: str, shorter: bool = False) -> str | None:
        """The longest prefix route covering `path` by whole segments ("/cart" covers /cart, /cart/ and /cart/x, not
        /cartx), or the longest shorter than `path`: one set lookup per "/", linear in the path, not in the routes."""
        candidates = _segment_prefixes(path)
        if shorter:
            next(candidates)
        return next((prefix for prefix in candidates if prefix in self.prefixes), None)

    def resolve(self, path: str, skip_exact: bool = False) -> tuple[str, str] | None:
        """nginx's choice for `path`: exact, else longest prefix if ^~, else the first matching regex, else that prefix."""
        if ("exact", path) in self.own and not skip_exact:
            return ("exact", path)
        prefix = self.longest_prefix(path)
        if prefix is not None and self.stops_regex(prefix):
            return ("prefix", prefix)
        regex = next((rx for rx in self.regexes if search(rx, path)), None)  # PCRE2, as nginx matches
        if regex is not None:
            return ("regex", regex)
        return ("prefix", prefix) if prefix is not None else None

    def fallback(self, key: tuple[str, str]) -> tuple[str, str] | None:
        kind, path = key
        if kind == "exact":
            return self.resolve(path, skip_exact=True)
        if kind == "prefix":  # the request matched no regex: the next shorter prefix covering this one
            shorter = self.longest_prefix(path, shorter=True)
            return ("prefix", shorter) if shorter is not None else None
        return None  # which regex or prefix would match depends on the whole URI: no static fallback

    def chain(self, key: tuple[str, str]) -> tuple[Rule, ...]:
        if key not in self.chains:
            rules = self.own[key]
            if rules and not rules[-1].conditional:
                self.chains[key] = rules
            else:
                fallback = self.fallback(key)
                inherited = self.chain(fallback) if fallback else ()
                seen = {rule.route.name for rule in rules}
                self.chains[key] = rules + tuple(rule for rule in inherited if rule.route.name not in seen)
        return self.chains[key]


def _specificity(route: Route) -> int:
    return len(route.match.headers) + (1 if route.match.methods else 0)


def _match_steps(servers: tuple[Server, ...]) -> dict[str, int]:
    """r_j: lookups nginx performs before route j is selected, in the server that owns the route, at the route's own
    location (a prefix route's `location /cart/`; its bare `= /cart` is found in the same tree walk and tries no regex).

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
                if not location.owns(rule) or (rule.route.match.host or DEFAULT_SERVER) != server.host:
                    continue
                dispatch = conditional.index(rule) + 1 if rule.conditional else (len(conditional) if location.needs_dispatch else 0)
                steps[rule.route.name] = 1 + regex_tries + dispatch
    return steps
