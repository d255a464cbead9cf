"""The project's own gateway on loopback: backends + the rendered nginx.conf + nginx.

>>> with Gateway(spec) as gw:                       # Spec -> build_plan -> render_proxy -> nginx
...     gw.client().request("GET", "/api/x").replica  # "api-0"
...     gw.backend_stats()["api-0"]["requests"]
...     gw.access_log()                                # parsed lines of the project's log format

Backends are :mod:`testbed.backend` replicas named ``<workload>-<index>``; they
reach the renderer only through its ``addresses`` argument, and host-specific
paths/ports only through :class:`components.render.nginx.NginxRuntime` -- the config
under test is the renderer's text, unedited.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from testbed.backend import BackendProcess, start_workload_backends
from testbed.client import Client
from testbed.nginx_runner import NginxRunner

__all__ = ["Gateway", "GatewayFactory", "LogLine", "free_port", "host_runtime", "parse_access_log"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (bind :0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def host_runtime(prefix: str, *, listen_port: int | None = None, status_port: int | None = None,
                 access_log: bool = True, **overrides: Any) -> Any:
    """An :class:`NginxRuntime` that runs the generated config on this host,
    everything under ``prefix`` and listening on 127.0.0.1 only."""
    from components.render.runtime import NginxRuntime

    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    os.makedirs(os.path.join(prefix, "tmp"), exist_ok=True)
    kw: dict[str, Any] = dict(
        listen_address="127.0.0.1",
        listen_port=listen_port or free_port(),
        status_port=status_port or free_port(),
        pid_path=os.path.join(prefix, "logs", "nginx.pid"),
        temp_dir=os.path.join(prefix, "tmp"),
        error_log=os.path.join(prefix, "logs", "error.log") + " warn",
        access_log=os.path.join(prefix, "logs", "access.log") if access_log else "off",
        worker_processes="2",
    )
    kw.update(overrides)
    return NginxRuntime(**kw)


@dataclass
class LogLine:
    remote_addr: str
    method: str
    uri: str
    status: int
    route: str
    upstream: str
    request_id: str
    raw: str
    fields: dict[str, Any]


def parse_access_log(text: str) -> list[LogLine]:
    """The gateway's JSON access log (components/render/access_log.py), one object a line; other lines are skipped."""
    out = []
    for line in text.splitlines():
        try:
            f = json.loads(line)
        except ValueError:
            continue
        if isinstance(f, dict) and "route" in f:
            out.append(LogLine(f["client"], f["method"], f["uri"], int(f["status"]), f["route"],
                               f["upstream_addr"], f["request_id"], line, f))
    return out


