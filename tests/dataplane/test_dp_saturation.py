"""When no replica is left to try, the gateway answers 503 with Retry-After (an overload clients back off from),
not 502; a replica that fails the request is still a 502."""
from __future__ import annotations

import threading
import time

import pytest

from components.spec.schema import Spec
from testbed.client import RequestSpec, closed_loop, run
from testbed.gateway import GatewayFactory
from testbed.specs import make_spec

pytestmark = pytest.mark.dataplane


def _spec(max_concurrency: int) -> Spec:
    return make_spec({"api": {"replicas": 1, "max_concurrency": max_concurrency}},
                     [{"name": "api", "match": {"path": "/"}, "to": {"api": 1}}])


def test_every_replica_at_max_conns_is_a_503(gateway_factory: GatewayFactory) -> None:
    """6 slow requests at once against one replica with max_concurrency 2: two are served at a time, the rest are
    refused at once with 503 (nginx has no upstream queue), and the replica never holds more than 2."""
    gw = gateway_factory(_spec(max_concurrency=2))
    samples = run(closed_loop("127.0.0.1", gw.port, 6, 30, RequestSpec(path="/slow?__sleep_ms=200")))
    statuses = sorted({s.status for s in samples})
    assert statuses == [200, 503], statuses
    assert gw.backend_stats()["api-0"]["max_inflight"] <= 2
    assert {line.status for line in gw.access_log() if line.uri.startswith("/slow")} == {200, 503}


def test_a_503_carries_retry_after_and_a_failed_replica_stays_502(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(_spec(max_concurrency=1))
    holder = threading.Thread(target=lambda: gw.client(timeout=5).request(path="/hold?__sleep_ms=800"))
    holder.start()
    time.sleep(0.2)  # the one slot is taken
    with gw.client() as c:
        r = c.request(path="/extra")
    holder.join()
    assert r.status == 503 and r.headers.get("retry-after") == "1", (r.status, r.headers)
    assert b"no replica available" in r.body

    with gw.client() as c:
        aborted = c.request("POST", "/once?__abort=1", body=b"x")  # the replica resets the connection mid-request
    assert aborted.status == 502, aborted.status
    assert b"bad gateway" in aborted.body
