#!/usr/bin/env python3
"""gRPC replicas for data-plane tests and benchmarks: grpcio's asyncio server with generic handlers (no .proto).

    python testbed/grpc_backend.py --listen 127.0.0.1:0 --name echo-0 \\
                                   --listen 127.0.0.1:0 --name echo-1 --latency-ms 50 --latency-dist exp --concurrency 8

Every ``--listen`` starts a replica (one grpcio server each, all on one event loop); the options after it apply to
that replica, as in :mod:`testbed.backend` (same :class:`~testbed.backend.ReplicaConfig`). A replica serves one
unary method, ``/netopt.testbed.Echo/Call``: the request is raw bytes (ignored), the answer is the replica's name
(bytes), after the replica's latency — constant, or exponential with that mean (``--latency-dist exp``);
``--concurrency N`` serves at most N calls at once, the rest wait in FIFO order (an M/M/c server, as the HTTP
backend). No protobuf: the bytes go on the wire as they are, framed by gRPC.

Statistics, per replica of the process: ``/netopt.testbed.Control/Stats`` on any listener answers JSON
(``requests``, ``inflight``, ``max_inflight``, ``busy_s`` = summed service times drawn, ``slept_s`` = the wall time
those sleeps took), ``/netopt.testbed.Control/Reset`` zeroes them; control calls are not counted.

Programmatic use: :class:`GrpcBackendProcess` runs the replicas in a child process (so its CPU time is its own,
from /proc) and exposes ``addresses``, ``stats()``, ``reset()``, ``stop()``. Loopback only.
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
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import grpc
from grpc import aio

if __package__ in (None, ""):  # run as a script: the repository root on the path for `testbed.backend`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from testbed.backend import ReplicaConfig

__all__ = ["CALL", "RESET", "STATS", "GrpcBackendProcess", "main"]

ECHO_SERVICE = "netopt.testbed.Echo"
CONTROL_SERVICE = "netopt.testbed.Control"
CALL = f"/{ECHO_SERVICE}/Call"
STATS = f"/{CONTROL_SERVICE}/Stats"
RESET = f"/{CONTROL_SERVICE}/Reset"


def _identity(payload: bytes) -> bytes:
    return payload


@dataclass
class _Stats:
    requests: int = 0
    inflight: int = 0
    max_inflight: int = 0
    busy_s: float = 0.0
    slept_s: float = 0.0

    def reset(self) -> None:
        self.requests, self.busy_s, self.slept_s, self.max_inflight = 0, 0.0, 0.0, self.inflight


class _Replica:
    def __init__(self, cfg: ReplicaConfig):
        self.cfg = cfg
        self.name = cfg.name.encode()
        self.stats = _Stats()
        self.rng = random.Random(cfg.name)
        self.slots = asyncio.Semaphore(cfg.concurrency) if cfg.concurrency > 0 else None

    def service_time(self) -> float:
        mean = self.cfg.latency_ms / 1000.0
        return self.rng.expovariate(1.0 / mean) if self.cfg.latency_dist == "exp" and mean > 0 else mean

    async def call(self, request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
        s = self.stats
        s.requests += 1
        s.inflight += 1
        s.max_inflight = max(s.max_inflight, s.inflight)
        try:
            if self.slots is None:
                await self._serve()
            else:
                async with self.slots:  # FIFO: asyncio's semaphore wakes waiters in arrival order
                    await self._serve()
        finally:
            s.inflight -= 1
        return self.name

    async def _serve(self) -> None:
        seconds = self.service_time()
        if seconds > 0:
            start = time.monotonic()
            await asyncio.sleep(seconds)
            self.stats.busy_s += seconds
            self.stats.slept_s += time.monotonic() - start

    def snapshot(self) -> dict[str, Any]:
        s = self.stats
        return {"name": self.cfg.name, "address": self.cfg.listen, "latency_ms": self.cfg.latency_ms,
                "latency_dist": self.cfg.latency_dist, "concurrency": self.cfg.concurrency, "requests": s.requests,
                "inflight": s.inflight, "max_inflight": s.max_inflight, "busy_s": round(s.busy_s, 6), "slept_s": round(s.slept_s, 6)}


def _handlers(replica: _Replica, replicas: list[_Replica]) -> list[grpc.GenericRpcHandler]:
    async def stats(request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
        return json.dumps({"pid": os.getpid(), "replicas": {r.cfg.name: r.snapshot() for r in replicas}}).encode()

    async def reset(request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
        for r in replicas:
            r.stats.reset()
        return b"{}"

    def unary(fn: Any) -> grpc.RpcMethodHandler[bytes, bytes]:
        return grpc.unary_unary_rpc_method_handler(fn, request_deserializer=_identity, response_serializer=_identity)

    return [grpc.method_handlers_generic_handler(ECHO_SERVICE, {"Call": unary(replica.call)}),
            grpc.method_handlers_generic_handler(CONTROL_SERVICE, {"Stats": unary(stats), "Reset": unary(reset)})]


async def serve(configs: list[ReplicaConfig]) -> list[aio.Server]:
    """Start one server per replica on the running loop; a port 0 is replaced by the bound port in its config."""
    replicas = [_Replica(cfg) for cfg in configs]
    servers = []
    for replica in replicas:
        # so_reuseport off: two replicas (or two runs) must never share a port.
        server = aio.server(options=[("grpc.so_reuseport", 0)])
        for handler in _handlers(replica, replicas):
            server.add_generic_rpc_handlers((handler,))
        replica.cfg.port = server.add_insecure_port(replica.cfg.listen)
        await server.start()
        servers.append(server)
    return servers


class GrpcBackendProcess:
    """The replicas in a child process (``python testbed/grpc_backend.py``), started and stopped by PID."""

    def __init__(self, replicas: list[ReplicaConfig], python: str | None = None):
        self.configs = replicas
        self.python = python or sys.executable
        self.proc: subprocess.Popen[str] | None = None
        self.addresses: dict[str, str] = {}

    def start(self, timeout: float = 20.0) -> GrpcBackendProcess:
        cmd = [self.python, os.path.abspath(__file__), "--ready-json"]
        for c in self.configs:
            cmd += ["--listen", f"{c.host}:{c.port}", "--name", c.name, "--latency-ms", str(c.latency_ms),
                    "--concurrency", str(c.concurrency), "--latency-dist", c.latency_dist]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        atexit.register(self.stop)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("READY "):
                self.addresses = {r["name"]: r["address"] for r in json.loads(line[6:])["replicas"]}
                return self
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"the gRPC backend exited with {self.proc.returncode}")
        self.stop()
        raise TimeoutError("the gRPC backend did not become ready")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _control(self, method: str) -> bytes:
        with grpc.insecure_channel(next(iter(self.addresses.values()))) as channel:
            answer: bytes = channel.unary_unary(method, request_serializer=_identity, response_deserializer=_identity)(b"", timeout=5)
            return answer

    def stats(self) -> dict[str, dict[str, Any]]:
        """Replica name -> its counters (see the module docstring)."""
        replicas: dict[str, dict[str, Any]] = json.loads(self._control(STATS))["replicas"]
        return replicas

    def reset(self) -> None:
        self._control(RESET)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        atexit.unregister(self.stop)

    def __enter__(self) -> GrpcBackendProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[ReplicaConfig]]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--ready-json", action="store_true", help="print 'READY {json}' once every replica listens")
    args, rest = parser.parse_known_args(argv)
    replicas: list[ReplicaConfig] = []
    pairs = iter(rest)
    for key in pairs:
        value = next(pairs, None)
        if value is None:
            parser.error(f"{key} needs a value")
        if key == "--listen":
            host, _, port = value.rpartition(":")
            replicas.append(ReplicaConfig(name=f"replica-{len(replicas)}", host=host, port=int(port)))
        elif not replicas:
            parser.error(f"{key} must follow a --listen")
        elif key == "--name":
            replicas[-1].name = value
        elif key == "--latency-ms":
            replicas[-1].latency_ms = float(value)
        elif key == "--concurrency":
            replicas[-1].concurrency = int(value)
        elif key == "--latency-dist" and value in ("const", "exp"):
            replicas[-1].latency_dist = value
        else:
            parser.error(f"unknown option {key} {value}")
    if not replicas:
        parser.error("give at least one --listen HOST:PORT")
    if any(not (r.host.startswith("127.") or r.host == "::1") for r in replicas):
        parser.error("loopback addresses only (127.0.0.0/8, ::1)")
    return args, replicas


def main(argv: list[str] | None = None) -> int:
    args, replicas = _parse_args(argv)

    async def run() -> None:
        servers = await serve(replicas)
        info = {"pid": os.getpid(), "replicas": [{"name": r.name, "address": r.listen} for r in replicas]}
        print(("READY " if args.ready_json else "") + json.dumps(info), flush=True)
        stopped = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stopped.set)
        await stopped.wait()
        for server in servers:
            with contextlib.suppress(Exception):
                await server.stop(0.5)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
