"""Rate and concurrency limits on the real nginx, as the spec declares them."""
from __future__ import annotations

import asyncio

import pytest

from components.spec.schema import Spec
from testbed.client import RequestSpec, Sample, closed_loop, fixed_rate, run
from testbed.gateway import GatewayFactory
from testbed.specs import load_stack, make_spec

pytestmark = pytest.mark.dataplane

DURATION = 4.0


def _expected(rps: float, burst: int, duration: float) -> float:
    return rps * duration + burst


def _assert_budget(samples: list[Sample], rps: float, burst: int, duration: float, retry_after: int,
                   label: str = "") -> int:
    ok = sum(1 for s in samples if s.status == 200)
    limited = [s for s in samples if s.status == 429]
    other = [s for s in samples if s.status not in (200, 429)]
    want = _expected(rps, burst, duration)
    assert not other, f"{label}: unexpected answers {[(s.status, s.error) for s in other[:5]]}"
    assert abs(ok - want) <= max(0.10 * want, 2), f"{label}: {ok} accepted, expected {want:.0f} +-10%"
    assert len(limited) == len(samples) - ok
    assert all(s.retry_after == str(retry_after) for s in limited), (
        f"{label}: Retry-After {set(s.retry_after for s in limited)}, declared {retry_after}")
    return ok


def _limited_spec(key: str, rps: float = 20, burst: int = 10, retry_after: int = 2) -> Spec:
    return make_spec(
        {"svc": 2},
        [{"name": "limited", "match": {"path": "/"}, "to": {"svc": 1}, "rate_limit": "rl"}],
        rate_limits=[{"name": "rl", "rps": rps, "burst": burst, "key": key, "retry_after_s": retry_after}],
    )


def _clients_at_once(port: int, rps: float, *clients: tuple[RequestSpec, str]) -> list[list[Sample]]:
    """Each (request, source address) client sends ``rps`` requests/s for DURATION, all at the same time."""
    async def all_clients() -> list[list[Sample]]:
        return await asyncio.gather(*(fixed_rate("127.0.0.1", port, rps, DURATION, req, source=source)
                                      for req, source in clients))

    samples: list[list[Sample]] = run(all_clients())
    return samples


def test_rate_limit_at_twice_the_rate(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(_limited_spec("client_ip"))
    samples = run(fixed_rate("127.0.0.1", gw.port, 40, DURATION, RequestSpec(path="/rl"), source="127.0.0.2"))
    _assert_budget(samples, 20, 10, DURATION, 2, "client_ip")


def test_rate_limit_is_per_client_ip(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(_limited_spec("client_ip"))
    a, b = _clients_at_once(gw.port, 40, (RequestSpec(path="/a"), "127.0.0.2"), (RequestSpec(path="/b"), "127.0.0.3"))
    _assert_budget(a, 20, 10, DURATION, 2, "127.0.0.2")
    _assert_budget(b, 20, 10, DURATION, 2, "127.0.0.3")


def test_rate_limit_per_header_key(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(_limited_spec("header:X-Api-Key"))

    def spec_for(key: str) -> RequestSpec:
        return RequestSpec(path="/k", headers={"X-Api-Key": key})

    # same source address, two keys: two budgets
    a, b = _clients_at_once(gw.port, 40, (spec_for("alpha"), "127.0.0.2"), (spec_for("beta"), "127.0.0.2"))
    _assert_budget(a, 20, 10, DURATION, 2, "key alpha")
    _assert_budget(b, 20, 10, DURATION, 2, "key beta")


def test_global_rate_limit_is_shared(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(_limited_spec("global"))
    # 2 x 20 r/s = twice the shared 20 r/s
    a, b = _clients_at_once(gw.port, 20, (RequestSpec(path="/a"), "127.0.0.2"), (RequestSpec(path="/b"), "127.0.0.3"))
    _assert_budget(a + b, 20, 10, DURATION, 2, "global")


@pytest.mark.parametrize("stack", ["dev"])
def test_stack_rate_limits(stack: str, gateway_factory: GatewayFactory) -> None:
    """Each rate limit of the shipped stack, through a route that uses it, at 2x its rate."""
    from testbed.routing import probes

    spec = load_stack(stack)
    gw = gateway_factory(spec)
    by_route = {p.route: p for p in probes(spec) if p.kind == "match"}
    limits = {l.name: l for l in spec.rate_limits}
    jobs = []
    for i, lim in enumerate(spec.rate_limits):
        route = next(r for r in spec.routes if r.rate_limit == lim.name)
        p = by_route[route.name]
        duration = 3.0
        req = RequestSpec(method=p.method, path=p.path, headers={**dict(p.headers), "Host": p.host},
                          body=b"x" if p.method == "POST" else b"")
        jobs.append((lim, route, duration, fixed_rate("127.0.0.1", gw.port, 2 * lim.rps, duration, req,
                                                      source=f"127.0.3.{i + 1}", max_conns=64)))

    async def all_jobs() -> list[list[Sample]]:
        return await asyncio.gather(*(j[3] for j in jobs))

    results = run(all_jobs())
    for (lim, route, duration, _), samples in zip(jobs, results, strict=False):
        _assert_budget(samples, lim.rps, lim.burst, duration, limits[lim.name].retry_after_s,
                       f"{stack}:{lim.name} via {route.name}")


def test_limit_conn_caps_concurrency(gateway_factory: GatewayFactory) -> None:
    spec = make_spec(
        {"svc": 2},
        [{"name": "capped", "match": {"path": "/"}, "to": {"svc": 1}, "concurrency_limit": "cl"}],
        concurrency_limits=[{"name": "cl", "connections": 4, "key": "client_ip", "retry_after_s": 3}],
    )
    gw = gateway_factory(spec)
    slow = RequestSpec(path="/slow?__sleep_ms=400")

    async def burst() -> tuple[list[Sample], list[Sample]]:
        return await asyncio.gather(
            closed_loop("127.0.0.1", gw.port, 12, 12, slow, source="127.0.0.2"),
            closed_loop("127.0.0.1", gw.port, 12, 12, slow, source="127.0.0.3"))

    a, b = run(burst())
    for label, samples in (("127.0.0.2", a), ("127.0.0.3", b)):
        ok = [s for s in samples if s.status == 200]
        limited = [s for s in samples if s.status == 429]
        assert len(ok) == 4 and len(limited) == 8, (label, [s.status for s in samples])
        assert all(s.retry_after == "3" for s in limited)
    inflight = sum(st["max_inflight"] for st in gw.backend_stats().values())
    assert inflight <= 8, f"backends saw {inflight} concurrent requests; limit is 4 per client x 2 clients"