class Gateway:
    """Backends for every workload of ``spec`` plus nginx on the rendered config.

    ``latencies``: ``{workload: [ms per replica] | [ReplicaConfig per replica]}``
    (default: the spec's replica count, no latency).
    ``process_per_replica``: one backend process per replica (needed to SIGKILL one).
    ``runtime``: overrides for :func:`host_runtime` (e.g. ``worker_processes="1"``).
    """

    def __init__(self, spec: Any, *, latencies: dict[str, list[Any]] | None = None,
                 process_per_replica: bool = False, access_log: bool = True,
                 runtime: dict[str, Any] | None = None, journal: bool = False):
        self.spec = spec
        self.latencies = latencies or {}
        self.process_per_replica = process_per_replica
        self.access_log_on = access_log
        self.runtime_overrides = dict(runtime or {})
        self.prefix = tempfile.mkdtemp(prefix="netopt-gw-")
        self.journal_dir = os.path.join(self.prefix, "journal") if journal else None
        self.backends: list[BackendProcess] = []
        self.addresses: dict[str, list[str]] = {}
        self.nginx: NginxRunner | None = None
        self.conf = ""
        self.runtime: Any = None
        self.plan: Any = None

    # -- lifecycle --------------------------------------------------------------
    def start(self) -> Gateway:
        reps: dict[str, Any] = {}
        service = is_service_balanced(self.spec)
        for w in self.spec.workloads:
            # Service balancing (kubernetes target): nginx sees one address per
            # workload, the Service; one backend stands for it ("<workload>-0").
            reps[w.name] = self.latencies.get(w.name, 1 if service else w.replicas)
        try:
            if self.journal_dir:
                os.makedirs(self.journal_dir, exist_ok=True)
            self.addresses, self.backends = start_workload_backends(
                reps, process_per_replica=self.process_per_replica, journal_dir=self.journal_dir)
            self.runtime = host_runtime(self.prefix, access_log=self.access_log_on,
                                        **self.runtime_overrides)
            self.conf = self.render(self.spec)
            self.nginx = NginxRunner(self.conf, prefix=self.prefix,
                                     listen=[("127.0.0.1", self.runtime.listen_port)]).start()
        except BaseException:
            self.stop()
            raise
        return self

    def render(self, spec: Any, runtime: Any = None) -> str:
        from components.plan.build import build_plan
        from components.plan.deployment import deployment_of
        from components.render.nginx import render_proxy

        self.plan = build_plan(spec, deployment_of(spec))
        return render_proxy(self.plan.gateway, self.addresses, runtime or self.runtime)

    def reload(self, spec: Any = None, **runtime_changes: Any) -> str:
        """Re-render (new spec and/or runtime fields) and ``nginx -s reload``."""
        assert self.nginx is not None
        if spec is not None:
            self.spec = spec
        if runtime_changes:
            self.runtime = replace(self.runtime, **runtime_changes)
        self.conf = self.render(self.spec)
        self.nginx.reload(self.conf)
        return self.conf

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
            self.nginx = None
        for b in self.backends:
            b.stop()
        self.backends = []
        shutil.rmtree(self.prefix, ignore_errors=True)

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- use --------------------------------------------------------------------
    @property
    def port(self) -> int:
        port: int = self.runtime.listen_port
        return port

    @property
    def status_port(self) -> int:
        port: int = self.runtime.status_port
        return port

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def client(self, source: str | None = None, timeout: float = 10.0) -> Client:
        return Client("127.0.0.1", self.port, source=source, timeout=timeout)

    def backend_stats(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for b in self.backends:
            if b.proc is not None and b.proc.poll() is None:
                out.update(b.stats())
        return out

    def reset_backends(self) -> None:
        for b in self.backends:
            if b.proc is not None and b.proc.poll() is None:
                b.reset()

    def backend_of(self, replica: str) -> BackendProcess:
        for b in self.backends:
            if replica in b.addresses:
                return b
        raise KeyError(replica)

    def access_log(self, flush: bool = True) -> list[LogLine]:
        """Parsed access-log lines; ``flush`` makes nginx write its buffer
        (SIGUSR1 = reopen logs, which flushes) first."""
        path = os.path.join(self.prefix, "logs", "access.log")
        if flush and self.nginx is not None:
            size = os.path.getsize(path) if os.path.exists(path) else -1
            os.kill(self.nginx.pid, signal.SIGUSR1)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                time.sleep(0.05)
                if os.path.exists(path) and os.path.getsize(path) != size:
                    time.sleep(0.1)
                    break
        try:
            with open(path, errors="replace") as f:
                return parse_access_log(f.read())
        except OSError:
            return []

    def journal(self) -> list[tuple[str, str, str]]:
        """``(replica, method, path)`` of every executed non-safe request, across
        all replicas, including ones that were SIGKILLed since."""
        out = []
        if self.journal_dir and os.path.isdir(self.journal_dir):
            for fn in sorted(os.listdir(self.journal_dir)):
                with open(os.path.join(self.journal_dir, fn)) as f:
                    for line in f:
                        parts = line.split()
                        if len(parts) == 3:
                            out.append((parts[0], parts[1], parts[2]))
        return out

    def error_log(self) -> str:
        return self.nginx.error_log() if self.nginx is not None else ""


#: the ``gateway_factory`` fixture: ``(spec, **Gateway kwargs) -> started Gateway``
GatewayFactory = Callable[..., Gateway]


def is_service_balanced(spec: Any) -> bool:
    """True when nginx balances workloads' Services, not replicas (kubernetes target)."""
    try:
        from components.plan.balancing import target_balancing
    except ImportError:  # older renderer: always per replica
        return False
    return target_balancing(spec.target) == "service"


def replica_workload(replica: str | None) -> str | None:
    """``"api-canary-1" -> "api-canary"``."""
    if not replica:
        return None
    return replica.rsplit("-", 1)[0]


def counts(items: Iterable[Any]) -> dict[Any, int]:
    out: dict[Any, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out
