"""Hypothesis strategies for differential fuzzing: adversarial stack specs, faults that make them invalid, requests.

`stacks()` draws a raw `netopt` config meant to be valid on either target (`docker` | `kubernetes`). Its values come
from small adversarial pools, so collisions are likely rather than rare: hosts that differ only in punctuation
(`a-b.test` / `a.b.test`), a host literally named `default`, IDN (`xn--`) and wildcard hosts; limit and route names
that differ only in `-` / `_`; header names that differ only in case and header values with `|`, quotes and
backslashes; regex routes built from PCRE features (named groups, `\\d`, classes, POSIX classes, anchors,
alternation, `(?i)`, possessive quantifiers, atomic groups, lookarounds, `\\z`). Each regex piece carries an example
string, so requests reach regex routes often. `collision_paths()` names the config keys whose values collide once
punctuation and case are dropped: a validator may refuse those (naming them) instead of rendering them apart.

`faults()` injects problems into a valid config, each with the key path the report must name. `requests()` draws
requests around a spec's routes: near misses in host, path, method and headers, including header values with `|`.

The generators are plain functions of a `random.Random`; each strategy draws one from `st.randoms()`. With
`use_true_random=False` (the tests) every choice is a Hypothesis draw, so failures shrink; with `True` (the long
run in bench/fuzz.py) choices cost microseconds instead of Hypothesis' bookkeeping for a few hundred draws.
"""

from __future__ import annotations

import copy
import random
import re
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from testbed.nginx_oracle import Request

ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
HOSTS = ("a-b.test", "a.b.test", "ab.test", "default", "xn--ab-0ma.test", "*.b.test", "*.test", "a-b", "a.b")
WORKLOADS = ("w0", "a-b", "a-1", "b")
ROUTE_NAMES = ("r-1", "r_1", "r1", "api", "api-v2", "api_v2", "default", "include")
MAP_WORDS = ("default", "hostnames", "include", "volatile")
RATE_LIMIT_NAMES = ("per-ip", "per_ip", "perip", "g")
CONN_LIMIT_NAMES = ("c-1", "c_1", "c1")
HEADER_NAMES = ("X-Tenant", "x-tenant", "X-Canary", "Accept", "X-A-B", "X-Ab")
HEADER_VALUES = ("1", "beta", "BETA", "a|b", "|", "x|y|z", '"q"', "it's", "a\\b", "a$b", "{x}", "%41")
SEGMENTS = ("api", "API", "v1", "a-b", "a_b", "x.json", "img", "12", "users", "~u")
DENIED_SOURCE = "127.77.0.1"
RESTRICTED_SOURCES = ["127.0.0.0/16", "::1/128"]

# A regex piece: (pattern, example text it matches). Lookarounds assert without consuming; their examples are empty.
_PIECES: tuple[tuple[str, str], ...] = (
    (r"\d+", "42"), (r"[0-9]{2,4}", "123"), (r"\d++", "7"), (r"[a-z]+", "abc"), (r"[[:alpha:]]+", "Ab"),
    (r"\w+", "a_1"), (r"[^/]+", "x-y"), (r"(?<v>[a-z]+)", "ab"), (r"(?P<n>\d)", "5"), (r"(?:json|xml)", "xml"),
    (r"(a|bc)", "bc"), (r"(?=[a-z])[a-z]*+", "ab"), (r"(?!admin)[a-z]+", "abc"), (r"(?>[a-z]+)", "ab"), (r".", "x"),
    (r".*", "any/thing"), (r"\.json", ".json"), (r"[A-Z]?", ""),
)


@dataclass(frozen=True)
class Generated:
    """A drawn config, plus example paths per route (so requests can reach regex routes)."""

    raw: dict[str, Any]
    examples: dict[str, tuple[str, ...]]


def _escape(text: str) -> str:
    return re.sub(r"([^A-Za-z0-9/])", r"\\\1", text)


