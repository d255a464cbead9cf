"""What route a request *should* reach, from the spec alone -- and probe requests for every route.

The oracle reads a route as a rule whose conditions (host, path, method,
headers) must all hold; among the routes that hold, the winner is chosen the
way nginx chooses locations:

1. server: the request's Host equals a route host (exact), else the longest
   matching wildcard host (``*.example.com``), else the default server; the
   candidates are that host's routes plus every route without a host;
2. path: an ``exact`` route, else the first ``regex`` route in declaration
   order (PCRE2 search as nginx's ``~`` runs it: ``components.spec.regex``,
   not Python's ``re``), else the longest ``prefix``. A prefix matches by whole
   path segments, its trailing slash ignored (Gateway API PathPrefix): ``/cart``
   and ``/cart/`` both match ``/cart``, ``/cart/`` and ``/cart/x``, not ``/cartx``;
3. several routes on the same path: host-specific first, then more
   conditions (headers + methods), then declaration order.

A route whose method/header conditions do not hold does not claim the request:
it falls through to the next rule (as in the Kubernetes Gateway API). No route
at all -> ``None`` (the gateway answers 404).

:func:`probes` derives, for every route, one request that must reach it and
requests that must not (a path just outside it -- ``/cartx`` for ``/cart`` --,
another method, a missing or wrong header, another host) and a prefix's own
path with and without its slash, with the oracle's expected route for each.
"""
from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from components.spec.regex import search as nginx_search

if TYPE_CHECKING:
    from components.spec.schema import Route, Spec

# The regex parser (re._parser / re._constants since 3.11; sre_* before).
try:
    sre_parse: Any = importlib.import_module("re._parser")
    sre_constants: Any = importlib.import_module("re._constants")
except ImportError:  # pragma: no cover
    sre_parse = importlib.import_module("sre_parse")
    sre_constants = importlib.import_module("sre_constants")

ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
OTHER_HOST = "netopt-unmatched.test"

__all__ = ["ALL_METHODS", "Probe", "expected_route", "probes", "regex_examples"]


@dataclass(frozen=True)
class Probe:
    route: str                 # the route this probe is about
    kind: str                  # "match" or "miss:<what>"
    method: str
    path: str
    host: str
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    expected: str | None = None  # oracle's route (None = 404)

    @property
    def id(self) -> str:
        h = ",".join(f"{k}={v}" for k, v in self.headers)
        return f"{self.route}:{self.kind}:{self.method} {self.host}{self.path}" + (f" [{h}]" if h else "")


# ----------------------------------------------------------------------------
# Oracle
# ----------------------------------------------------------------------------

def _host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def _server_host(spec: Spec, host: str) -> str | None:
    hosts = {r.match.host for r in spec.routes if r.match.host}
    host = host.split(":")[0].lower()
    if host in hosts:
        return host
    wild = sorted((h for h in hosts if h.startswith("*.") and _host_matches(h, host)), key=len, reverse=True)
    return wild[0] if wild else None


def _conditions_hold(route: Route, method: str, headers: dict[str, str]) -> bool:
    m = route.match
    if m.methods and method not in m.methods:
        return False
    lower = {k.lower(): v for k, v in headers.items()}
    return all(lower.get(k.lower()) == v for k, v in m.headers.items())


def _path_matches(route: Route, path: str) -> bool:
    m = route.match
    if m.path_type == "exact":
        return path == m.path
    if m.path_type == "prefix":
        return _prefix_matches(m.path, path)
    return nginx_search(m.path, path)


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def _prefix_matches(prefix: str, path: str) -> bool:
    """Gateway API PathPrefix: the prefix's segments are the path's first segments ("/cart/" is under "/cart")."""
    want = _segments(prefix)
    return _segments(path)[: len(want)] == want


