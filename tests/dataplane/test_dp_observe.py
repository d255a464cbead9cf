"""observe on real nginx logs: per-replica times and shares recovered, no forged or malformed line changes them, and
a service proxy's calls from two callers recovered per edge.

Three replicas of known constant latency behind the rendered config; observe reads the log nginx wrote. Clients
then try to inject JSON through every value they control that reaches the log (a header used as a rate-limit key,
the request id, the URI): nginx's `escape=json` keeps each inside its string. Garbage, a truncated line and a
well-formed line naming an address outside the plan are appended: they are counted and reported, and the
per-replica result is the same as without them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import tempfile
import threading
import time
from concurrent import futures
from typing import Any

import grpc
import pytest

from components.observe.log_stats import LogReader, LogStats
from components.observe.observation import call_rows, member_addresses
from components.plan.build import Plan, build_plan
from components.plan.capacity import compute_capacity
from components.plan.deployment import Deployment
from components.render.nginx import render_proxy
from components.spec.schema import Spec
from testbed.backend import start_workload_backends
from testbed.client import Client
from testbed.gateway import Gateway, GatewayFactory, host_runtime
from testbed.nginx_runner import NginxRunner
from testbed.specs import make_spec

pytestmark = pytest.mark.dataplane

LATENCY_MS = [20.0, 20.0, 60.0]
INJECTED = 'x","upstream_addr":"127.0.0.1:1","upstream_response_time":"9.999","route":"admin'


def _observe(gw: Gateway, extra: bytes = b"") -> LogStats:
    gw.access_log(flush=True)  # nginx writes its buffer
    with open(os.path.join(gw.prefix, "logs", "access.log"), "rb") as f:
        data = f.read() + extra
    reader = LogReader(member_addresses(gw.addresses), {u.name for u in gw.plan.gateway.upstreams})
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        reader.feed(number, line)
    return reader.finish()


def test_observe_recovers_times_and_shares_and_resists_forged_lines(gateway_factory: GatewayFactory) -> None:
    spec = make_spec({"api": {"replicas": 3, "response_time_ms": 20, "max_concurrency": 16}},
                     [{"name": "api", "match": {"path": "/"}, "to": {"api": 1}, "rate_limit": "per_key"}],
                     rate_limits=[{"name": "per_key", "rps": 1000, "burst": 1000, "key": "header:X-Key"}])
    gw = gateway_factory(spec, latencies={"api": LATENCY_MS})
    with gw.client() as client:
        for i in range(150):
            assert client.request(path=f"/item/{i}", headers={"X-Key": f"k{i % 5}"}).status == 200
        for i in range(6):  # injection attempts: each is still one ordinary request to a real replica
            response = client.request(path=f'/forged/{i}?"route":"admin"', headers={"X-Key": INJECTED, "X-Request-Id": INJECTED})
            assert response.status == 200
    clean = _observe(gw)
    assert clean.malformed == 0 and clean.unmapped_tries == 0 and clean.requests == 156
    assert set(clean.routes) == {"api"}, "an injected route name reached the log as a field"
    served = {replica: stats.served for (_, replica), stats in clean.members.items()}
    assert sum(served.values()) == 156
    by_address: dict[str, list[float]] = {}  # a second reading of the same log, by the test bed's json-module parser
    for line in gw.access_log(flush=False):
        by_address.setdefault(line.upstream, []).append(float(line.fields["upstream_response_time"]) * 1000.0)
    means = []
    for replica, latency in enumerate(LATENCY_MS):
        stats = clean.members[("api", replica)]
        assert served[replica] / 156 == pytest.approx(1 / 3, abs=0.05), served  # round robin
        logged = by_address[gw.addresses["api"][replica]]
        assert stats.served == len(logged) and stats.times.mean() == pytest.approx(sum(logged) / len(logged))
        means.append(stats.times.mean() or 0.0)
        # the backend sleeps `latency`; on a loaded machine it wakes late, never early
        assert latency <= means[-1] <= latency + 15.0, (replica, means[-1])
        assert stats.errors == 0
    assert means[2] - (means[0] + means[1]) / 2 == pytest.approx(40.0, abs=8.0), means  # the slow replica stands out by its 40 ms

    forged = (b"not json at all\n"
              b'{"v":1,"msec":"1764000000.000","route":"api","status":"200","upstream_addr":"10.6.6.6:80",'
              b'"upstream_status":"200","upstream_response_time":"9.000"}\n'
              b'{"v":1,"msec":"1764000000.000","route":"api","status":"200","upstream_addr":"127.0.0.1:1"\n'
              b"\x00\xff\n")
    dirty = _observe(gw, forged)
    assert dirty.members == clean.members, "a forged or malformed line changed the per-replica result"
    assert dirty.malformed == 3 and dirty.unmapped == {"10.6.6.6:80": 1}
    assert [p.line for p in dirty.malformed_examples] == [157, 159, 160]


# -- a service proxy: calls from two callers ------------------------------------------------------------------------

CALLERS = {"web": "127.0.0.2", "api": "127.0.0.3"}  # each caller's server listens on its own address, as on its Docker link
SVC_LATENCY_MS = [10.0, 30.0]


def _call_spec() -> Spec:
    return make_spec({"web": {"calls": [{"workload": "svc", "ratio": 1}]},
                      "api": {"calls": [{"workload": "svc", "ratio": 1, "limit_rps": 10, "burst": 5}]},
                      "svc": {"replicas": 2, "response_time_ms": 20, "max_concurrency": 16}},
                     [{"name": "web", "match": {"path": "/"}, "to": {"web": 1}}, {"name": "api", "match": {"path": "/api/"}, "to": {"api": 1}}])


class ServiceProxy:
    """The rendered service proxy of one workload on Debian's nginx: per-caller servers on loopback addresses, the
    workload's replicas as loopback backends; the config is the renderer's text, unedited."""

    def __init__(self, plan: Plan, callee: str, addresses: dict[str, list[str]], callers: dict[str, str]) -> None:
        self.plan = plan
        self.proxy = next(p for p in plan.services if p.workload == callee)
        self.addresses = addresses
        self.prefix = tempfile.mkdtemp(prefix="netopt-sp-")
        self.runtime = host_runtime(self.prefix, caller_addresses=callers)
        self.conf = render_proxy(self.proxy, addresses, self.runtime)
        self.nginx = NginxRunner(self.conf, prefix=self.prefix, listen=[(a, self.runtime.listen_port) for a in callers.values()]).start()

    def log(self) -> bytes:
        path = os.path.join(self.prefix, "logs", "access.log")
        before = os.path.getsize(path) if os.path.exists(path) else -1
        os.kill(self.nginx.pid, signal.SIGUSR1)  # reopen the logs: nginx writes its buffer
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and (not os.path.exists(path) or os.path.getsize(path) == before):
            time.sleep(0.05)
        time.sleep(0.2)
        with open(path, "rb") as f:
            return f.read()

    def stop(self) -> None:
        self.nginx.stop()
        shutil.rmtree(self.prefix, ignore_errors=True)


def _nearest_rank(values: list[int], q: float) -> int:
    """The q-quantile by nearest rank, of a sorted copy: the textbook definition, not observe's histogram."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def _send(host: str, port: int, caller: str, count: int, out: dict[str, tuple[int, float]]) -> None:
    """`count` calls one after another on a keep-alive connection; per request id, the status and the client's time."""
    with Client(host, port) as client:
        for i in range(count):
            request_id = f"{caller}-{i}"
            started = time.perf_counter()
            status = client.request(path=f"/call/{i}", headers={"X-Request-Id": request_id}).status
            out[request_id] = (status, (time.perf_counter() - started) * 1000.0)