def _some(rng: random.Random, pool: tuple[str, ...] | list[str], low: int, high: int) -> list[str]:
    """`low`..`high` distinct items of `pool`, in a random order."""
    return rng.sample(list(pool), rng.randint(low, min(high, len(pool))))


def regex_route_path(rng: random.Random) -> tuple[str, tuple[str, ...]]:
    """A PCRE regex for a URI and two example paths (not all necessarily matching: the oracle decides)."""
    anchored = rng.random() < 0.75
    parts: list[tuple[str, str]] = [("/", "/")] if anchored else []
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.5:
            segment = rng.choice(SEGMENTS)
            parts.append((_escape(segment), segment))
        else:
            parts.append(rng.choice(_PIECES))
        if rng.random() < 0.25:
            parts.append(("/", "/") if rng.random() < 0.5 else (r"(?<=/)", ""))
    pattern = "".join(p for p, _ in parts)
    example = "".join(e for _, e in parts)
    if rng.random() < 0.2:  # (?i) somewhere: what follows it matches in any case
        at = rng.randint(0, len(parts))
        pattern = "".join(p for p, _ in parts[:at]) + "(?i)" + "".join(p for p, _ in parts[at:])
        example = "".join(e for _, e in parts[:at]) + "".join(e for _, e in parts[at:]).swapcase()
    pattern = ("^" if anchored else "") + pattern + rng.choice(["", "", "$", r"\z", "(/.*)?$"])
    path = example if example.startswith("/") else "/x/" + example
    return pattern, (path, path + "/y")


def _plain_path(rng: random.Random, trailing: bool) -> str:
    path = "/" + "/".join(rng.choice(SEGMENTS) for _ in range(rng.randint(0, 3)))
    if trailing and path != "/" and rng.random() < 0.5:
        path += "/"
    return path


def _route(rng: random.Random, name: str, workloads: list[str], rate_limits: list[str],
           conn_limits: list[str]) -> tuple[dict[str, Any], tuple[str, ...]]:
    kind = rng.choice(["exact", "prefix", "prefix", "regex"])
    if kind == "regex":
        path, examples = regex_route_path(rng)
    else:
        path = _plain_path(rng, trailing=kind == "prefix")
        base = path if path.endswith("/") else path + "/"
        examples = (path,) if kind == "exact" else (path, base + "q", path.rstrip("/") or "/")
    match: dict[str, Any] = {"path": path, "path_type": kind}
    if rng.random() < 0.5:
        match["host"] = rng.choice(HOSTS)
    if rng.random() < 0.33:
        match["methods"] = _some(rng, ALL_METHODS, 1, 3)
    if rng.random() < 0.33:
        match["headers"] = {h: rng.choice(HEADER_VALUES) for h in _some(rng, HEADER_NAMES, 1, 2)}
    chosen = _some(rng, workloads, 1, 2)
    route: dict[str, Any] = {"name": name, "match": match, "backends": [{"workload": w, "weight": rng.randint(1, 100)} for w in chosen]}
    if rate_limits and rng.random() < 0.5:
        route["rate_limit"] = rng.choice(rate_limits)
    if conn_limits and rng.random() < 0.25:
        route["concurrency_limit"] = rng.choice(conn_limits)
    return route, examples


def _conflict_key(route: dict[str, Any]) -> tuple[object, ...]:
    m = route["match"]
    path = m["path"].rstrip("/") or "/" if m["path_type"] == "prefix" else m["path"]  # "/a/" and "/a" are one prefix
    return (m.get("host"), m["path_type"], path, tuple(sorted(m.get("headers", {}).items())))


def _conflicts(route: dict[str, Any], kept: list[dict[str, Any]]) -> bool:
    """Validation refuses two routes with the same host, path and headers whose methods overlap: do not draw them."""
    methods = set(route["match"].get("methods") or ALL_METHODS)
    return any(_conflict_key(other) == _conflict_key(route) and methods & set(other["match"].get("methods") or ALL_METHODS) for other in kept)


