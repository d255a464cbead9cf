"""Small HTTP/1.1 clients for data-plane tests and benchmarks (loopback only).

* :func:`get` / :class:`Client` -- synchronous keep-alive requests (http.client),
  with an optional source address (``127.0.0.2``...) to act as distinct clients.
* :func:`fixed_rate` -- an *open-loop* load generator: request ``i`` is due at
  ``t0 + i / rate`` whatever happened to the previous ones, latency is measured
  from that due time (no coordinated omission), connections come from a pool
  that grows as needed (up to ``max_conns``). This is what wrk2 would do; Debian
  has no wrk2.
* :func:`closed_loop` -- N workers each sending back-to-back requests.
"""
from __future__ import annotations

import asyncio
import contextlib
import http.client
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from testbed.backend import uvloop

__all__ = [
    "Client",
    "RequestSpec",
    "Response",
    "Sample",
    "closed_loop",
    "fixed_rate",
    "get",
    "percentile",
    "run",
]


def _check_loopback(host: str) -> None:
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        raise ValueError(f"refusing non-loopback target {host}")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def replica(self) -> str | None:
        return self.headers.get("x-replica")


class Client:
    """Keep-alive HTTP client bound to one gateway address."""

    def __init__(self, host: str, port: int, *, source: str | None = None, timeout: float = 5.0):
        _check_loopback(host)
        self.host, self.port, self.source, self.timeout = host, port, source, timeout
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(
                self.host, self.port, timeout=self.timeout,
                source_address=(self.source, 0) if self.source else None)
        return self._conn

    def request(self, method: str = "GET", path: str = "/", headers: dict[str, str] | None = None,
                body: bytes | None = None, host_header: str | None = None) -> Response:
        hdrs = dict(headers or {})
        if host_header is not None:
            hdrs["Host"] = host_header
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=hdrs)
                r = conn.getresponse()
                data = r.read()
                resp = Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
                if r.will_close:
                    self.close()
                return resp
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # Only a *reused* idle connection that the server closed is retried.
                self.close()
                if attempt or method not in ("GET", "HEAD"):
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def get(host: str, port: int, path: str = "/", **kw: Any) -> Response:
    with Client(host, port, source=kw.pop("source", None)) as c:
        return c.request("GET", path, **kw)


# ----------------------------------------------------------------------------
# asyncio load generation
# ----------------------------------------------------------------------------

@dataclass
class RequestSpec:
    method: str = "GET"
    path: str = "/"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Sample:
    due: float            # scheduled send time (monotonic, s)
    latency: float        # seconds from due time to full response (or error)
    status: int           # 0 on transport error
    replica: str | None = None
    retry_after: str | None = None
    error: str | None = None
    index: int = 0
    #: an idempotent request resent once, on a new connection, because a *reused*
    #: keep-alive connection was closed before any byte of its response
    #: (RFC 9112 section 9.3.1; what browsers, curl and Go's net/http do)
    retried: bool = False


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.used = 0

    async def roundtrip(self, raw: bytes, head_only: bool = False) -> tuple[int, dict[str, str], bool]:
        self.used += 1
        self.writer.write(raw)
        line = await self.reader.readline()
        if not line:
            raise _ClosedBeforeResponseError("closed before status line")
        parts = line.split(b" ", 2)
        status = int(parts[1])
        hdrs: dict[str, str] = {}
        while True:
            h = await self.reader.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if not head_only:
            if "content-length" in hdrs:
                await self.reader.readexactly(int(hdrs["content-length"]))
            elif "chunked" in hdrs.get("transfer-encoding", ""):
                while True:
                    size = int((await self.reader.readline()).split(b";")[0], 16)
                    await self.reader.readexactly(size + 2)
                    if size == 0:
                        break
        close = hdrs.get("connection", "").lower() == "close" or parts[0] == b"HTTP/1.0"
        return status, hdrs, close

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class _ClosedBeforeResponseError(ConnectionResetError):
    pass


_IDEMPOTENT = frozenset(("GET", "HEAD", "PUT", "DELETE", "OPTIONS"))


def _raw(spec: RequestSpec, host_header: str) -> bytes:
    hdrs = {"Host": host_header, **spec.headers}
    if spec.body or spec.method in ("POST", "PUT", "PATCH"):
        hdrs["Content-Length"] = str(len(spec.body))
    head = f"{spec.method} {spec.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    return head.encode("latin-1") + b"\r\n" + spec.body


