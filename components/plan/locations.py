"""Where nginx finds each route: servers by Host, locations in the order nginx searches them, and r_j.

Shared by every HTTP proxy of the plan: the gateway's routes and a service proxy's calls both become servers of
locations with dispatch chains. nginx picks a server by Host (the default server for routes without one) and, in
it, a location: exact match, else the longest prefix (stopping there when rendered ^~), else the first regex in
declaration order, else that prefix. The resolver below is that search written out on the routes, so the plan,
the renderer and the routing score agree on where each request lands.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import cast

from components.plan.ir import DEFAULT_SERVER, Location, LocationKind, Route, Rule, Server
from components.spec.regex import search


def servers_for(routes: Sequence[Route]) -> tuple[Server, ...]:
    """The default server (routes without a host) and one server per host, each with its locations."""
    hosts = sorted({r.host for r in routes if r.host is not None})
    servers = [_server(DEFAULT_SERVER, [r for r in routes if r.host is None])]
    for host in hosts:
        # Routes without a host apply to every host: they follow the host's own routes as fallbacks.
        servers.append(_server(host, [r for r in routes if r.host == host] + [r for r in routes if r.host is None]))
    return tuple(s for s in servers if s.locations or s.host == DEFAULT_SERVER)


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


def _server(host: str, routes: list[Route]) -> Server:
    grouped: dict[tuple[str, str], list[Rule]] = {}
    for route in routes:
        grouped.setdefault(route.key, []).append(Rule(route, route.upstream, route.host is not None))
    regexes = [path for kind, path in grouped if kind == "regex"]
    own = {key: _until_unconditional(sorted(rules, key=lambda r: (not r.host_specific, -r.route.specificity))) for key, rules in grouped.items()}
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
        kind, path = cast(tuple[LocationKind, str], key)
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


def match_steps(servers: tuple[Server, ...]) -> dict[str, int]:
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
                if not location.owns(rule) or (rule.route.host or DEFAULT_SERVER) != server.host:
                    continue
                dispatch = conditional.index(rule) + 1 if rule.conditional else (len(conditional) if location.needs_dispatch else 0)
                steps[rule.route.name] = 1 + regex_tries + dispatch
    return steps
