"""A plan's service proxy on loopback: the product's rendered config for one called workload, on Debian's nginx.

>>> addresses = {"echo": ["127.0.0.1:41001", "127.0.0.1:41002"]}   # the callee's replicas (any backend)
>>> with ServiceProxy(spec, "echo", addresses) as proxy:            # build_plan -> render_proxy -> nginx
...     proxy.address("frontend")                                   # "127.0.0.21:39211": frontend's server

The config is `render_proxy` of the plan's `Proxy` for `callee`, unedited; only the process-level runtime differs
from a container's (`NginxRuntime`): scratch paths, a free port, and each caller's server bound to a loopback
address of its own (127.0.0.21, .22, ... in caller order) instead of the proxy's address on that caller's network.
As there, the address a call arrives on picks the caller's server (its limits, its log name); a caller should also
send from that address, as it would from its own network. ``deployment`` is the plan input (default: the stack's
target's, `deployment_of`): a `Deployment(..., callers="none")` renders one server for all callers instead.
"""
from __future__ import annotations

import shutil
import socket
import tempfile
from typing import Any

from testbed.gateway import free_port, host_runtime
from testbed.nginx_runner import NginxRunner

__all__ = ["FIRST_CALLER_ADDRESS", "ServiceProxy"]

FIRST_CALLER_ADDRESS = 21  # 127.0.0.21 upwards: clear of the 127.0.0.2-.9 the data-plane tests use as client sources


class ServiceProxy:
    def __init__(self, spec: Any, callee: str, addresses: dict[str, list[str]], *, deployment: Any = None,
                 access_log: bool = True):
        from components.plan.build import build_plan
        from components.plan.deployment import deployment_of

        self.plan = build_plan(spec, deployment or deployment_of(spec))
        self.proxy = next(p for p in self.plan.services if p.workload == callee)
        self.callers = [server.caller for server in self.proxy.servers if server.caller is not None]
        self.caller_addresses = {caller: f"127.0.0.{FIRST_CALLER_ADDRESS + i}" for i, caller in enumerate(self.callers)}
        self.addresses = addresses
        self.access_log_on = access_log
        self.prefix = tempfile.mkdtemp(prefix="netopt-svc-proxy-")
        self.port = 0
        self.conf = ""
        self.nginx: NginxRunner | None = None

    def start(self) -> ServiceProxy:
        from components.render.nginx import render_proxy

        # One worker, as the plan says (`Proxy.workers`), not host_runtime's test default of 2.
        runtime = host_runtime(self.prefix, access_log=self.access_log_on, worker_processes=None,
                               caller_addresses=self.caller_addresses, listen_port=self._free_port())
        self.port = runtime.listen_port
        self.conf = render_proxy(self.proxy, self.addresses, runtime)
        listen = [(address, self.port) for address in self.caller_addresses.values()] or [("127.0.0.1", self.port)]
        try:
            self.nginx = NginxRunner(self.conf, prefix=self.prefix, listen=listen).start()
        except BaseException:
            self.stop()
            raise
        return self

    def _free_port(self) -> int:
        """A port free on 127.0.0.1 and on every caller address (each caller's server binds it there)."""
        while True:
            port = free_port()
            if all(free_port_on(address, port) for address in self.caller_addresses.values()):
                return port

    def address(self, caller: str | None = None) -> str:
        """`host:port` where `caller`'s calls go (its own server), or the one server of a proxy serving all callers."""
        host = self.caller_addresses[caller] if caller is not None and caller in self.caller_addresses else "127.0.0.1"
        return f"{host}:{self.port}"

    def source(self, caller: str) -> str | None:
        """The address `caller` sends from: its server's (None where one server serves all callers)."""
        return self.caller_addresses.get(caller)

    @property
    def pid(self) -> int:
        assert self.nginx is not None
        return self.nginx.pid

    def access_log_path(self) -> str:
        return f"{self.prefix}/logs/access.log"

    def error_log(self) -> str:
        return self.nginx.error_log() if self.nginx is not None else ""

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
            self.nginx = None
        shutil.rmtree(self.prefix, ignore_errors=True)

    def __enter__(self) -> ServiceProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port_on(host: str, port: int) -> bool:
    """Whether `port` can be bound on `host` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