def expected_route(spec: Spec, method: str, path: str, host: str, headers: dict[str, str] | None = None) -> str | None:
    """Name of the route the request should reach, or None (404)."""
    headers = headers or {}
    server = _server_host(spec, host)
    order = {r.name: i for i, r in enumerate(spec.routes)}
    cands = [r for r in spec.routes
             if (r.match.host is None or r.match.host == server)
             and _conditions_hold(r, method, headers) and _path_matches(r, path)]
    if not cands:
        return None

    def tie(r: Route) -> tuple[bool, int, int]:
        m = r.match
        return (m.host is None, -(len(m.headers) + (1 if m.methods else 0)), order[r.name])

    exact = [r for r in cands if r.match.path_type == "exact"]
    if exact:
        return min(exact, key=tie).name
    regex = [r for r in cands if r.match.path_type == "regex"]
    if regex:
        first = min(regex, key=lambda r: order[r.name]).match.path
        return min((r for r in regex if r.match.path == first), key=tie).name
    prefix = [r for r in cands if r.match.path_type == "prefix"]
    longest = max(len(_segments(r.match.path)) for r in prefix)
    return min((r for r in prefix if len(_segments(r.match.path)) == longest), key=tie).name


# ----------------------------------------------------------------------------
# Regex example generation (deterministic)
# ----------------------------------------------------------------------------

_CAT = {
    sre_constants.CATEGORY_DIGIT: "0", sre_constants.CATEGORY_NOT_DIGIT: "a",
    sre_constants.CATEGORY_WORD: "a", sre_constants.CATEGORY_NOT_WORD: "-",
    sre_constants.CATEGORY_SPACE: "-", sre_constants.CATEGORY_NOT_SPACE: "a",
}
_SAFE = "abcdefghijklmnopqrstuvwxyz0123456789-_./"


