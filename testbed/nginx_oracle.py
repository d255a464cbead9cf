"""A second, independent routing oracle: nginx's documented selection algorithm applied to the spec itself.

It shares no code with `components/plan/build.py` (nor with `testbed/routing.py`): it never sees locations, `^~`, dispatch
maps or fallback chains, only the spec's routes and the rules below, written out from nginx's documentation of
`server_name` and `location` (https://nginx.org/en/docs/http/server_names.html, .../ngx_http_core_module.html#location)
and from the README's routing semantics:

1. server: the request's Host (lower-cased, without port and trailing dot) equal to a route host, else the longest
   wildcard `*.suffix` it ends with, else the default server. A host's candidate routes are its own routes, then
   every route without a host ("routes without host apply to every host, after that host's own routes").
2. location, in nginx's order: the `exact` path equal to the URI; else the regexes in order (host's own, then
   hostless, each in declaration order) -- searched with PCRE2 and no flags, as nginx compiles `location ~`; else the
   prefixes covering the URI, longest first. A prefix covers the URI by whole path segments, its trailing slash
   ignored (the README's spec table; Gateway API PathPrefix): `/cart` and `/cart/` are one prefix, covering `/cart`,
   `/cart/` and `/cart/x` but not `/cartx`.
3. routes sharing a path are tried host-specific first, then the more conditions (headers + methods) first, then in
   declaration order; the first whose method and headers hold wins. When none holds at an exact or prefix location
   the request goes on to the next location in the order of step 2 (the one nginx would have chosen without this
   one); a regex location owns every URI it matches, so there it ends in 404 (the README's routing semantics: which
   location would come next depends on the whole URI, and nginx cannot resume its search). Nothing left: 404 (None).

A header condition holds when the request carries that header (names case-insensitive) with exactly that value; a
header whose name has an underscore is one nginx ignores (`underscores_in_headers off`), so it never matches; nginx
trims blanks around a header's value, and of a header sent twice `$http_<name>` is the first (nginx 1.22, the
Debian package the tests run; 1.23+ joins them with ", ").
Request paths are taken as nginx's normalized `$uri` (the fuzzer only sends normalized paths).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import pcre2

from components.spec.schema import Route, Spec

__all__ = ["Request", "choose_route", "is_allowed", "pcre2_compiles", "pcre2_search"]


@dataclass(frozen=True)
class Request:
    method: str
    host: str
    path: str
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    source: str = "127.0.0.1"


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> pcre2.Pattern | None:
    try:
        return pcre2.compile(pattern.encode())
    except pcre2.PatternError:
        return None


def pcre2_compiles(pattern: str) -> bool:
    """Whether nginx's regex library accepts the pattern (byte pattern, no flags: what `location ~` compiles)."""
    return _compiled(pattern) is not None


def pcre2_search(pattern: str, path: str) -> bool:
    compiled = _compiled(pattern)
    return compiled is not None and compiled.search(path.encode()) is not None


def _request_host(host: str) -> str:
    host = host.lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    host = host.rsplit(":", 1)[0] if ":" in host else host
    return host[:-1] if host.endswith(".") else host


def _server_host(spec: Spec, host: str) -> str | None:
    hosts = {r.match.host for r in spec.routes if r.match.host is not None}
    name = _request_host(host)
    if name in hosts:
        return name
    wildcards = [h for h in hosts if h.startswith("*.") and name.endswith(h[1:])]
    return max(wildcards, key=len) if wildcards else None


def _conditions_hold(route: Route, request: Request) -> bool:
    match = route.match
    if match.methods and request.method not in match.methods:
        return False
    sent: dict[str, str] = {}
    for name, value in request.headers:
        if "_" not in name:  # nginx trims the value's surrounding blanks
            sent.setdefault(name.lower(), value.strip(" \t"))
    return all(sent.get(name.lower()) == value for name, value in match.headers.items())


def _route_key(route: Route) -> tuple[str, str]:
    """(path_type, path), a prefix written without its trailing slash: "/cart/" and "/cart" share a location."""
    match = route.match
    return (match.path_type, match.path.rstrip("/") or "/") if match.path_type == "prefix" else (match.path_type, match.path)


def _covers(prefix: str, path: str) -> bool:
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def _locations(routes: Sequence[Route], path: str) -> Iterator[tuple[str, str]]:
    """The (path_type, path) locations covering `path`, in the order nginx would pick them."""
    keys = list(dict.fromkeys(_route_key(r) for r in routes))
    if ("exact", path) in keys:
        yield ("exact", path)
    for kind, pattern in keys:
        if kind == "regex" and pcre2_search(pattern, path):
            yield (kind, pattern)
    prefixes = sorted((p for k, p in keys if k == "prefix" and _covers(p, path)), key=len, reverse=True)
    for prefix in prefixes:
        yield ("prefix", prefix)


def choose_route(spec: Spec, request: Request) -> str | None:
    """The route the request reaches by the rules above, or None (404)."""
    server = _server_host(spec, request.host)
    routes = [r for r in spec.routes if server is not None and r.match.host == server]
    routes += [r for r in spec.routes if r.match.host is None]
    order = {r.name: i for i, r in enumerate(routes)}
    for kind, path in _locations(routes, request.path):
        sharing = [r for r in routes if _route_key(r) == (kind, path)]
        sharing.sort(key=lambda r: (r.match.host is None, -(len(r.match.headers) + bool(r.match.methods)), order[r.name]))
        for route in sharing:
            if _conditions_hold(route, request):
                return route.name
        if kind == "regex":
            return None
    return None


def is_allowed(spec: Spec, source: str) -> bool:
    """`allow <cidr>; ... deny all;`: a client outside every allowed source gets 403."""
    address = ipaddress.ip_address(source)
    return any(address in network for network in spec.gateway.allowed_sources)