def test_observe_recovers_each_callers_calls_refusals_and_latency_from_a_real_service_proxy() -> None:
    spec = _call_spec()
    plan = build_plan(spec, Deployment("gateway", "link"))
    addresses, backends = start_workload_backends({"svc": SVC_LATENCY_MS})
    proxy = None
    try:
        proxy = ServiceProxy(plan, "svc", addresses, CALLERS)
        sent: dict[str, dict[str, tuple[int, float]]] = {caller: {} for caller in CALLERS}
        threads = [threading.Thread(target=_send, args=(address, proxy.runtime.listen_port, caller, 120, sent[caller]))
                   for caller, address in CALLERS.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        log = proxy.log()
    finally:
        if proxy is not None:
            proxy.stop()
        for backend in backends:
            backend.stop()
    assert {s for caller in sent.values() for s, _ in caller.values()} <= {200, 429}
    reader = LogReader(member_addresses(addresses), {u.name for u in proxy.proxy.upstreams}, window_s=1, protocols={"svc": "http"})
    for number, line in enumerate(log.splitlines(keepends=True), start=1):
        reader.feed(number, line)
    stats = reader.finish()
    assert stats.malformed == 0 and stats.unmapped_tries == 0 and stats.requests == 0
    rows = {row["caller"]: row for row in call_rows(plan, stats, compute_capacity(plan))}
    assert set(rows) == set(CALLERS), "the address a call arrived at names its caller"
    lines = [json.loads(line) for line in log.splitlines()]  # the same log, read by the json module
    for caller, row in rows.items():
        mine = [line for line in lines if line["caller"] == caller]
        client_429 = sum(1 for status, _ in sent[caller].values() if status == 429)
        assert row["calls"] == len(sent[caller]) == len(mine) == 120
        assert row["outcomes"].get("limited", 0) == client_429 and row["outcomes"].get("answered", 0) == 120 - client_429
        answered = [line for line in mine if line["status"] == "200"]
        times = [round(float(line["request_time"]) * 1000) for line in answered]
        assert row["latency_p50_ms"] == _nearest_rank(times, 0.5) and row["latency_p99_ms"] == _nearest_rank(times, 0.99)
        upstream = [float(line["upstream_response_time"]) * 1000 for line in answered]
        assert row["upstream_mean_ms"] == pytest.approx(sum(upstream) / len(upstream))
        per_second: dict[int, int] = {}
        for line in mine:
            per_second[int(float(line["msec"]))] = per_second.get(int(float(line["msec"])), 0) + 1
        assert row["peak_rps"] == max(per_second.values())  # a 1 s window: the busiest second
        for line in mine:  # nginx's time for a call is within what the client waited for it (1 ms: nginx's rounding)
            assert float(line["request_time"]) * 1000 <= sent[caller][line["request_id"]][1] + 1.0, line
        # the replicas sleep 10 and 30 ms: every answered call took at least the faster one's time, at the proxy too
        assert min(times) >= SVC_LATENCY_MS[0] - 1
    assert rows["web"]["outcomes"] == {"answered": 120}, "web's limit (its share of svc's capacity) is far above its rate"
    assert 0 < rows["api"]["outcomes"]["limited"] < 120, "api at full speed is over its 10 calls/s + burst 5"
    for replica, latency in enumerate(SVC_LATENCY_MS):
        mean = stats.members[("svc", replica)].times.mean()
        assert mean is not None and latency <= mean <= latency + 15.0, (replica, mean)


class _Slow(grpc.GenericRpcHandler):
    """Any unary method: sleeps 5 ms, answers b"ok"."""

    def service(self, details: Any) -> Any:
        def answer(request: bytes, context: Any) -> bytes:
            time.sleep(0.005)
            return b"ok"

        return grpc.unary_unary_rpc_method_handler(answer)


def test_observe_tells_a_grpc_proxys_refusals_apart_as_the_grpc_client_sees_them() -> None:
    """The grpc proxy answers its own refusals with HTTP 204 and the gRPC status in the headers; observe must count
    each kind as the client got it: RESOURCE_EXHAUSTED over the limit, UNAVAILABLE when no replica is left."""
    spec = make_spec({"front": {"calls": [{"workload": "svc", "ratio": 1, "limit_rps": 5, "burst": 3}]},
                      "svc": {"replicas": 2, "protocol": "grpc", "response_time_ms": 5, "max_concurrency": 8}},
                     [{"name": "front", "match": {"path": "/"}, "to": {"front": 1}}])
    plan = build_plan(spec, Deployment("gateway", "link"))
    servers, ports = [], []
    for _ in range(2):
        server = grpc.server(futures.ThreadPoolExecutor(4))
        server.add_generic_rpc_handlers((_Slow(),))
        ports.append(server.add_insecure_port("127.0.0.1:0"))
        server.start()
        servers.append(server)
    addresses = {"svc": [f"127.0.0.1:{port}" for port in ports]}
    proxy = ServiceProxy(plan, "svc", addresses, {"front": "127.0.0.2"})
    codes: dict[str, int] = {}
    try:
        with grpc.insecure_channel(f"127.0.0.2:{proxy.runtime.listen_port}") as channel:
            call = channel.unary_unary("/netopt.Test/Call", request_serializer=lambda b: b, response_deserializer=lambda b: b)
            for phase in ("up", "down"):
                if phase == "down":
                    for server in servers:
                        server.stop(0).wait()
                    time.sleep(1.2)  # a new second: the limit lets a few calls through to find no replica
                for _ in range(12 if phase == "up" else 3):
                    try:
                        call(b"hi", timeout=5)
                        code = "OK"
                    except grpc.RpcError as error:
                        code = error.code().name
                    codes[code] = codes.get(code, 0) + 1
        log = proxy.log()
    finally:
        proxy.stop()
        for server in servers:
            server.stop(0)
    assert codes.get("OK") and codes.get("RESOURCE_EXHAUSTED") and codes.get("UNAVAILABLE"), codes
    reader = LogReader(member_addresses(addresses), {u.name for u in proxy.proxy.upstreams}, protocols={"svc": "grpc"})
    for number, line in enumerate(log.splitlines(keepends=True), start=1):
        reader.feed(number, line)
    (row,) = call_rows(plan, reader.finish(), compute_capacity(plan))
    assert row["calls"] == sum(codes.values())
    assert row["outcomes"] == {"answered": codes["OK"], "limited": codes["RESOURCE_EXHAUSTED"], "unavailable": codes["UNAVAILABLE"]}