def _gen(tokens: Any, variant: int) -> str:
    out = []
    for op, av in tokens:
        if op == sre_constants.LITERAL:
            out.append(chr(av))
        elif op == sre_constants.NOT_LITERAL:
            out.append(next(c for c in _SAFE if ord(c) != av))
        elif op == sre_constants.ANY:
            out.append("x")
        elif op == sre_constants.IN:
            out.append(_gen_in(av, variant))
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, getattr(sre_constants, "POSSESSIVE_REPEAT", None)):
            lo, hi, sub = av
            n = lo if variant == 0 else min(hi, max(lo, 1) + variant)
            n = max(n, 1) if variant and hi else n
            out.append("".join(_gen(sub, variant) for _ in range(n)))
        elif op == sre_constants.SUBPATTERN:
            out.append(_gen(av[-1], variant))
        elif op == sre_constants.BRANCH:
            branches = av[1]
            out.append(_gen(branches[variant % len(branches)], variant))
        elif op in (sre_constants.AT, sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            continue
        elif op == sre_constants.CATEGORY:
            out.append(_CAT.get(av, "a"))
        elif op == sre_constants.GROUPREF:
            continue
        else:  # pragma: no cover - unusual constructs
            continue
    return "".join(out)


def _gen_in(items: Any, variant: int) -> str:
    negate = any(op == sre_constants.NEGATE for op, _ in items)
    chars: list[str] = []
    for op, av in items:
        if op == sre_constants.LITERAL:
            chars.append(chr(av))
        elif op == sre_constants.RANGE:
            chars.extend(chr(c) for c in range(av[0], min(av[1], av[0] + 40) + 1))
        elif op == sre_constants.CATEGORY:
            chars.append(_CAT.get(av, "a"))
    if negate:
        return next(c for c in _SAFE if c not in chars)
    safe = [c for c in chars if c in _SAFE] or chars or ["a"]
    return safe[variant % len(safe)]


def regex_examples(pattern: str, n: int = 4) -> list[str]:
    """Up to ``n`` distinct URL paths that nginx's PCRE2 search of ``pattern`` matches.

    Candidates come from Python's regex parser (PCRE's ``(?<name>`` spelled ``(?P<name>``); a construct it does
    not know gives no candidates. Every candidate is checked with PCRE2, so none is a false example."""
    try:
        tokens = sre_parse.parse(re.sub(r"\(\?<(?=[A-Za-z_])", "(?P<", pattern))
    except (re.error, ValueError, OverflowError):
        return []
    out: list[str] = []
    for v in range(n * 3):
        s = _gen(tokens, v)
        for cand in (s, s + "/probe", "/" + s.lstrip("/")):
            if cand.startswith("/") and nginx_search(pattern, cand) and cand not in out:
                out.append(cand)
                break
        if len(out) >= n:
            break
    return out


# ----------------------------------------------------------------------------
# Probes
# ----------------------------------------------------------------------------

def _path_candidates(route: Route) -> list[str]:
    m = route.match
    if m.path_type == "exact":
        return [m.path]
    if m.path_type == "prefix":
        base = m.path if m.path.endswith("/") else m.path + "/"
        return [base + "probe", m.path, base + "a/b"]
    return regex_examples(m.path)


def _outside_paths(route: Route, inside: str) -> list[str]:
    """Paths close to ``inside`` that the route's path condition rejects."""
    m = route.match
    cands: list[str] = []
    if m.path_type == "exact":
        cands = [m.path + "x", m.path + "/x", m.path[:-1] or "/x"]
    elif m.path_type == "prefix":
        p = m.path.rstrip("/")
        if p:  # "/apix" is outside prefix "/api": segments, not characters
            cands = [p + "x", p[:-1] + ("z" if p[-1] != "z" else "y") + "/probe", p[:-1] or "/zz"]
    else:
        for i in range(1, len(inside)):
            for c in ("Z", "0", "-"):
                cand = inside[:i] + c + inside[i + 1:]
                if not nginx_search(m.path, cand):
                    cands.append(cand)
                    break
            if len(cands) >= 2:
                break
    return [c for c in cands if not _path_matches(route, c)]


def _edge_paths(route: Route) -> list[tuple[str, str]]:
    """A prefix's own path without and with its trailing slash (both inside it), next to the "match" probe below it."""
    p = route.match.path.rstrip("/")
    return [("bare", p), ("slash", p + "/")] if route.match.path_type == "prefix" and p else []


def probes(spec: Spec) -> list[Probe]:
    """A "match" probe per route plus "miss:*" and "edge:*" probes; each with the oracle's expectation.

    A route that no generated request reaches gets a "match" probe whose
    expectation is someone else (the test then reports it as shadowed)."""
    out: list[Probe] = []
    for route in spec.routes:
        m = route.match
        host = m.host.replace("*", "probe") if m.host else OTHER_HOST
        method = m.methods[0] if m.methods else "GET"
        hdrs = tuple(sorted(m.headers.items()))
        chosen = None
        for path in _path_candidates(route):
            exp = expected_route(spec, method, path, host, dict(hdrs))
            if exp == route.name:
                chosen = Probe(route.name, "match", method, path, host, hdrs, exp)
                break
        if chosen is None:
            path = (_path_candidates(route) or ["/"])[0]
            chosen = Probe(route.name, "match", method, path, host, hdrs,
                           expected_route(spec, method, path, host, dict(hdrs)))
            out.append(chosen)
            continue
        out.append(chosen)
        misses: list[tuple[str, str, str, str, tuple[tuple[str, str], ...]]] = []
        for p in _outside_paths(route, chosen.path)[:2]:
            misses.append(("path", method, p, host, hdrs))
        if m.methods:
            other = next((x for x in ("GET", "POST", "DELETE", "PUT") if x not in m.methods), None)
            if other:
                misses.append(("method", other, chosen.path, host, hdrs))
        for k, _v in m.headers.items():
            misses.append((f"no-{k}", method, chosen.path, host, tuple(x for x in hdrs if x[0] != k)))
            misses.append((f"wrong-{k}", method, chosen.path, host,
                           tuple((a, b + "-no" if a == k else b) for a, b in hdrs)))
        if m.host:
            misses.append(("host", method, chosen.path, OTHER_HOST, hdrs))
        for what, meth, p, h, hh in misses:
            exp = expected_route(spec, meth, p, h, dict(hh))
            out.append(Probe(route.name, f"miss:{what}", meth, p, h, hh, exp))
        for what, p in _edge_paths(route):
            out.append(Probe(route.name, f"edge:{what}", method, p, host, hdrs, expected_route(spec, method, p, host, dict(hdrs))))
    return out


def route_backends(spec: Spec, name: str) -> set[str]:
    r = next(r for r in spec.routes if r.name == name)
    return {b.workload for b in r.backends}


def iter_routes(spec: Spec) -> Iterable[str]:
    return (r.name for r in spec.routes)
