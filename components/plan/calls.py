"""Every call of the service graph with its policy resolved: balancing, timeouts, retries, per-caller limits.

The spec says what differs from the defaults (`spec/calls.py`); here every default is decided once, from the
declared graph: a callee's timeout from its slowest replica, each caller's limits from its share of the callee's
capacity. The service proxies, the mesh resources, the scores, the capacity model and the report all read these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from components.plan.balancing import service_rate
from components.plan.graph import propagate, versions
from components.plan.ir import Protocol, Retries
from components.spec.base import Algorithm
from components.spec.calls import Call
from components.spec.schema import Spec, Workload

TIMEOUT_PER_RESPONSE_TIME = 10  # ≥ the 99.99th percentile of an exponential service time (9.2 × its mean)
TIMEOUT_RANGE_S = (1.0, 60.0)


@dataclass(frozen=True)
class CalleePolicy:
    """What every call into `workload` gets from its service proxy (the callee's `traffic_policy`, resolved). A call to
    another of its named ports (`port_name`: metrics, management) is carried as plain tcp to that port of the
    workload's own replicas: connections capped per caller, an idle timeout, no request-level policy."""

    workload: str
    protocol: Protocol
    port: int
    port_name: str | None  # None: the workload's main port
    algorithm: Algorithm
    hash_key: str | None
    timeout_s: float
    connect_timeout_s: float
    retries: Retries
    versions: tuple[tuple[str, int], ...]  # (workload, weight): the workload itself, or its `split`
    capacity_rps: float  # calls/s the versions serve at full concurrency, at the split's weights
    concurrency: int  # calls the versions' replicas hold in flight at once


@dataclass(frozen=True)
class Edge:
    """One declared call: `caller` → `callee`, with the limits the callee's proxy holds it to."""

    caller: str
    callee: str
    ratio: float
    declared_rps: float  # the caller's declared peak arrival × ratio: what the limits must let through
    limit_rps: float | None  # None for tcp: a stream proxy counts connections, not requests
    burst: int
    max_concurrency: int
    policy: CalleePolicy

    @property
    def name(self) -> str:
        """`<caller>.<callee>`, and `:<port>` for a call to another named port: workload names are DNS labels, so the
        dot separates them unambiguously."""
        port = "" if self.policy.port_name is None else f":{self.policy.port_name}"
        return f"{self.caller}.{self.callee}{port}"


def called_port(spec: Spec, call: Call) -> str | None:
    """The named port a call reaches, None for the callee's main port (left out, or named after its protocol)."""
    callee = spec.workload(call.workload)
    return None if call.port is None or (call.port == callee.protocol and callee.port is not None) else call.port


def callee_policies(spec: Spec) -> dict[tuple[str, str | None], CalleePolicy]:
    """The policy of every (workload, port) some other workload calls, in declaration order."""
    called = {(call.workload, called_port(spec, call)) for w in spec.workloads for call in w.calls}
    return {(w.name, port): _policy(spec, w) if port is None else _port_policy(spec, w, port)
            for w in spec.workloads for port in sorted({p for name, p in called if name == w.name}, key=lambda p: p or "")}


def edges(spec: Spec) -> tuple[Edge, ...]:
    """Every call in declaration order (callers in workload order, each caller's calls in its order)."""
    policies = callee_policies(spec)
    arrival = propagate(spec, {w.name: spec.workload_peak_rps(w.name) + w.load_rps for w in spec.workloads})
    declared = {(w.name, c.workload, called_port(spec, c)): (arrival[w.name] or 0.0) * c.ratio for w in spec.workloads for c in w.calls}
    result = []
    for caller in spec.workloads:
        for call in caller.calls:
            key = (caller.name, call.workload, called_port(spec, call))
            policy = policies[key[1:]]
            callers = {c: rate for (c, callee, port), rate in declared.items() if (callee, port) == key[1:]}
            share = _share(declared[key], callers)
            own = spec.workload(call.workload).traffic_policy
            limit_rps = None if policy.protocol == "tcp" else call.limit_rps or own.limit_rps or _per_minute(policy.capacity_rps * share)
            burst = call.burst if call.burst is not None else own.burst if own.burst is not None else math.ceil(limit_rps or 0)
            concurrency = call.max_concurrency or own.max_concurrency or _default_concurrency(policy, share)
            result.append(Edge(caller.name, call.workload, call.ratio, declared[key], limit_rps, burst, concurrency, policy))
    return tuple(result)


def _share(rate: float, callers: dict[str, float]) -> float:
    """A caller's part of the callee: its declared call rate over all callers'; equal parts when none is declared."""
    total = sum(callers.values())
    return rate / total if total > 0 else 1.0 / len(callers)


CONCURRENCY_HEADROOM = 2
"""A caller's default share of the callee's calls in flight, over its share of the rate: a burst or a slow spell holds
more calls at once than the average, and the upstream's max_conns still caps each replica (bench/results/eastwest.md:
at exactly its share, a quiet caller under CPU stalls hit its own cap)."""


def _default_concurrency(policy: CalleePolicy, share: float) -> int:
    """Calls in flight one caller may hold by default: twice its share of the callee's, at most all of them. A tcp
    caller's connections are its whole hold on the callee: there the callers' caps add up to no more than it takes."""
    if policy.protocol == "tcp":
        return max(1, math.floor(policy.concurrency * share))
    return max(1, min(policy.concurrency, math.ceil(CONCURRENCY_HEADROOM * policy.concurrency * share)))


def _per_minute(rps: float) -> float:
    """The largest rate nginx can state (whole requests per minute) not above `rps`; at least one a minute."""
    return max(1, math.floor(rps * 60)) / 60


def _policy(spec: Spec, workload: Workload) -> CalleePolicy:
    policy = workload.traffic_policy
    members = versions(spec, workload.name)
    total_weight = sum(weight for _, weight in members)
    # The split saturates when its first version does: λ·w_v/W ≤ Σμ of that version's replicas.
    capacity = min(float(sum((service_rate(spec.workload(v), r) for r in range(spec.workload(v).replicas)), Fraction(0)))
                   * total_weight / weight for v, weight in members)
    slowest = max(t for v, _ in members for t in spec.workload(v).replica_response_times_s())
    low, high = TIMEOUT_RANGE_S
    if policy.timeout_s is not None:
        timeout = policy.timeout_s
    elif workload.protocol == "tcp":  # an idle pooled connection is normal: the timeout is the workload's idle timeout
        timeout = workload.idle_timeout_s
    else:
        timeout = min(high, max(low, math.ceil(TIMEOUT_PER_RESPONSE_TIME * slowest * 1000) / 1000))
    retries = policy.retries
    return CalleePolicy(
        workload=workload.name,
        protocol=workload.protocol,
        port=int(workload.port or 0),  # validated: a called workload without `port:` names the port it is called on
        port_name=None,
        algorithm=policy.balancing,
        hash_key=policy.hash_key,
        timeout_s=timeout,
        connect_timeout_s=policy.connect_timeout_s,
        retries=Retries(retries.tries, tuple(retries.conditions), retries.non_idempotent),
        versions=members,
        capacity_rps=capacity,
        concurrency=min(spec.workload(v).max_concurrency * spec.workload(v).replicas * total_weight // weight for v, weight in members),
    )


def _port_policy(spec: Spec, workload: Workload, port: str) -> CalleePolicy:
    """Calls to another named port of `workload`: tcp to its own replicas (never a split's versions), idle timeout."""
    policy = workload.traffic_policy
    return CalleePolicy(
        workload=workload.name,
        protocol="tcp",
        port=workload.named_ports()[port],
        port_name=port,
        algorithm="least_conn",
        hash_key=None,
        timeout_s=workload.idle_timeout_s,
        connect_timeout_s=policy.connect_timeout_s,
        retries=Retries(policy.retries.tries, ()),
        versions=((workload.name, 1),),
        capacity_rps=float(sum((service_rate(workload, r) for r in range(workload.replicas)), Fraction(0))),
        concurrency=workload.max_concurrency * workload.replicas,
    )
