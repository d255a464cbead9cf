"""A rendered http service proxy on real nginx: one server per caller, each caller held to its own limit.

The proxy's per-caller servers listen on the addresses the target gives it on each caller's network; here two
loopback addresses stand for web's and batch's networks. What a caller is held to is decided by where it connects,
never by anything it sends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from components.plan.build import build_plan
from components.plan.deployment import Deployment
from components.render.nginx import render_proxy
from components.spec.validation import parse_spec
from testbed.backend import start_workload_backends
from testbed.client import Client
from testbed.gateway import free_port, host_runtime, parse_access_log
from testbed.nginx_runner import NginxRunner
from tests.conftest import MINIMAL

pytestmark = pytest.mark.dataplane

CALLERS = {"web": "127.0.0.2", "batch": "127.0.0.3"}


def _spec(web_limit: float) -> Any:
    raw: dict[str, Any] = {**MINIMAL, "workloads": [dict(w) for w in MINIMAL["workloads"]]}
    raw["workloads"][1]["calls"] = [{"workload": "api", "ratio": 0.3, "limit_rps": web_limit, "burst": 0}]
    raw["workloads"].append({"name": "batch", "image": "b:1", "port": 7000, "response_time_ms": 10, "max_concurrency": 4,
                             "calls": [{"workload": "api", "ratio": 0.5}]})
    return parse_spec(raw)


@pytest.fixture
def proxy() -> Iterator[tuple[dict[str, int], Any]]:
    """The api's service proxy for callers web (limited to 1 call/s, no burst) and batch (its default share)."""
    prefix = tempfile.mkdtemp(prefix="netopt-sp-")
    addresses, backends = start_workload_backends({"api": 2})
    port = free_port()
    runtime = host_runtime(prefix, listen_port=port, caller_addresses=CALLERS, worker_processes="1")
    (service,) = build_plan(_spec(1), Deployment("gateway", "link")).services
    conf = render_proxy(service, addresses, runtime)
    nginx = NginxRunner(conf, prefix=prefix, listen=[(address, port) for address in CALLERS.values()]).start()
    try:
        yield {caller: port for caller in CALLERS}, nginx
    finally:
        nginx.stop()
        for backend in backends:
            backend.stop()
        shutil.rmtree(prefix, ignore_errors=True)


def _access_log(nginx: Any) -> list[Any]:
    import signal
    import time

    os.kill(nginx.pid, signal.SIGUSR1)  # reopen logs: flushes the buffered lines
    time.sleep(0.3)
    with open(os.path.join(nginx.prefix, "logs", "access.log")) as f:
        return parse_access_log(f.read())


def test_each_caller_is_held_to_its_own_limit_by_the_address_it_reaches(proxy: tuple[dict[str, int], Any]) -> None:
    ports, nginx = proxy
    statuses: dict[str, list[int]] = {}
    for caller, address in CALLERS.items():
        client = Client(address, ports[caller])
        statuses[caller] = [client.request("GET", f"/orders/{i}").status for i in range(20)]
    # web: 1 call/s without burst, 20 calls at once: the first passes, the rest are refused; batch is far below its share.
    assert statuses["web"].count(200) in (1, 2) and statuses["web"].count(429) >= 18, statuses["web"]
    assert statuses["batch"] == [200] * 20
    lines = _access_log(nginx)
    assert {(ln.fields["caller"], ln.fields["callee"], ln.fields["proxy"]) for ln in lines} == {
        ("web", "api", "api-proxy"), ("batch", "api", "api-proxy")}
    assert {ln.route for ln in lines if ln.status == 429} == {"web.api"}
    served = {ln.upstream for ln in lines if ln.fields["caller"] == "batch"}
    assert len(served) == 2, "least_conn spreads batch's calls over both api replicas"


def test_a_refused_call_says_when_to_retry(proxy: tuple[dict[str, int], Any]) -> None:
    ports, _ = proxy
    client = Client(CALLERS["web"], ports["web"])
    responses = [client.request("GET", "/x") for _ in range(3)]
    refused = [r for r in responses if r.status == 429]
    assert refused and all(r.headers.get("retry-after") == "1" for r in refused)
