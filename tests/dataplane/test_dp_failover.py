"""Failover: a replica dies under load; GETs never fail, POSTs are never executed twice."""
from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from components.spec.schema import Spec
from testbed.client import RequestSpec, fixed_rate, run
from testbed.gateway import Gateway, GatewayFactory
from testbed.specs import make_spec

pytestmark = pytest.mark.dataplane


def _spec(**route_extra: Any) -> Spec:
    return make_spec({"api": 3}, [{"name": "api", "match": {"path": "/"}, "to": {"api": 1}, **route_extra}])


def _kill_later(gw: Gateway, replica: str, after: float) -> threading.Thread:
    def kill() -> None:
        time.sleep(after)
        gw.backend_of(replica).kill()  # SIGKILL by PID

    t = threading.Thread(target=kill)
    t.start()
    return t


def test_kill_replica_during_get_load_fails_nothing(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(_spec(), process_per_replica=True)
    killer = _kill_later(gw, "api-1", 1.0)
    samples = run(fixed_rate("127.0.0.1", gw.port, 400, 3.0, RequestSpec(path="/get"), max_conns=64))
    killer.join()
    failed = [s for s in samples if s.status != 200]
    assert not failed, f"{len(failed)} of {len(samples)} GETs failed: {[(s.status, s.error) for s in failed[:5]]}"
    late = [s for s in samples if s.due - samples[0].due > 1.5]
    assert late and not any(s.replica == "api-1" for s in late), "the dead replica still answered"


def test_kill_replica_during_get_load_wrk(gateway_factory: GatewayFactory, need_wrk: None) -> None:
    from bench.wrk import run_wrk

    gw = gateway_factory(_spec(), process_per_replica=True)
    killer = _kill_later(gw, "api-2", 1.0)
    r = run_wrk(gw.url("/wrk"), threads=1, connections=16, duration=3)
    killer.join()
    assert r.requests > 1000
    assert r.non2xx == 0 and r.errors == 0, r.raw


def test_post_executed_then_replica_dies_is_not_retried(gateway_factory: GatewayFactory) -> None:
    """api-1 executes the POST and resets the connection: nginx must answer 502, not resend it."""
    gw = gateway_factory(_spec())
    statuses = []
    with gw.client() as c:
        for i in range(30):
            statuses.append(c.request("POST", f"/order/{i}?__abort=api-1", body=b"{}").status)
            c.close()
    ex: dict[str, int] = {}
    for st in gw.backend_stats().values():
        for key, n in st["executed"].items():
            ex[key] = ex.get(key, 0) + n
    assert all(n == 1 for n in ex.values()), f"executed twice: {[k for k, n in ex.items() if n > 1]}"
    assert len(ex) == 30
    died = gw.backend_stats()["api-1"]["executed"]
    assert statuses.count(502) == len(died) > 0, (statuses, died)
    # The same failure on a GET is retried on another replica.
    with gw.client() as c:
        gets = [c.request("GET", f"/item/{i}?__abort=api-1").status for i in range(30)]
    assert gets == [200] * 30


def test_retry_non_idempotent_opt_in_retries_post(gateway_factory: GatewayFactory) -> None:
    """A route that opts in (retry_non_idempotent) does resend a POST -- executed twice, as declared."""
    gw = gateway_factory(_spec(retry_non_idempotent=True))
    with gw.client() as c:
        statuses = [c.request("POST", f"/order/{i}?__abort=api-1", body=b"{}").status for i in range(30)]
    assert statuses == [200] * 30
    died = gw.backend_stats()["api-1"]["executed"]
    assert died and all(n == 1 for n in died.values())


def test_kill_replica_during_post_load_never_executes_twice(gateway_factory: GatewayFactory) -> None:
    """SIGKILL mid-load; every POST has its own path and the backends journal each
    execution before answering, so executions on the dead replica are counted too."""
    gw = gateway_factory(_spec(), process_per_replica=True, journal=True)
    killer = _kill_later(gw, "api-0", 1.0)
    samples = run(fixed_rate("127.0.0.1", gw.port, 300, 3.0,
                             lambda i: RequestSpec(method="POST", path=f"/pay/{i}?__sleep_ms=20", body=b"{}"),
                             max_conns=64))
    killer.join()
    executed: dict[str, int] = {}
    for _replica, _method, path in gw.journal():
        executed[path] = executed.get(path, 0) + 1
    twice = [p for p, n in executed.items() if n > 1]
    assert not twice, f"POSTs executed twice: {twice[:10]}"
    failed = [s for s in samples if s.status != 200]
    # Only POSTs in flight on the killed replica may fail (502), never be resent.
    assert len(failed) <= 64, f"{len(failed)} POSTs failed"
    assert all(s.status == 502 for s in failed), {s.status for s in failed}
    ok_paths = {f"/pay/{s.index}" for s in samples if s.status == 200}
    assert ok_paths <= set(executed), "a 200 answer for a POST that no replica executed"