def generate_stack(rng: random.Random) -> Generated:
    target = rng.choice(["docker", "kubernetes"])
    names = _some(rng, WORKLOADS, 1, 3)
    workloads = [{"name": n, "image": f"example/{n}:1", "port": 8080, "replicas": rng.randint(1, 3),
                  "response_time_ms": rng.choice([1, 5, 20, 80]), "max_concurrency": 1000} for n in names]
    rate_limits: list[dict[str, Any]] = [{"name": n, "rps": rng.choice([0.5, 1, 5, 1000]), "burst": rng.choice([0, 2, 50]),
                                          "key": rng.choice(["client_ip", "global", "header:X-Api-Key"])}
                                         for n in _some(rng, RATE_LIMIT_NAMES, 0, 3)]
    conn_limits: list[dict[str, Any]] = [{"name": n, "connections": 100, "key": rng.choice(["client_ip", "global"])}
                                         for n in _some(rng, CONN_LIMIT_NAMES, 0, 2)]
    routes: list[dict[str, Any]] = []
    examples: dict[str, tuple[str, ...]] = {}
    for name in _some(rng, ROUTE_NAMES, 1, 6):
        route, paths = _route(rng, name, names, [l["name"] for l in rate_limits], [c["name"] for c in conn_limits])
        if not _conflicts(route, routes):
            routes.append(route)
            examples[name] = paths
    algorithm = rng.choice(["round_robin", "least_conn", "ip_hash", "latency_weighted", "latency_optimal", "consistent_hash"])
    gateway: dict[str, Any] = {"image": "nginx:test", "algorithm": algorithm, "keepalive": {"connections": 8, "timeout_s": 30}}
    if algorithm == "consistent_hash":
        gateway["hash_key"] = rng.choice(["client_ip", "uri", "header:X-User"])
    if rng.random() < 0.25:
        gateway["allowed_sources"] = RESTRICTED_SOURCES
    raw: dict[str, Any] = {"environment": "fuzz", "target": target, "network": {"name": "fz"}, "gateway": gateway,
                           "workloads": workloads, "routes": routes, "rate_limits": rate_limits, "concurrency_limits": conn_limits}
    if target == "docker":
        raw["network"]["subnet"] = "10.99.0.0/24"
    if algorithm == "latency_optimal":
        raw["traffic"] = {r["name"]: 100 for r in routes}
    return Generated(raw, examples)


def stacks(use_true_random: bool = False) -> st.SearchStrategy[Generated]:
    return st.randoms(use_true_random=use_true_random).map(generate_stack)


