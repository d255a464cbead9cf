#!/usr/bin/env python3
"""A tiny, fast HTTP/1.1 backend for data-plane tests and benchmarks.

Stdlib only (uses uvloop when importable), so it also runs with a bare
``python3`` in a minimal Debian container::

    python3 testbed/backend.py --listen 127.0.0.1:9001 --name api-0 \\
                               --listen 127.0.0.1:9002 --name api-1 --latency-ms 5

Every ``--listen`` starts a *replica*; the ``--name`` / ``--latency-ms`` that
follow it apply to that replica. Each response carries ``X-Replica: <name>``
(plus ``X-Method``, ``X-Path``, ``X-Host`` and, when sent, ``X-Request-Id`` echoing
what the backend saw) and
a tiny body ``<name>\\n``.

Keep-alive and pipelining: HTTP/1.1 connections stay open unless the client
says ``Connection: close``; HTTP/1.0 ones close unless it says ``keep-alive``.
Pipelined requests are answered strictly in order.

``--concurrency N`` caps the requests in service at once (the rest wait, FIFO),
and ``--latency-dist exp`` draws each latency from an exponential distribution
with mean ``--latency-ms`` -- together a replica is an M/M/c server.

Per-request controls (query parameters, for tests):

* ``__sleep_ms=N``  extra latency for this request;
* ``__status=NNN``  answer with that status code;
* ``__abort=1``     count the request as executed, then reset the connection
  without answering (simulates a replica that dies mid-request);
  ``__abort=<name>`` does so only on the replica of that name.

``--journal FILE`` appends ``<name> METHOD /path`` for each executed non-safe
request before answering it, so executions are known even after a SIGKILL.

Statistics (not counted themselves): ``GET /__stats`` on any listener (or on
``--control HOST:PORT``) returns JSON for every replica of this process;
``POST /__stats/reset`` zeroes them. Per replica:

* ``accepted``         TCP connections accepted;
* ``connections``      connections that carried at least one non-stats request;
* ``open`` / ``max_open``  currently open connections / peak since reset;
* ``inflight`` / ``max_inflight``  requests being served / peak since reset;
* ``requests``, ``methods``  request counts, total and per method;
* ``executed``         ``"METHOD /path" -> n`` for every non-GET/HEAD/OPTIONS
  request that reached the handler -- proof of how often a POST was executed.

``--workers N`` forks N processes sharing each port with SO_REUSEPORT (for
benchmarks; each worker then reports only its own statistics).

Programmatic use (tests): :class:`BackendThread` (servers on an event loop in a
background thread) and :class:`BackendProcess` (a subprocess; can be SIGKILLed).
Both bind ephemeral 127.0.0.1 ports by default and expose ``addresses``,
``stats()``, ``reset()`` and ``stop()``.
"""
from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any


def _optional_uvloop() -> Any:
    try:  # optional speed-up
        import uvloop

        return uvloop
    except Exception:  # pragma: no cover - absent in minimal containers
        return None


uvloop: Any = _optional_uvloop()
#: the event loop this module serves with: "uvloop" or "asyncio"
LOOP = "uvloop" if uvloop is not None else "asyncio"

__all__ = [
    "LOOP",
    "BackendProcess",
    "BackendThread",
    "ReplicaConfig",
    "main",
    "start_workload_backends",
]

_REASONS = {
    200: b"OK", 201: b"Created", 204: b"No Content", 400: b"Bad Request",
    404: b"Not Found", 408: b"Request Timeout", 413: b"Payload Too Large",
    429: b"Too Many Requests", 500: b"Internal Server Error", 502: b"Bad Gateway",
    503: b"Service Unavailable", 504: b"Gateway Timeout",
}
_SAFE = frozenset((b"GET", b"HEAD", b"OPTIONS"))
_MAX_HEAD = 64 * 1024
_MAX_BODY = 16 * 1024 * 1024


