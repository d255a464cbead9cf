"""latency_optimal on the real nginx: the replica the M/M/c water-filling split leaves out is a backup server that serves
nothing under light load and takes the overflow when the primaries are saturated (max_conns) or dead."""
from __future__ import annotations

import pytest

from components.spec.schema import Spec
from testbed.client import RequestSpec, closed_loop, run
from testbed.gateway import GatewayFactory, counts
from testbed.specs import make_spec

pytestmark = pytest.mark.dataplane


def _spec() -> Spec:
    """svc: 3 replicas at 10 ms and one at 50 ms, 2 in service each (μ = 200, 200, 200, 40 req/s). At the declared
    100 req/s the slow one is left out (it would join past ≈ 407 req/s, where a fast replica's marginal cost reaches
    50 ms): svc-3 is the backup."""
    return make_spec(
        {"svc": {"replicas": 4, "response_time_ms": [10, 10, 10, 50], "max_concurrency": 2}},
        [{"name": "main", "match": {"path": "/"}, "to": {"svc": 1}}],
        # 4 tries: with every primary refusing connections, a request still reaches the backup on its last try
        gateway={"algorithm": "latency_optimal", "retries": {"tries": 4}},
        traffic={"main": 100},
    )


def test_backup_idle_under_light_load_and_takes_the_overflow(gateway_factory: GatewayFactory) -> None:
    spec = _spec()
    gw = gateway_factory(spec)
    upstream = next(u for u in gw.plan.gateway.upstreams if u.name == gw.plan.gateway.route_upstreams["main"])
    assert [s.backup for s in upstream.servers] == [False, False, False, True]
    assert " backup;" in gw.conf

    # Light load: one request at a time never fills a primary's max_conns, so the backup sees nothing.
    with gw.client() as c:
        light = [c.request("GET", f"/light/{i}") for i in range(150)]
    assert [r.status for r in light] == [200] * 150
    light_counts = counts(r.replica for r in light)
    assert light_counts.get("svc-3", 0) == 0, light_counts
    assert set(light_counts) == {"svc-0", "svc-1", "svc-2"}

    # Saturated: 7 slow requests always in flight against 3 primaries × max_conns 2 = 6 slots: the 7th spills over
    # to the backup (8 slots in all, so nothing is refused).
    samples = run(closed_loop("127.0.0.1", gw.port, 7, 70, RequestSpec(path="/busy?__sleep_ms=100")))
    failed = [s for s in samples if s.status != 200]
    assert not failed, f"{len(failed)} of {len(samples)} failed: {[(s.status, s.error) for s in failed[:5]]}"
    busy = counts(s.replica for s in samples)
    assert busy.get("svc-3", 0) >= 5, busy
    assert busy["svc-3"] < min(busy[f"svc-{i}"] for i in range(3)), busy


def test_backup_serves_when_every_primary_is_dead(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(_spec(), process_per_replica=True)
    for replica in ("svc-0", "svc-1", "svc-2"):
        gw.backend_of(replica).kill()  # SIGKILL by PID
    with gw.client() as c:
        responses = [c.request("GET", f"/dead/{i}") for i in range(40)]
    assert [(r.status, r.replica) for r in responses] == [(200, "svc-3")] * 40
