"""Upstream keep-alive and graceful reload on the real nginx."""
from __future__ import annotations

import threading
import time

import pytest

from components.spec.schema import Spec
from testbed.client import RequestSpec, closed_loop, fixed_rate, run
from testbed.gateway import GatewayFactory, counts
from testbed.specs import make_spec

pytestmark = pytest.mark.dataplane


def _spec(canary_weight: int = 10, keepalive: int = 64) -> Spec:
    return make_spec(
        {"api": 2, "api-canary": 1},
        [{"name": "api", "match": {"path": "/"}, "to": {"api": 100 - canary_weight, "api-canary": canary_weight}}],
        gateway={"keepalive": {"connections": keepalive, "timeout_s": 30}},
    )


def test_upstream_keepalive_reuses_connections(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(_spec())
    samples = run(closed_loop("127.0.0.1", gw.port, 16, 3000, RequestSpec(path="/ka")))
    assert all(s.status == 200 for s in samples)
    st = gw.backend_stats()
    accepted = sum(s["accepted"] for s in st.values())
    requests = sum(s["requests"] for s in st.values())
    assert requests == 3000
    # 16 client connections, 2 workers: a few dozen upstream connections at most.
    assert accepted * 20 <= requests, f"{accepted} upstream connections for {requests} requests"


def test_graceful_reload_under_load_fails_nothing(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(_spec(canary_weight=10))
    reloaded_at: list[float] = []

    def reloads() -> None:
        time.sleep(1.0)
        gw.reload(_spec(canary_weight=50))           # new split
        reloaded_at.append(time.monotonic())
        time.sleep(1.0)
        gw.reload(_spec(canary_weight=50, keepalive=16))  # new pool size
        reloaded_at.append(time.monotonic())

    t = threading.Thread(target=reloads)
    t.start()
    samples = run(fixed_rate("127.0.0.1", gw.port, 500, 3.5, RequestSpec(path="/reload"), max_conns=64))
    t.join()
    failed = [s for s in samples if s.status != 200]
    assert not failed, f"{len(failed)} failed: {[(s.status, s.error) for s in failed[:5]]}"
    # Resent GETs (reused keep-alive connection closed by an old worker) are few.
    assert sum(s.retried for s in samples) <= 64 * 2
    # The new config is the one answering after the first reload (50/50 api vs canary).
    after = [s for s in samples if s.due > reloaded_at[0] + 0.3]
    share = counts(s.replica.rsplit("-", 1)[0] for s in after).get("api-canary", 0) / len(after)
    assert 0.4 <= share <= 0.6, f"canary share after reload {share:.2f}, declared 0.5"


def test_graceful_reload_under_wrk_load(gateway_factory: GatewayFactory, need_wrk: None) -> None:
    """The same with wrk, which never resends: no HTTP error at all, and the only
    socket errors are the keep-alive close race -- an old worker closing an idle
    client connection while wrk's next request is on the wire (nginx OSS closes
    idle keep-alive connections on graceful shutdown without a final
    ``Connection: close``). At most one per connection per reload."""
    from bench.wrk import run_wrk

    gw = gateway_factory(_spec())
    n_reloads, conns = 2, 16

    def reloads() -> None:
        for w in (30, 50)[:n_reloads]:
            time.sleep(1.0)
            gw.reload(_spec(canary_weight=w))

    t = threading.Thread(target=reloads)
    t.start()
    r = run_wrk(gw.url("/wrk"), threads=1, connections=conns, duration=4)
    t.join()
    assert r.non2xx == 0, r.raw
    assert r.errors_connect == r.errors_write == r.errors_timeout == 0, r.raw
    assert r.errors_read <= conns * n_reloads, r.raw