@dataclass
class ReplicaConfig:
    """One replica: a listen address, an identity and an injected latency."""

    name: str
    host: str = "127.0.0.1"
    port: int = 0
    latency_ms: float = 0.0
    #: at most this many requests in service at once, the rest wait FIFO (0 = unlimited)
    concurrency: int = 0
    #: "const": every request takes latency_ms; "exp": exponential with mean latency_ms
    latency_dist: str = "const"
    #: append "<name> METHOD /path" per executed non-GET/HEAD/OPTIONS request (unbuffered)
    journal: str | None = None

    @property
    def listen(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class _Stats:
    accepted: int = 0
    connections: int = 0
    open: int = 0
    max_open: int = 0
    inflight: int = 0
    max_inflight: int = 0
    requests: int = 0
    busy_s: float = 0.0  # summed service time (sleep) of completed requests
    slept_s: float = 0.0  # the wall time those sleeps really took (more on a loaded machine: the loop wakes late)
    methods: dict[str, int] = field(default_factory=dict)
    executed: dict[str, int] = field(default_factory=dict)

    def reset(self) -> None:
        self.accepted = self.connections = self.requests = 0
        self.busy_s = self.slept_s = 0.0
        self.max_open = self.open
        self.max_inflight = self.inflight
        self.methods = {}
        self.executed = {}


class _Replica:
    def __init__(self, cfg: ReplicaConfig, registry: _Registry):
        self.cfg = cfg
        self.name = cfg.name
        self.latency = cfg.latency_ms / 1000.0
        self.registry = registry
        self.stats = _Stats()
        self.sem: asyncio.Semaphore | None = None
        self.rng = random.Random(hash(cfg.name) & 0xFFFFFFFF)
        self.server: asyncio.AbstractServer | None = None
        self.protocols: set[_HttpProtocol] = set()
        self.address = cfg.listen
        # Pre-rendered response pieces (the hot path only concatenates).
        n = cfg.name.encode()
        self.name_b = n
        self.journal_fd = -1
        if cfg.journal:
            self.journal_fd = os.open(cfg.journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.body = n + b"\n"
        self.hdr_name = b"X-Replica: " + n + b"\r\n"

    def snapshot(self) -> dict[str, Any]:
        s = self.stats
        return {
            "name": self.name, "address": self.address, "latency_ms": self.cfg.latency_ms,
            "accepted": s.accepted, "connections": s.connections, "open": s.open,
            "max_open": s.max_open, "inflight": s.inflight, "max_inflight": s.max_inflight,
            "requests": s.requests, "busy_s": round(s.busy_s, 6), "slept_s": round(s.slept_s, 6),
            "concurrency": self.cfg.concurrency, "latency_dist": self.cfg.latency_dist,
            "methods": dict(s.methods), "executed": dict(s.executed),
        }


class _Registry:
    """All replicas of one process (the scope of /__stats)."""

    def __init__(self) -> None:
        self.replicas: list[_Replica] = []

    def stats(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "time": time.time(),
                "replicas": {r.name: r.snapshot() for r in self.replicas}}

    def reset(self) -> None:
        for r in self.replicas:
            r.stats.reset()


class _Request:
    __slots__ = ("body_len", "host", "keep_alive", "method", "request_id", "target", "version")

    def __init__(self, method: bytes, target: bytes, version: bytes, keep_alive: bool,
                 host: bytes, body_len: int, request_id: bytes = b""):
        self.method = method
        self.target = target
        self.version = version
        self.keep_alive = keep_alive
        self.host = host
        self.body_len = body_len
        self.request_id = request_id


class _HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 server protocol: incremental parse, in-order replies."""

    __slots__ = (
        "buf",
        "closing",
        "continued",
        "control_only",
        "counted",
        "queue",
        "registry",
        "replica",
        "transport",
        "worker",
    )

    def __init__(self, replica: _Replica | None, registry: _Registry):
        self.replica = replica
        self.control_only = replica is None
        self.registry = registry
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.queue: list[_Request] | None = None  # pending when async work is queued
        self.worker: asyncio.Task[None] | None = None
        self.closing = False
        self.counted = False
        self.continued = False

    # -- connection lifecycle --------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        r = self.replica
        if r is not None:
            s = r.stats
            s.accepted += 1
            s.open += 1
            if s.open > s.max_open:
                s.max_open = s.open
            r.protocols.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        r = self.replica
        if r is not None:
            r.stats.open -= 1
            r.protocols.discard(self)
        if self.worker is not None and not self.worker.done():
            self.worker.cancel()
        self.closing = True

    # -- parsing ---------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        buf = self.buf + data if self.buf else data
        out: list[bytes] = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    self._bad(out, 400)
                    return
                break
            head = buf[:end]
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ")
            if len(parts) != 3:
                if lines[0] == b"" and len(lines) == 1:  # stray CRLF between requests
                    buf = buf[2:]
                    continue
                self._bad(out, 400)
                return
            method, target, version = parts
            keep_alive = version == b"HTTP/1.1"
            host = request_id = b""
            clen = 0
            chunked = False
            expect = False
            for line in lines[1:]:
                c = line.find(b":")
                if c <= 0:
                    continue
                k = line[:c].strip().lower()
                if k == b"content-length":
                    try:
                        clen = int(line[c + 1:])
                    except ValueError:
                        self._bad(out, 400)
                        return
                elif k == b"connection":
                    v = line[c + 1:].strip().lower()
                    if b"close" in v:
                        keep_alive = False
                    elif b"keep-alive" in v:
                        keep_alive = True
                elif k == b"host":
                    host = line[c + 1:].strip()
                elif k == b"x-request-id":
                    request_id = line[c + 1:].strip()
                elif k == b"transfer-encoding":
                    chunked = b"chunked" in line[c + 1:].lower()
                elif k == b"expect":
                    expect = b"100-continue" in line[c + 1:].lower()
            pos = end + 4
            if expect and not self.continued and (chunked or clen) and self.queue is None:
                self.continued = True  # the client waits for this before sending the body
                out.append(b"HTTP/1.1 100 Continue\r\n\r\n")
            if chunked:
                consumed = _chunked_length(buf, pos)
                if consumed is None:
                    break  # need more data
                if consumed < 0:
                    self._bad(out, 400)
                    return
                body_len = consumed - pos
                pos = consumed
            else:
                if clen > _MAX_BODY:
                    self._bad(out, 413)
                    return
                if len(buf) - pos < clen:
                    break  # body not complete yet
                body_len = clen
                pos += clen
            buf = buf[pos:]
            self.continued = False
            req = _Request(method, target, version, keep_alive, host, body_len, request_id)
            if not self._handle(req, out):
                break
        self.buf = buf
        t = self.transport
        assert t is not None
        if out and not t.is_closing():
            t.write(b"".join(out))
        if self.closing and self.queue is None:
            t.close()

    def _bad(self, out: list[bytes], status: int) -> None:
        out.append(_response(status, b"", b"bad request\n", False))
        assert self.transport is not None
        self.transport.write(b"".join(out))
        self.buf = b""
        self.closing = True
        self.transport.close()

    # -- handling --------------------------------------------------------------
    def _handle(self, req: _Request, out: list[bytes]) -> bool:
        """Serve ``req``; returns False if parsing must stop (connection closing)."""
        if self.queue is not None:  # async work pending: keep order
            self.queue.append(req)
            return True
        target = req.target
        if target.startswith(b"/__stats") or self.control_only:
            out.append(self._control(req))
            if not req.keep_alive:
                self.closing = True
                return False
            return True
        r = self.replica
        assert r is not None
        s = r.stats
        if not self.counted:
            self.counted = True
            s.connections += 1
        s.requests += 1
        m = req.method.decode("latin-1")
        s.methods[m] = s.methods.get(m, 0) + 1
        status = 200
        delay = r.latency
        if delay > 0 and r.cfg.latency_dist == "exp":
            delay = r.rng.expovariate(1.0 / delay)
        abort = False
        path = target
        q = target.find(b"?")
        if q >= 0:
            path = target[:q]
            if b"__" in target:
                for kv in target[q + 1:].split(b"&"):
                    k, _, v = kv.partition(b"=")
                    try:
                        if k == b"__sleep_ms":
                            delay += float(v) / 1000.0
                        elif k == b"__status":
                            status = int(v)
                        elif k == b"__abort":
                            # "1": any replica; "<name>": only that replica
                            abort = v == b"1" or v == r.name_b
                    except ValueError:
                        pass
        if req.method not in _SAFE:
            key = m + " " + path.decode("latin-1")
            s.executed[key] = s.executed.get(key, 0) + 1
            if r.journal_fd >= 0:  # survives a SIGKILL: written before any answer
                os.write(r.journal_fd, (r.name + " " + key + "\n").encode("latin-1"))
        if abort:
            self._abort()
            return False
        if delay > 0:
            # Slow path: answer from a task, queue what follows to keep order.
            self.queue = []
            s.inflight += 1
            if s.inflight > s.max_inflight:
                s.max_inflight = s.inflight
            self.worker = asyncio.ensure_future(self._delayed(req, status, delay, path))
            return True
        out.append(self._reply(req, status, path))
        if not req.keep_alive:
            self.closing = True
            return False
        return True

    def _reply(self, req: _Request, status: int, path: bytes) -> bytes:
        r = self.replica
        assert r is not None
        extra = (r.hdr_name + b"X-Method: " + req.method + b"\r\nX-Path: " + path
                 + b"\r\nX-Host: " + req.host + b"\r\n")
        if req.request_id:
            extra += b"X-Request-Id: " + req.request_id + b"\r\n"
        body = b"" if req.method == b"HEAD" else r.body
        return _response(status, extra, body, req.keep_alive,
                         clen=len(r.body) if req.method == b"HEAD" else None)

    async def _delayed(self, req: _Request, status: int, delay: float, path: bytes) -> None:
        r = self.replica
        assert r is not None
        try:
            if r.cfg.concurrency > 0:
                if r.sem is None:
                    r.sem = asyncio.Semaphore(r.cfg.concurrency)
                async with r.sem:
                    began = time.monotonic()
                    await asyncio.sleep(delay)
            else:
                began = time.monotonic()
                await asyncio.sleep(delay)
            r.stats.busy_s += delay
            r.stats.slept_s += time.monotonic() - began
        finally:
            r.stats.inflight -= 1
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(self._reply(req, status, path))
        if not req.keep_alive:
            self.closing = True
            self.queue = None
            self.transport.close()
            return
        pending = self.queue or []
        self.queue = None
        self.worker = None
        out: list[bytes] = []
        for i, nxt in enumerate(pending):
            if self.queue is not None:  # went async again: re-queue the rest
                self.queue.extend(pending[i:])
                break
            if not self._handle(nxt, out):
                break
        if out and not self.transport.is_closing():
            self.transport.write(b"".join(out))
        if self.closing and self.queue is None:
            self.transport.close()

    def _abort(self) -> None:
        """Reset the connection (RST) without answering."""
        self.closing = True
        t = self.transport
        sock = t.get_extra_info("socket") if t is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if t is not None:
            t.abort()

    def _control(self, req: _Request) -> bytes:
        path = req.target.split(b"?", 1)[0]
        if path == b"/__stats" and req.method in (b"GET", b"HEAD"):
            body = json.dumps(self.registry.stats()).encode()
            return _response(200, b"Content-Type: application/json\r\n", body, req.keep_alive)
        if path == b"/__stats/reset" and req.method == b"POST":
            self.registry.reset()
            return _response(200, b"", b"reset\n", req.keep_alive)
        return _response(404, b"", b"not found\n", req.keep_alive)


def _chunked_length(buf: bytes, pos: int) -> int | None:
    """Offset just past a complete chunked body starting at ``pos``; None if
    incomplete, -1 if malformed."""
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        try:
            size = int(buf[pos:eol].split(b";", 1)[0], 16)
        except ValueError:
            return -1
        pos = eol + 2
        if size == 0:
            # trailers end with an empty line
            end = buf.find(b"\r\n\r\n", pos - 2)
            if end < 0:
                return None
            return end + 4
        if len(buf) < pos + size + 2:
            return None
        pos += size + 2


def _response(status: int, extra: bytes, body: bytes, keep_alive: bool,
              clen: int | None = None) -> bytes:
    return b"".join((
        b"HTTP/1.1 ", str(status).encode(), b" ", _REASONS.get(status, b"Status"), b"\r\n",
        extra,
        b"Content-Length: ", str(len(body) if clen is None else clen).encode(), b"\r\n",
        b"" if keep_alive else b"Connection: close\r\n",
        b"\r\n", body,
    ))


# ----------------------------------------------------------------------------
# Serving
# ----------------------------------------------------------------------------

def _parse_hostport(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    if not host:
        raise ValueError(f"expected HOST:PORT, got {s!r}")
    return host.strip("[]"), int(port)


def _make_socket(host: str, port: int, reuse_port: bool, listen: bool = True) -> socket.socket:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(fam, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(4096)
    sock.setblocking(False)
    return sock


async def _serve(replicas: list[ReplicaConfig], control: tuple[str, int] | None,
                 registry: _Registry, reuse_port: bool = False,
                 sockets: dict[int, socket.socket] | None = None) -> list[asyncio.AbstractServer]:
    loop = asyncio.get_running_loop()
    servers: list[asyncio.AbstractServer] = []

    def factory(rep: _Replica | None) -> Callable[[], _HttpProtocol]:
        return lambda: _HttpProtocol(rep, registry)

    for i, cfg in enumerate(replicas):
        rep = _Replica(cfg, registry)
        sock = sockets[i] if sockets and i in sockets else _make_socket(cfg.host, cfg.port, reuse_port)
        srv = await loop.create_server(factory(rep), sock=sock)
        port = sock.getsockname()[1]
        rep.cfg.port = port
        rep.address = f"{cfg.host}:{port}" if ":" not in cfg.host else f"[{cfg.host}]:{port}"
        rep.server = srv
        registry.replicas.append(rep)
        servers.append(srv)
    if control is not None:
        sock = _make_socket(control[0], control[1], False)
        srv = await loop.create_server(lambda: _HttpProtocol(None, registry), sock=sock)
        servers.append(srv)
    return servers


def _new_loop() -> asyncio.AbstractEventLoop:
    if uvloop is not None:
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()


# ----------------------------------------------------------------------------
# In-process API
# ----------------------------------------------------------------------------

class BackendThread:
    """Replicas served by an event loop in a daemon thread of this process.

    >>> b = BackendThread([ReplicaConfig("api-0"), ReplicaConfig("api-1", latency_ms=5)]).start()
    >>> b.addresses            # {"api-0": "127.0.0.1:PORT", ...}
    >>> b.stats()["api-0"]["requests"]; b.reset(); b.kill("api-1"); b.stop()
    """

    def __init__(self, replicas: list[ReplicaConfig]):
        self.configs = replicas
        self.registry = _Registry()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.servers: list[asyncio.AbstractServer] = []

    def start(self) -> BackendThread:
        ready = threading.Event()
        err: list[BaseException] = []

        def run() -> None:
            loop = _new_loop()
            self.loop = loop
            asyncio.set_event_loop(loop)
            try:
                self.servers = loop.run_until_complete(_serve(self.configs, None, self.registry))
            except BaseException as e:  # pragma: no cover
                err.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            for s in self.servers:
                s.close()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

        self.thread = threading.Thread(target=run, name="testbed-backend", daemon=True)
        self.thread.start()
        ready.wait(10)
        if err:
            raise err[0]
        return self

    def _call(self, fn: Callable[[], Any]) -> Any:
        assert self.loop is not None
        fut = asyncio.run_coroutine_threadsafe(_acall(fn), self.loop)
        return fut.result(10)

    @property
    def addresses(self) -> dict[str, str]:
        return {r.name: r.address for r in self.registry.replicas}

    def stats(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = self._call(lambda: self.registry.stats()["replicas"])
        return out

    def reset(self) -> None:
        self._call(self.registry.reset)

    def kill(self, name: str) -> None:
        """Close the replica's listener and reset all its connections (a crash)."""
        def do() -> None:
            for r in self.registry.replicas:
                if r.name == name:
                    if r.server is not None:
                        r.server.close()
                    for p in list(r.protocols):
                        p._abort()
        self._call(do)

    def stop(self) -> None:
        if self.loop is not None and self.thread is not None and self.thread.is_alive():
            def do() -> None:
                for r in self.registry.replicas:
                    for p in list(r.protocols):
                        if p.transport is not None:
                            p.transport.close()
            with contextlib.suppress(Exception):
                self._call(do)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)

    def __enter__(self) -> BackendThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


async def _acall(fn: Callable[[], Any]) -> Any:
    return fn()


class BackendProcess:
    """Replicas served by a separate ``python3 testbed/backend.py`` process.

    Use one process per replica when a test must SIGKILL a single replica.
    """

    def __init__(self, replicas: list[ReplicaConfig], workers: int = 1,
                 python: str | None = None):
        self.configs = replicas
        self.workers = workers
        self.python = python or sys.executable
        self.proc: subprocess.Popen[str] | None = None
        self.addresses: dict[str, str] = {}
        self.control: str | None = None

    def start(self, timeout: float = 10.0) -> BackendProcess:
        cmd = [self.python, os.path.abspath(__file__), "--ready-json"]
        for c in self.configs:
            cmd += ["--listen", f"{c.host}:{c.port}", "--name", c.name,
                    "--latency-ms", str(c.latency_ms), "--concurrency", str(c.concurrency),
                    "--latency-dist", c.latency_dist]
            if c.journal:
                cmd += ["--journal", c.journal]
        if self.workers == 1:
            cmd += ["--control", "127.0.0.1:0"]
        else:
            cmd += ["--workers", str(self.workers)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, start_new_session=True)
        atexit.register(self.stop)  # never leak a backend if the caller forgets
        deadline = time.monotonic() + timeout
        line = ""
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("READY "):
                break
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"backend exited with {self.proc.returncode}")
        else:
            self.stop()
            raise TimeoutError("backend did not become ready")
        info = json.loads(line[6:])
        self.addresses = {r["name"]: r["address"] for r in info["replicas"]}
        self.control = info.get("control")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _url(self, path: str) -> str:
        addr = self.control or next(iter(self.addresses.values()))
        return f"http://{addr}{path}"

    def stats(self) -> dict[str, dict[str, Any]]:
        with urllib.request.urlopen(self._url("/__stats"), timeout=5) as r:
            out: dict[str, dict[str, Any]] = json.loads(r.read())["replicas"]
        return out

    def reset(self) -> None:
        req = urllib.request.Request(self._url("/__stats/reset"), data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            r.read()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the process (all its replicas) by PID."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig) if self.workers > 1 else self.proc.send_signal(sig)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                if self.workers > 1:
                    os.killpg(self.proc.pid, signal.SIGTERM)
                else:
                    self.proc.terminate()
                self.proc.wait(5)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        atexit.unregister(self.stop)

    def __enter__(self) -> BackendProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_workload_backends(replicas: dict[str, Any], *, process_per_replica: bool = False,
                            journal_dir: str | None = None) -> tuple[dict[str, list[str]], list[Any]]:
    """Start backends for ``{workload: n_replicas | [latency_ms, ...] | [ReplicaConfig, ...]}``.

    Replica names are ``<workload>-<index>``. Returns ``(addresses, handles)``
    where ``addresses`` maps each workload to its ``host:port`` list (index =
    replica number) -- the shape the nginx renderer takes -- and ``handles``
    are the started :class:`BackendProcess` objects (stop them when done).
    ``journal_dir``: give every replica a journal ``<dir>/<name>.journal``.
    """
    cfgs: dict[str, list[ReplicaConfig]] = {}
    for wl, spec in replicas.items():
        items = [0.0] * spec if isinstance(spec, int) else list(spec)
        lst = []
        for i, it in enumerate(items):
            c = replace(it) if isinstance(it, ReplicaConfig) else ReplicaConfig("", latency_ms=float(it))
            c.name = f"{wl}-{i}"
            if journal_dir and not c.journal:
                c.journal = os.path.join(journal_dir, f"{c.name}.journal")
            lst.append(c)
        cfgs[wl] = lst
    handles: list[Any] = []
    addresses: dict[str, list[str]] = {}
    try:
        if process_per_replica:
            for wl, lst in cfgs.items():
                addresses[wl] = []
                for c in lst:
                    h = BackendProcess([c]).start()
                    handles.append(h)
                    addresses[wl].append(h.addresses[c.name])
        else:
            flat = [c for lst in cfgs.values() for c in lst]
            h = BackendProcess(flat).start()
            handles.append(h)
            for wl, lst in cfgs.items():
                addresses[wl] = [h.addresses[c.name] for c in lst]
    except BaseException:
        for h in handles:
            h.stop()
        raise
    return addresses, handles


# ----------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------

def _parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[ReplicaConfig]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", action="append", default=[], metavar="HOST:PORT",
                   help="add a replica listening there (repeatable; port 0 = ephemeral; "
                        "default 0.0.0.0:$NETOPT_PORT or 8080)")
    p.add_argument("--name", action="append", default=[],
                   help="name of the preceding --listen (default $NETOPT_REPLICA or the hostname)")
    p.add_argument("--latency-ms", action="append", default=[], help="latency of the preceding --listen")
    p.add_argument("--concurrency", action="append", default=[],
                   help="requests in service at once for the preceding --listen (0 = unlimited)")
    p.add_argument("--latency-dist", action="append", default=[], choices=["const", "exp"],
                   help="latency distribution of the preceding --listen")
    p.add_argument("--journal", action="append", default=[], metavar="FILE",
                   help="append each executed non-safe request of the preceding --listen to FILE")
    p.add_argument("--control", metavar="HOST:PORT", help="extra listener serving only /__stats")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the ports (SO_REUSEPORT)")
    p.add_argument("--ready-json", action="store_true", help="print 'READY {json}' once listening")
    # Re-walk argv to attach --name/--latency-ms to the preceding --listen.
    argv = list(sys.argv[1:] if argv is None else argv)
    ns = p.parse_args(argv)
    replicas: list[ReplicaConfig] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        key, eq, val = a.partition("=")
        if key in ("--listen", "--name", "--latency-ms", "--concurrency", "--latency-dist",
                   "--journal"):
            if not eq:
                i += 1
                val = argv[i]
            if key == "--listen":
                h, port = _parse_hostport(val)
                replicas.append(ReplicaConfig(name="", host=h, port=port))
            elif not replicas:
                p.error(f"{key} must follow a --listen")
            elif key == "--name":
                replicas[-1].name = val
            elif key == "--concurrency":
                replicas[-1].concurrency = int(val)
            elif key == "--latency-dist":
                replicas[-1].latency_dist = val
            elif key == "--journal":
                replicas[-1].journal = val
            else:
                replicas[-1].latency_ms = float(val)
        i += 1
    if not replicas:
        replicas.append(ReplicaConfig(name="", host="0.0.0.0", port=int(os.environ.get("NETOPT_PORT", 8080))))
    # Unnamed replicas: $NETOPT_REPLICA or the hostname (suffixed -<i> when several are unnamed).
    base = os.environ.get("NETOPT_REPLICA") or socket.gethostname()
    unnamed = [r for r in replicas if not r.name]
    for i, r in enumerate(unnamed):
        r.name = base if len(unnamed) == 1 else f"{base}-{i}"
    return ns, replicas


