"""Every route of every shipped stack is reached by a request that should match
it, and not by nearby requests that should not (derived from the spec; see
testbed.routing for the precedence the oracle applies)."""
from __future__ import annotations

import itertools
import sys

import pytest

from components.spec.schema import Spec
from testbed.routing import Probe, probes, route_backends
from testbed.specs import STACKS, load_stack

pytestmark = pytest.mark.dataplane

def _all_probes() -> list[tuple[str, Probe]]:
    """Every probe of every shipped stack; a stack that does not load fails the collection (never drops its probes)."""
    return [(stack, p) for stack in STACKS for p in probes(load_stack(stack))]


_PROBES = _all_probes()


_COUNTER = itertools.count(1)  # probe tags stay unique across gateways


def run_probes(spec: Spec) -> dict[str, tuple[int, str | None, str | None]]:
    """Start the spec's gateway, send every probe once; {probe.id: (status, logged route, replica)}."""
    from testbed.gateway import Gateway

    results: dict[str, tuple[int, str | None, str | None]] = {}
    with Gateway(spec) as gw:
        sent: dict[str, tuple[str, int, str | None]] = {}
        for p in probes(spec):
            n = next(_COUNTER)
            tag = f"netopt_probe={n}"
            path = p.path + ("&" if "?" in p.path else "?") + tag
            # A fresh source address per probe: per-client rate limits never interfere.
            with gw.client(source=f"127.1.{n // 250}.{1 + n % 250}") as c:
                r = c.request(p.method, path, headers=dict(p.headers), host_header=p.host,
                              body=b"x" if p.method in ("POST", "PUT", "PATCH") else None)
            sent[tag] = (p.id, r.status, r.replica)
        log = {ln.uri.rsplit("?", 1)[-1]: ln for ln in gw.access_log()}
        for tag, (pid, status, replica) in sent.items():
            line = log.get(tag)
            results[pid] = (status, line.route if line else "<not logged>", replica)
    return results


@pytest.fixture(scope="module")
def observed() -> dict[tuple[str, str], tuple[int, str | None, str | None]]:
    """Every probe of every shipped stack, one gateway per stack: {(stack, probe.id): ...}."""
    out = {}
    for stack in STACKS:
        for pid, res in run_probes(load_stack(stack)).items():
            out[(stack, pid)] = res
    return out


@pytest.mark.parametrize("stack,probe", _PROBES, ids=[f"{s}:{p.id}" for s, p in _PROBES])
def test_route(stack: str, probe: Probe,
               observed: dict[tuple[str, str], tuple[int, str | None, str | None]]) -> None:
    spec = load_stack(stack)
    if probe.kind == "match":
        assert probe.expected == probe.route, (
            f"route {probe.route} is shadowed: the generated request reaches {probe.expected!r} by the spec's own rules")
    _check(spec, probe, *observed[(stack, probe.id)])


def _check(spec: Spec, probe: Probe, status: int, route: str | None, replica: str | None) -> None:
    want = probe.expected or ""
    assert route == want, (
        f"{probe.method} {probe.host}{probe.path} headers={dict(probe.headers)}: nginx chose route "
        f"{route!r} (status {status}), the spec says {want or 'no route (404)'!r}")
    if probe.expected is None:
        assert status == 404
    else:
        assert status == 200, f"status {status}"
        assert replica and replica.rsplit("-", 1)[0] in route_backends(spec, want), (
            f"answered by {replica}, route {want} goes to {route_backends(spec, want)}")


def synthetic_spec() -> Spec:
    """Hosts (exact and wildcard), exact vs prefix vs regex, regex declaration
    order, a longer prefix, a prefix without its slash, method + header conditions sharing a path."""
    from testbed.specs import make_spec

    return make_spec(
        {"api": 2, "web": 1, "admin": 1, "static": 1},
        [
            {"name": "shop_api", "match": {"host": "shop.example.com", "path": "/api/"}, "to": {"api": 1}},
            {"name": "wild", "match": {"host": "*.example.com", "path": "/"}, "to": {"web": 1}},
            {"name": "admin_exact", "match": {"path": "/admin", "path_type": "exact"}, "to": {"admin": 1}},
            {"name": "admin_get", "match": {"path": "/admin/", "methods": ["GET"]}, "to": {"admin": 1}},
            {"name": "images", "match": {"path": r"\.(png|jpg)$", "path_type": "regex"}, "to": {"static": 1}},
            {"name": "v2", "match": {"path": "^/v2/", "path_type": "regex"}, "to": {"api": 1}},
            {"name": "api_write", "match": {"path": "/api/", "methods": ["POST", "PUT"],
                                            "headers": {"X-Tenant": "blue"}}, "to": {"api": 1}},
            {"name": "api", "match": {"path": "/api/"}, "to": {"api": 1}},
            {"name": "api_internal", "match": {"path": "/api/internal/"}, "to": {"admin": 1}},
            {"name": "docs", "match": {"path": "/docs"}, "to": {"static": 1}},  # no slash: /docsx is not its
            {"name": "root", "match": {"path": "/"}, "to": {"web": 1}},
        ],
    )


