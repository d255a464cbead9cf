"""Constant HTTP load on the gateway, from inside the daemon's namespace (loopback only, bounded in time), or on a
service proxy from inside a caller's container (its network namespace: `netns`, `host` the proxy's address there).

``ConstantLoad`` sends requests at fixed rates (per target) from a pool of threads that entered the
namespace, one connection per request (``Connection: close``: a graceful reload closes idle keep-alive
connections, and a client racing that close is a client-side retry problem this load does not model). Every
request is recorded with its send time, status (None on a connection error or timeout), the replica that
answered and the error. A slot the pool cannot serve on time is sent late, never dropped, so the rate holds.
"""
from __future__ import annotations

import http.client
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from e2e._sys import enter_netns_this_thread
from e2e.dockerd import Dockerd

OK = (200, 429)  # 429 is the gateway's declared answer over a limit, not a failure
T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    name: str
    path: str
    rps: float
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Result:
    t: float
    target: str
    status: int | None
    replica: str | None
    error: str | None


@dataclass
class ConstantLoad:
    dockerd: Dockerd
    port: int
    targets: list[Target]
    timeout_s: float = 10.0
    workers: int = 48
    host: str = "127.0.0.1"
    netns: str | None = None  # a network namespace to send from (a container's /proc/<pid>/ns/net); the daemon's by default
    results: list[Result] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> ConstantLoad:
        netns = self.netns or self.dockerd.netns_path
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="load", initializer=enter_netns_this_thread,
                                        initargs=(netns,))
        for target in self.targets:
            t = threading.Thread(target=self._pace, args=(target,), name=f"pace-{target.name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()
        assert self._pool is not None
        self._pool.shutdown(wait=True)

    def _pace(self, target: Target) -> None:
        assert self._pool is not None
        interval, n, start = 1.0 / target.rps, 0, time.monotonic()
        while not self._stop.is_set():
            due = start + n * interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._pool.submit(self._one, target)
            n += 1

    def _one(self, target: Target) -> None:
        t = time.monotonic()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            conn.sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
            conn.request("GET", target.path, headers={"Connection": "close", **dict(target.headers)})
            resp = conn.getresponse()
            resp.read()
            self.results.append(Result(t, target.name, resp.status, resp.getheader("X-Replica"), None))
        except (OSError, http.client.HTTPException) as e:
            self.results.append(Result(t, target.name, None, None, f"{type(e).__name__}: {e}"))
        finally:
            conn.close()

    # ---------------------------------------------------------------- reading the results
    def between(self, start: float, end: float, target: str | None = None) -> list[Result]:
        return [r for r in list(self.results) if start <= r.t < end and (target is None or r.target == target)]

    @staticmethod
    def failed(results: list[Result]) -> list[Result]:
        return [r for r in results if r.status not in OK]

    @staticmethod
    def summary(results: list[Result]) -> dict[str, object]:
        span = (max(r.t for r in results) - min(r.t for r in results)) if results else 0.0
        return {"sent": len(results), "failed": len(ConstantLoad.failed(results)),
                "statuses": dict(Counter(r.status for r in results)), "rps": round(len(results) / span, 1) if span else 0.0,
                "errors": dict(Counter(r.error.split(":")[0] for r in results if r.error))}


def workloads(results: Iterator[Result] | list[Result]) -> Counter[str]:
    """Which workload answered (X-Replica = <workload>-<n>), over the 200s."""
    return Counter(str(r.replica).rsplit("-", 1)[0] for r in results if r.status == 200)


@dataclass(frozen=True)
class Timed(Generic[T]):
    """What `under_load` ran: its value or its error, and when (monotonic seconds) it started and returned and the
    load ended."""

    value: T | None
    error: Exception | None
    started: float
    finished: float
    ended: float


def under_load(load: ConstantLoad, action: Callable[[], T], before_s: float, after_s: float) -> Timed[T]:
    """Run `action` (an update) `before_s` into `load` and keep the load `after_s` longer. The action's error is
    kept, not raised, so a refused update's figures are read like an accepted one's."""
    value: T | None = None
    error: Exception | None = None
    with load:
        time.sleep(before_s)
        started = time.monotonic()
        try:
            value = action()
        except Exception as e:  # handed back to the caller, who asserts on it
            error = e
        finished = time.monotonic()
        time.sleep(after_s)
    return Timed(value, error, started, finished, time.monotonic())
