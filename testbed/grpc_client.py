"""gRPC clients for data-plane tests and benchmarks (loopback only), against :mod:`testbed.grpc_backend`.

* :func:`call` -- one blocking unary call; the outcome as a :class:`Call` (status name, message, replica).
* :func:`fixed_rate` -- an *open-loop* load generator on **one channel, one HTTP/2 connection** (what a gRPC client
  holds to a service): call ``i`` is due at its scheduled time whatever happened to earlier ones (Poisson gaps,
  seeded, or a fixed interval), latency counts from that due time (no coordinated omission), every call has the
  same deadline. The channel keeps grpcio's defaults otherwise: no retry policy, but transparent retries of a call
  that never reached the server (a stream refused by the GOAWAY nginx sends after `keepalive_requests` calls on a
  connection), as gRPC clients do; without them the calls in flight at each reconnect fail UNAVAILABLE (7-20 of
  10,000 at 1,000 calls/s in bench/eastwest.py's first run).
"""
from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from grpc import aio

from testbed.grpc_backend import CALL

__all__ = ["Call", "call", "fixed_rate"]

# One connection per channel, never shared with another channel of this process (grpcio's global subchannel pool
# would otherwise reuse one connection for every channel to the same address).
CHANNEL_OPTIONS: Sequence[tuple[str, int]] = (("grpc.use_local_subchannel_pool", 1),)


def _identity(payload: bytes) -> bytes:
    return payload


def _check_loopback(target: str) -> None:
    host = target.rpartition(":")[0].strip("[]")
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        raise ValueError(f"refusing non-loopback target {target}")


@dataclass(frozen=True)
class Call:
    """One call's outcome: `code` is the gRPC status name (`OK`, `RESOURCE_EXHAUSTED`, ...), `replica` the answer of
    an OK call (the replica's name), `latency` seconds from `due` to the end of the call."""

    due: float
    latency: float
    code: str
    replica: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.code == "OK"


def call(target: str, *, payload: bytes = b"", timeout: float = 5.0, method: str = CALL) -> Call:
    """One unary call on a fresh channel."""
    _check_loopback(target)
    start = time.monotonic()
    with grpc.insecure_channel(target, options=list(CHANNEL_OPTIONS)) as channel:
        stub = channel.unary_unary(method, request_serializer=_identity, response_deserializer=_identity)
        try:
            answer: bytes = stub(payload, timeout=timeout)
        except grpc.RpcError as error:
            code = error.code()
            return Call(start, time.monotonic() - start, code.name, None, error.details() or "")
    return Call(start, time.monotonic() - start, "OK", answer.decode())


async def _one(stub: aio.UnaryUnaryMultiCallable[bytes, bytes], payload: bytes, due: float, timeout: float) -> Call:
    try:
        answer = await stub(payload, timeout=timeout)
    except aio.AioRpcError as error:
        return Call(due, time.monotonic() - due, error.code().name, None, error.details() or "")
    return Call(due, time.monotonic() - due, "OK", answer.decode())


async def fixed_rate(target: str, rate: float, duration: float, *, poisson: bool = True, seed: int = 1,
                     timeout: float = 10.0, payload: bytes = b"", warmup: int = 20) -> list[Call]:
    """``rate`` calls/s for ``duration`` s on one channel (at most ``rate*duration`` calls). ``warmup`` calls go
    first, one at a time, and are not returned: the connection is up and the deadline clock starts only then."""
    _check_loopback(target)
    async with aio.insecure_channel(target, options=list(CHANNEL_OPTIONS)) as channel:
        stub = channel.unary_unary(CALL, request_serializer=_identity, response_deserializer=_identity)
        for _ in range(warmup):
            await _one(stub, payload, time.monotonic(), timeout)
        rng = random.Random(seed)
        start = time.monotonic() + 0.05
        offset = 0.0
        tasks = []
        for i in range(int(rate * duration)):
            offset = offset + rng.expovariate(rate) if poisson else i / rate
            due = start + offset
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(_one(stub, payload, due, timeout)))
        return list(await asyncio.gather(*tasks))