_SYN_PROBES = probes(synthetic_spec())


@pytest.fixture(scope="module")
def observed_synthetic() -> dict[str, tuple[int, str | None, str | None]]:
    return run_probes(synthetic_spec())


@pytest.mark.parametrize("probe", _SYN_PROBES, ids=[p.id for p in _SYN_PROBES])
def test_route_synthetic(probe: Probe, observed_synthetic: dict[str, tuple[int, str | None, str | None]]) -> None:
    spec = synthetic_spec()
    if probe.kind == "match":
        assert probe.expected == probe.route, f"route {probe.route} is shadowed ({probe.expected!r})"
    _check(spec, probe, *observed_synthetic[probe.id])


def test_regex_declaration_order_and_extra_cases() -> None:
    """Hand-picked precedence cases the generic probes may not hit."""
    from testbed.routing import expected_route

    spec = synthetic_spec()
    cases = [
        ("GET", "/v2/logo.png", "netopt-unmatched.test", {}),    # both regexes: first declared wins
        ("GET", "/api/internal/x", "netopt-unmatched.test", {}),  # longer prefix
        ("GET", "/api/x", "shop.example.com", {}),                # host route beats hostless
        ("GET", "/api/x", "b.example.com", {}),                   # wildcard host: hostless /api/ is longer
        ("GET", "/x", "b.example.com", {}),                       # wildcard host on "/"
        ("PUT", "/api/x", "netopt-unmatched.test", {"X-Tenant": "blue"}),
        ("PUT", "/api/x", "netopt-unmatched.test", {"X-Tenant": "red"}),
    ]
    from testbed.gateway import Gateway

    with Gateway(spec) as gw:
        statuses = []
        for i, (method, path, host, headers) in enumerate(cases):
            with gw.client() as c:
                statuses.append(c.request(method, f"{path}?case={i}", headers=headers, host_header=host,
                                          body=b"x" if method in ("POST", "PUT") else None).status)
        log = {ln.uri.rsplit("?", 1)[-1]: ln.route for ln in gw.access_log()}
    wrong: list[str] = []
    for i, (method, path, host, headers) in enumerate(cases):
        want = expected_route(spec, method, path, host, headers)
        got = log.get(f"case={i}")
        if got != (want or ""):
            wrong.append(f"{method} {host}{path} {headers}: nginx {got!r} (status {statuses[i]}), spec {want!r}")
    assert not wrong, "\n".join(wrong)


def test_a_stack_that_does_not_load_fails_instead_of_dropping_its_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(stack: str) -> Spec:
        raise ValueError(f"stack {stack} does not load")

    monkeypatch.setattr(sys.modules[__name__], "load_stack", broken)
    with pytest.raises(ValueError, match="stack dev does not load"):
        _all_probes()


def test_prefix_matches_whole_segments_and_its_limit_counts_only_them() -> None:
    """`/cart` takes /cart, /cart/ and /cart/x, never /cartx (nginx's own `location /cart` would); and its rate limit
    (3 at once, then 429) is not used up by /cartx requests."""
    from testbed.gateway import Gateway
    from testbed.routing import expected_route
    from testbed.specs import make_spec

    spec = make_spec({"cart": 1, "web": 1}, [
        {"name": "cart", "match": {"path": "/cart"}, "to": {"cart": 1}, "rate_limit": "cart_rl"},
        {"name": "root", "match": {"path": "/"}, "to": {"web": 1}},
    ], rate_limits=[{"name": "cart_rl", "rps": 0.5, "burst": 2, "key": "global"}])
    cases = [*(("/cartx", "root", 200) for _ in range(5)), ("/cartx/1", "root", 200),
             ("/cart", "cart", 200), ("/cart/", "cart", 200), ("/cart/x", "cart", 200), ("/cart/y", "cart", 429)]
    with Gateway(spec) as gw:
        got = []
        for i, (path, _, _) in enumerate(cases):
            with gw.client() as c:
                response = c.request("GET", f"{path}?case={i}")
            got.append((response.status, response.replica))
        log = {ln.uri.rsplit("?", 1)[-1]: ln.route for ln in gw.access_log()}
    for i, ((path, route, status), (answered, replica)) in enumerate(zip(cases, got, strict=True)):
        assert expected_route(spec, "GET", path, "x") == route, path
        assert (log.get(f"case={i}"), answered) == (route, status), f"GET {path}: nginx {log.get(f'case={i}')!r}, status {answered}"
        if status == 200:
            assert replica and replica.rsplit("-", 1)[0] in route_backends(spec, route), f"GET {path}: answered by {replica}"