def main(argv: list[str] | None = None) -> int:
    ns, replicas = _parse_args(argv)
    control = _parse_hostport(ns.control) if ns.control else None

    def ready_line(reg_replicas: list[ReplicaConfig], ctl: str | None) -> None:
        info = {"pid": os.getpid(), "loop": "uvloop" if uvloop else "asyncio",
                "replicas": [{"name": c.name, "address": c.listen} for c in reg_replicas],
                "control": ctl}
        if ns.ready_json:
            print("READY " + json.dumps(info), flush=True)
        else:
            print(json.dumps(info), flush=True)

    if ns.workers <= 1:
        loop = _new_loop()
        asyncio.set_event_loop(loop)
        registry = _Registry()
        servers = loop.run_until_complete(_serve(replicas, None, registry))
        ctl = None
        if control is not None:
            csock = _make_socket(control[0], control[1], False)
            servers.append(loop.run_until_complete(
                loop.create_server(lambda: _HttpProtocol(None, registry), sock=csock)))
            ctl = f"{control[0]}:{csock.getsockname()[1]}"
        ready_line(replicas, ctl)
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, loop.stop)
        try:
            loop.run_forever()
        finally:
            for s in servers:
                s.close()
        return 0

    # Multi-process: reserve the ports (bound, not listening) then fork workers
    # that bind the same ports with SO_REUSEPORT; the kernel spreads connections.
    reserve = [_make_socket(c.host, c.port, True, listen=False) for c in replicas]
    for c, rs in zip(replicas, reserve, strict=True):
        c.port = rs.getsockname()[1]
    children: list[int] = []
    rfd, wfd = os.pipe()
    for _ in range(ns.workers):
        pid = os.fork()
        if pid == 0:  # child
            os.close(rfd)
            for rs in reserve:
                rs.close()
            loop = _new_loop()
            asyncio.set_event_loop(loop)
            reg = _Registry()
            loop.run_until_complete(_serve(replicas, None, reg, reuse_port=True))
            os.write(wfd, b"1")
            os.close(wfd)
            loop.add_signal_handler(signal.SIGTERM, loop.stop)
            try:
                loop.run_forever()
            finally:
                os._exit(0)
        children.append(pid)
    os.close(wfd)
    got = 0
    while got < ns.workers:
        chunk = os.read(rfd, 64)
        if not chunk:
            break
        got += len(chunk)
    os.close(rfd)
    ready_line(replicas, None)

    def stop(*_: Any) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
