"""The gRPC test rig (testbed/grpc_backend.py, grpc_client.py) and a grpc service proxy rendered from a plan, on
Debian's nginx: real gRPC calls (grpcio) through `grpc_pass`, per-caller servers, and the proxy's own gRPC statuses.

Expected values come from the spec (the limits written in it, nginx's token bucket semantics: `burst + 1` calls at
once, then one per 1/rate) and from the backend's configured service time, never from the renderer's output.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from typing import Any

import grpc
import pytest

from testbed.backend import ReplicaConfig
from testbed.grpc_backend import CALL, GrpcBackendProcess
from testbed.grpc_client import CHANNEL_OPTIONS, call, fixed_rate
from testbed.service_proxy import ServiceProxy
from testbed.specs import make_spec

pytestmark = pytest.mark.dataplane

LIMITED = {"limit_rps": 1 / 60, "burst": 2}  # 1 call a minute after a burst of 2: exactly 3 pass within a test


def _spec(**frontend_call: Any) -> Any:
    """frontend and search call checkout (gRPC, 2 replicas); frontend's call may carry its own limits."""
    return make_spec(
        {"frontend": {"calls": [{"workload": "checkout", "ratio": 1, **frontend_call}]},
         "search": {"calls": [{"workload": "checkout", "ratio": 1}]},
         "checkout": {"protocol": "grpc", "port": 5050, "replicas": 2, "response_time_ms": 5, "max_concurrency": 16}},
        [{"name": "web", "match": {"path": "/"}, "to": {"frontend": 1}}, {"name": "find", "match": {"path": "/find"}, "to": {"search": 1}}],
    )


@pytest.fixture
def checkout() -> Any:
    with GrpcBackendProcess([ReplicaConfig("checkout-0"), ReplicaConfig("checkout-1")]) as backend:
        yield backend


def _calls(target: str, n: int) -> list[tuple[str, str, str | None]]:
    """n calls one after another on one channel: (status name, message, replica)."""
    out: list[tuple[str, str, str | None]] = []
    with grpc.insecure_channel(target, options=list(CHANNEL_OPTIONS)) as channel:
        stub = channel.unary_unary(CALL, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        for _ in range(n):
            try:
                out.append(("OK", "", stub(b"x", timeout=5).decode()))
            except grpc.RpcError as error:
                out.append((error.code().name, error.details() or "", None))
    return out


def _log(proxy: ServiceProxy) -> list[dict[str, Any]]:
    assert proxy.nginx is not None
    os.kill(proxy.nginx.pid, signal.SIGUSR1)  # reopen the log: nginx writes its buffer
    deadline = time.monotonic() + 3
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        if os.path.exists(proxy.access_log_path()):
            with open(proxy.access_log_path()) as f:
                lines = [json.loads(line) for line in f if line.strip()]
            if lines:
                break
        time.sleep(0.05)
    return lines


def test_backend_serves_each_replica_with_its_latency_and_queue() -> None:
    """The rig alone: a call answers the replica's name; 4 calls at once on a 1-slot, 100 ms replica take 4 × 100 ms
    in FIFO order (an M/M/c server with c = 1), and the counters say so."""
    slow = ReplicaConfig("slow", latency_ms=100, concurrency=1)
    with GrpcBackendProcess([ReplicaConfig("fast"), slow]) as backend:
        first = call(backend.addresses["fast"])
        assert (first.code, first.replica) == ("OK", "fast")
        backend.reset()
        calls = asyncio.run(fixed_rate(backend.addresses["slow"], rate=1000, duration=0.004, poisson=False, warmup=0))
        assert [c.code for c in calls] == ["OK"] * 4
        latencies = sorted(c.latency for c in calls)
        for i, latency in enumerate(latencies, start=1):  # the i-th served waits for i-1 before it
            assert 0.1 * i - 0.005 <= latency < 0.1 * i + 0.25, latencies
        stats = backend.stats()
        assert stats["slow"]["requests"] == 4 and stats["slow"]["max_inflight"] == 4
        assert stats["slow"]["busy_s"] == pytest.approx(0.4)
        assert stats["fast"]["requests"] == 0


def test_calls_through_the_rendered_grpc_proxy(checkout: GrpcBackendProcess) -> None:
    """A real gRPC call through the plan's proxy (grpc_pass over h2c) reaches a replica, and both replicas get calls;
    the access log names the caller of the server the call arrived on and the callee."""
    spec = _spec()
    with ServiceProxy(spec, "checkout", {"checkout": [checkout.addresses["checkout-0"], checkout.addresses["checkout-1"]]}) as proxy:
        assert "grpc_pass grpc://" in proxy.conf and " http2;" in proxy.conf
        assert set(proxy.callers) == {"frontend", "search"}
        answers = _calls(proxy.address("frontend"), 10)
        assert {code for code, _, _ in answers} == {"OK"}
        assert {replica for _, _, replica in answers} == {"checkout-0", "checkout-1"}
        assert call(proxy.address("search")).ok
        lines = _log(proxy)
        assert [line["caller"] for line in lines].count("frontend") == 10
        assert [line["caller"] for line in lines].count("search") == 1
        assert {line["callee"] for line in lines} == {"checkout"}
        assert {line["status"] for line in lines} == {"200"}
    stats = checkout.stats()
    assert stats["checkout-0"]["requests"] + stats["checkout-1"]["requests"] == 11


def test_over_its_limit_a_caller_gets_resource_exhausted_and_the_other_caller_does_not(checkout: GrpcBackendProcess) -> None:
    """frontend's call is limited to 1 call a minute with a burst of 2: of 6 quick calls 3 pass and 3 get the proxy's
    own RESOURCE_EXHAUSTED (a gRPC status, not an HTTP 429 the client would read as UNAVAILABLE); search, with its own
    server and limits, is not affected; the refused calls never reach a replica."""
    spec = _spec(**LIMITED)
    with ServiceProxy(spec, "checkout", {"checkout": [checkout.addresses["checkout-0"], checkout.addresses["checkout-1"]]}) as proxy:
        checkout.reset()
        answers = _calls(proxy.address("frontend"), 6)
        assert [code for code, _, _ in answers] == ["OK"] * 3 + ["RESOURCE_EXHAUSTED"] * 3, answers
        assert {message for code, message, _ in answers if code != "OK"} == {"too many calls"}
        assert [code for code, _, _ in _calls(proxy.address("search"), 6)] == ["OK"] * 6
        stats = checkout.stats()
        assert stats["checkout-0"]["requests"] + stats["checkout-1"]["requests"] == 3 + 6


def test_no_replica_left_is_unavailable_from_the_proxy(checkout: GrpcBackendProcess) -> None:
    """With every replica gone (nothing listens on their ports), the call ends with the proxy's UNAVAILABLE (which
    gRPC clients may retry), not an HTTP 502."""
    addresses = {"checkout": [checkout.addresses["checkout-0"], checkout.addresses["checkout-1"]]}
    checkout.stop()
    with ServiceProxy(_spec(), "checkout", addresses) as proxy:
        result = call(proxy.address("frontend"))
        assert (result.code, result.message) == ("UNAVAILABLE", "no replica available")
