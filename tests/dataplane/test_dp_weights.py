"""Per-replica split on the real nginx matches the declared weights."""
from __future__ import annotations

from fractions import Fraction

import pytest

from components.spec.schema import Spec
from testbed.gateway import Gateway, GatewayFactory, counts
from testbed.specs import STACKS, load_stack, make_spec
from testbed.stats import chi_square

pytestmark = pytest.mark.dataplane


def declared_shares(spec: Spec, route_name: str) -> dict[str, Fraction]:
    """Replica -> share of the route's requests, straight from the spec's words:
    the route's backend weights, then within a workload: ``replica_weights``
    (algorithm weighted), capacity ``max_concurrency / response_time``
    (latency_weighted), else equal. With Service balancing (kubernetes target)
    nginx only splits between workloads."""
    from testbed.gateway import is_service_balanced

    route = next(r for r in spec.routes if r.name == route_name)
    total = sum(b.weight for b in route.backends)
    algo = spec.gateway.algorithm
    out: dict[str, Fraction] = {}
    if is_service_balanced(spec):  # one Service per workload (its backend is "<workload>-0")
        return {f"{b.workload}-0": Fraction(b.weight, total) for b in route.backends}
    for b in route.backends:
        w = spec.workload(b.workload)
        if algo == "weighted" and w.replica_weights:
            raw = [Fraction(x) for x in w.replica_weights]
        elif algo == "latency_weighted":
            raw = [Fraction(w.max_concurrency) / Fraction(t).limit_denominator(10**6)
                   for t in w.replica_response_times_s()]
        else:
            raw = [Fraction(1)] * w.replicas
        for i, r in enumerate(raw):
            out[f"{w.name}-{i}"] = Fraction(b.weight, total) * r / sum(raw)
    return out


def _sample(gw: Gateway, path: str, n: int, clients: int = 100,
            headers: dict[str, str] | None = None) -> dict[str, int]:
    """n GETs spread over ``clients`` source addresses (each its own per-IP limit budget)."""
    conns = [gw.client(source=f"127.0.{10 + i // 250}.{1 + i % 250}") for i in range(clients)]
    got = []
    try:
        for i in range(n):
            r = conns[i % clients].request("GET", path, headers=headers)
            assert r.status == 200, (r.status, r.body)
            got.append(r.replica)
    finally:
        for c in conns:
            c.close()
    return counts(got)


def _check(observed: dict[str, int], shares: dict[str, Fraction]) -> float:
    names = sorted(shares)
    assert set(observed) <= set(names), f"unexpected replicas {set(observed) - set(names)}"
    stat, p = chi_square([observed.get(n, 0) for n in names], [float(shares[n]) for n in names])
    assert p > 0.01, f"split {observed} does not fit declared {({n: float(s) for n, s in shares.items()})}: chi2={stat:.2f} p={p:.4g}"
    return p


def test_weighted_replicas_chi_square(gateway_factory: GatewayFactory) -> None:
    spec = make_spec(
        {"svc": {"replicas": 4, "replica_weights": [1, 2, 3, 4]}, "other": 2},
        [{"name": "main", "match": {"path": "/"}, "to": {"svc": 3, "other": 1}}],
        gateway={"algorithm": "weighted"},
    )
    gw = gateway_factory(spec)
    observed = _sample(gw, "/w", 1200, clients=8)
    _check(observed, declared_shares(spec, "main"))


def test_latency_weighted_split_follows_capacity(gateway_factory: GatewayFactory) -> None:
    spec = make_spec(
        {"svc": {"replicas": 3, "response_time_ms": [10, 10, 50], "max_concurrency": 16}},
        [{"name": "main", "match": {"path": "/"}, "to": {"svc": 1}}],
        gateway={"algorithm": "latency_weighted"},
    )
    gw = gateway_factory(spec)
    observed = _sample(gw, "/lw", 1100, clients=8)
    _check(observed, declared_shares(spec, "main"))


@pytest.mark.parametrize("stack", STACKS)
def test_stack_canary_split(stack: str, gateway_factory: GatewayFactory) -> None:
    """The shipped stacks' 90/10 api/api-canary route: chi-square on replicas and +-3 pp on the canary share."""
    spec = load_stack(stack)
    route = next(r for r in spec.routes if len(r.backends) > 1)
    gw = gateway_factory(spec)
    prefix = route.match.path if route.match.path_type == "prefix" else "/"
    observed = _sample(gw, prefix.rstrip("/") + "/split-probe", 2000)
    shares = declared_shares(spec, route.name)
    _check(observed, shares)
    for b in route.backends:
        got = sum(n for rep, n in observed.items() if rep.rsplit("-", 1)[0] == b.workload) / 2000
        want = b.weight / sum(x.weight for x in route.backends)
        assert abs(got - want) <= 0.03, f"{b.workload}: {got:.3f} of requests, declared {want:.3f}"