def _folded(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def collision_paths(raw: dict[str, Any]) -> set[str]:
    """Key paths whose values collide with another's once punctuation and case are dropped, or with a word nginx
    reserves (a host `default` next to the default server, a route `default` or `include` as a `map` key): a
    validator may refuse these, naming them, instead of rendering them apart."""
    groups: dict[tuple[str, str], dict[str, list[str]]] = {}
    paths: set[str] = set()
    for section in ("rate_limits", "concurrency_limits", "routes"):
        for i, item in enumerate(raw.get(section, [])):
            path = f"netopt:{section}[{i}].name"
            groups.setdefault((section, _folded(item["name"])), {}).setdefault(item["name"], []).append(path)
            if section == "routes" and item["name"] in MAP_WORDS:
                paths.add(path)
    for i, route in enumerate(raw.get("routes", [])):
        host = route["match"].get("host")
        if host is not None:
            path = f"netopt:routes[{i}].match.host"
            groups.setdefault(("host", _folded(host)), {}).setdefault(host, []).append(path)
            if _folded(host) == "default":
                paths.add(path)
        headers = route["match"].get("headers", {})
        if len({h.lower() for h in headers}) < len(headers):
            paths.add(f"netopt:routes[{i}].match.headers")
    for spellings in groups.values():
        if len(spellings) > 1:
            paths.update(p for members in spellings.values() for p in members)
    return paths


# ---- faults: each makes a valid config invalid and says which key path the report must name ------------------------

_BAD_REGEXES = (r"^/\N{DIGIT ONE}", r"^/(", r"^/[a-", r"^/a{2,1}", r"^/(?<n>a)(?<n>b)", r"^/\p{Nope}", r"^/(?<=a+)b", r"^/\k<missing>")


def _fault(raw: dict[str, Any], kind: str, index: int) -> str | None:
    """Apply fault `kind` to object `index` of its section; the key path the report must name, or None if n/a."""
    workloads, routes, limits = raw["workloads"], raw["routes"], raw["rate_limits"]
    w, r = index % len(workloads), index % len(routes)
    if kind == "port_text":
        workloads[w]["port"] = "http"
        return f"netopt:workloads[{w}].port"
    if kind == "port_bool":
        workloads[w]["port"] = True
        return f"netopt:workloads[{w}].port"
    if kind == "replicas_bool":
        workloads[w]["replicas"] = True
        return f"netopt:workloads[{w}].replicas"
    if kind == "replicas_zero":
        workloads[w]["replicas"] = 0
        return f"netopt:workloads[{w}].replicas"
    if kind == "unknown_workload":
        routes[r]["backends"][0]["workload"] = "nope"
        return f"netopt:routes[{r}].backends[0].workload"
    if kind == "unknown_rate_limit":
        routes[r]["rate_limit"] = "nope"
        return f"netopt:routes[{r}].rate_limit"
    if kind == "bad_host":
        routes[r]["match"]["host"] = ("A-B.test", "a_b.test", "b\u00fccher.test", "-a.test", "a..b")[index % 5]
        return f"netopt:routes[{r}].match.host"
    if kind == "bad_regex":
        routes[r]["match"].update(path=_BAD_REGEXES[index % len(_BAD_REGEXES)], path_type="regex")
        return f"netopt:routes[{r}].match"
    if kind == "bad_path":
        routes[r]["match"].update(path=("api", "/a b", "/a;b", "/a{b}")[index % 4], path_type="prefix")
        return f"netopt:routes[{r}].match"
    if kind == "header_value_space":
        routes[r]["match"]["headers"] = {"X-Tenant": "a b"}
        return f"netopt:routes[{r}].match.headers.X-Tenant"
    if kind == "unknown_key":
        workloads[w]["colour"] = "blue"
        return f"netopt:workloads[{w}].colour"
    if kind == "duplicate_route" and len(routes) > 1:
        raw.get("traffic", {}).pop(routes[max(r, 1)]["name"], None)  # else traffic names a route that is gone, too
        routes[max(r, 1)]["name"] = routes[max(r, 1) - 1]["name"]
        return f"netopt:routes[{max(r, 1)}].name"
    if kind == "rps_inexpressible" and limits:
        limits[index % len(limits)]["rps"] = 0.123  # 7.38 per minute
        return f"netopt:rate_limits[{index % len(limits)}].rps"
    if kind == "bad_algorithm":
        raw["gateway"]["algorithm"] = "fastest"
        raw["gateway"].pop("hash_key", None)
        return "netopt:gateway.algorithm"
    if kind == "unknown_top_level":
        raw["routs"] = []
        return "netopt:routs"
    return None


FAULTS = ("port_text", "port_bool", "replicas_bool", "replicas_zero", "unknown_workload", "unknown_rate_limit", "bad_host",
          "bad_regex", "bad_path", "header_value_space", "unknown_key", "duplicate_route", "rps_inexpressible", "bad_algorithm",
          "unknown_top_level")


def inject_faults(rng: random.Random, generated: Generated) -> tuple[dict[str, Any], set[str]]:
    """A copy of the config with 1-3 faults on distinct key paths, and those paths."""
    raw = copy.deepcopy(generated.raw)
    expected: set[str] = set()
    for kind in _some(rng, FAULTS, 1, 3):
        before = copy.deepcopy(raw)
        path = _fault(raw, kind, rng.randint(0, 5))
        if path is None or path in expected or any(path.startswith(p) or p.startswith(path) for p in expected):
            raw = before
            continue
        expected.add(path)
    if not expected:
        expected.add(str(_fault(raw, "unknown_top_level", 0)))
    return raw, expected


def faults(generated: Generated, use_true_random: bool = False) -> st.SearchStrategy[tuple[dict[str, Any], set[str]]]:
    return st.randoms(use_true_random=use_true_random).map(lambda rng: inject_faults(rng, generated))


# ---- requests ------------------------------------------------------------------------------------------------------

def _instantiate(host: str) -> str:
    return "x." + host[2:] if host.startswith("*.") else host


def _host_variants(host: str) -> list[str]:
    plain = _instantiate(host)
    variants = [plain, plain.upper(), plain + ":8080", plain + ".", plain.replace("-", "."), plain.replace(".", "-"),
                plain.replace("-", "").replace(".", ""), "y." + plain, host[2:] if host.startswith("*.") else "q." + plain]
    return [v for v in variants if ".." not in v]  # an empty label is a Host nginx answers with 400


def _path_variants(path: str) -> list[str]:
    out = [path, path + "x", path.rstrip("/") or "/", path.upper(), path.swapcase(), path + "/z", path[:-1] or "/"]
    return [p for p in out if p.startswith("/") and "//" not in p and "/./" not in p and "/../" not in p
            and not p.endswith(("/.", "/..")) and "%" not in p]


def _value_variants(value: str) -> list[str]:
    return [value, value + "|x", "x|" + value, value.upper(), value + " ", "a b", value + value]


def generate_requests(rng: random.Random, generated: Generated) -> list[Request]:
    """Requests around the spec's routes: each aimed at one route, then perturbed (or not)."""
    raw = generated.raw
    routes = raw["routes"]
    header_pool = sorted({h for r in routes for h in r["match"].get("headers", {})} | {"X-Tenant"})
    value_pool = sorted({v for r in routes for v in r["match"].get("headers", {}).values()} | {"a|b"})
    restricted = "allowed_sources" in raw["gateway"]
    out = []
    for _ in range(rng.randint(8, 30)):
        route = rng.choice(routes)
        match = route["match"]
        host = rng.choice(_host_variants(match["host"])) if match.get("host") else "netopt-unmatched.test"
        if rng.random() < 0.2:
            host = rng.choice([*HOSTS[:5], "_", "netopt-unmatched.test"])
        path = rng.choice(_path_variants(rng.choice(generated.examples[route["name"]])) or ["/"])
        method = rng.choice(match.get("methods") or ["GET"]) if rng.random() < 0.5 else rng.choice(ALL_METHODS)
        headers = dict(match.get("headers", {}))
        for name in list(headers):
            action = rng.choice(["keep", "keep", "drop", "lower", "underscore", "value"])
            if action == "drop":
                del headers[name]
            elif action == "lower":
                headers[name.lower()] = headers.pop(name)
            elif action == "underscore":
                headers[name.replace("-", "_")] = headers.pop(name)
            elif action == "value":
                headers[name] = rng.choice(_value_variants(headers[name]))
        if rng.random() < 0.33:  # another header some route tests, maybe with a `|` that could shift fields
            headers.setdefault(rng.choice(header_pool), rng.choice(value_pool))
        source = DENIED_SOURCE if restricted and rng.random() < 0.25 else "127.0.0.1"
        out.append(Request(method, host, path, tuple(headers.items()), source))
    return out


def requests(generated: Generated, use_true_random: bool = False) -> st.SearchStrategy[list[Request]]:
    return st.randoms(use_true_random=use_true_random).map(lambda rng: generate_requests(rng, generated))