class _Pool:
    def __init__(self, host: str, port: int, source: str | None, max_conns: int):
        self.host, self.port, self.source = host, port, source
        self.idle: list[_Conn] = []
        self.sem = asyncio.Semaphore(max_conns)
        self.opened = 0

    async def acquire(self, fresh: bool = False) -> _Conn:
        await self.sem.acquire()
        if fresh:  # the server is closing pooled connections: drop them all
            for c in self.idle:
                c.close()
            self.idle.clear()
        if self.idle:
            return self.idle.pop()
        try:
            r, w = await asyncio.open_connection(
                self.host, self.port, local_addr=(self.source, 0) if self.source else None)
        except BaseException:
            self.sem.release()
            raise
        self.opened += 1
        return _Conn(r, w)

    def release(self, c: _Conn | None) -> None:
        if c is not None:
            self.idle.append(c)
        self.sem.release()

    def close(self) -> None:
        for c in self.idle:
            c.close()
        self.idle.clear()


async def _one(pool: _Pool, spec: RequestSpec, host_header: str, due: float, timeout: float,
               index: int) -> Sample:
    retried = False
    while True:
        conn = None
        try:
            conn = await asyncio.wait_for(pool.acquire(fresh=retried), timeout)
            status, hdrs, close = await asyncio.wait_for(
                conn.roundtrip(_raw(spec, host_header), spec.method == "HEAD"), timeout)
            lat = time.monotonic() - due
            if close:
                conn.close()
                pool.release(None)
            else:
                pool.release(conn)
            return Sample(due, lat, status, hdrs.get("x-replica"), hdrs.get("retry-after"),
                          index=index, retried=retried)
        except Exception as e:  # transport error / timeout
            reused = conn is not None and conn.used > 1
            if conn is not None:
                conn.close()
                pool.release(None)
            if (isinstance(e, (_ClosedBeforeResponseError, ConnectionResetError, BrokenPipeError))
                    and reused and not retried and spec.method in _IDEMPOTENT):
                retried = True
                continue
            return Sample(due, time.monotonic() - due, 0, error=f"{type(e).__name__}: {e}",
                          index=index, retried=retried)


SpecArg = RequestSpec | Callable[[int], RequestSpec]


async def fixed_rate(host: str, port: int, rate: float, duration: float, spec: SpecArg | None = None,
                     *, source: str | None = None, max_conns: int = 256, timeout: float = 10.0,
                     host_header: str | None = None, poisson: bool = False, seed: int = 1) -> list[Sample]:
    """Open-loop load: ``rate`` requests/s for ``duration`` s (bounded: at most
    ``rate*duration`` requests), each from a pooled keep-alive connection.
    ``poisson``: exponential gaps (seeded) instead of a fixed interval."""
    _check_loopback(host)
    spec = spec or RequestSpec()
    n = int(rate * duration)
    pool = _Pool(host, port, source, max_conns)
    hh = host_header or f"{host}:{port}"
    t0 = time.monotonic() + 0.05
    tasks = []
    rng = random.Random(seed)
    offset = 0.0
    for i in range(n):
        if poisson:
            offset += rng.expovariate(rate)
        else:
            offset = i / rate
        due = t0 + offset
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        s = spec(i) if callable(spec) else spec
        tasks.append(asyncio.ensure_future(_one(pool, s, hh, due, timeout, i)))
    out = list(await asyncio.gather(*tasks))
    pool.close()
    return out


async def closed_loop(host: str, port: int, concurrency: int, requests: int,
                      spec: SpecArg | None = None, *, source: str | None = None,
                      timeout: float = 10.0, host_header: str | None = None) -> list[Sample]:
    """``concurrency`` workers send ``requests`` requests in total, back to back."""
    _check_loopback(host)
    spec = spec or RequestSpec()
    pool = _Pool(host, port, source, concurrency)
    hh = host_header or f"{host}:{port}"
    counter = iter(range(requests))
    out: list[Sample] = []

    async def worker() -> None:
        for i in counter:
            s = spec(i) if callable(spec) else spec
            out.append(await _one(pool, s, hh, time.monotonic(), timeout, i))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    pool.close()
    return sorted(out, key=lambda s: s.index)


def run(coro: Any) -> Any:
    """Run a coroutine on a fresh (uv)loop."""
    loop = uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def percentile(values: Iterable[float], pct: float) -> float:
    v = sorted(values)
    if not v:
        return float("nan")
    k = max(0, min(len(v) - 1, round(pct / 100.0 * len(v) + 0.5) - 1))
    return v[k]
