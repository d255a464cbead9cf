"""Capacity model: predicted per-replica load, utilization and latency at the declared peak.

Each replica is an M/M/c queue: c = the workload's max_concurrency, mean service time t = its declared response
time, Poisson arrivals at the rate the balancing algorithm sends it (route peak × route split × the replica's
expected share, see `balancing.expected_shares`). Mean latency is t + Erlang-C waiting time
(`components.plan.queueing`, the model latency_optimal minimizes too); at utilization ≥ 1 the queue grows without bound
and the replica is flagged overloaded (latency None).

Calls between workloads (`workloads[].calls`) add to that: a workload's total arrival rate is what the gateway
sends it plus ratio × each caller's total (`graph.propagate`), and the called part spreads evenly over its
replicas (callers reach a workload through its DNS name or Service, not through the gateway's balancing). Every
replica of every workload gets a row, internal-only ones included. A workload fed from outside the gateway and the
calls (a queue consumer) declares that load as `load_rps`: it propagates to its callees like the gateway's, spreads
evenly over its replicas, and bounds its admitted load too (a consumer takes messages at its own pace; the queue, not
the consumer, absorbs what arrives faster).

"Admitted" load is what the rate limits let through at most (limit × clients for per-client keys); a route with
no limit admits unbounded load, so its replicas, and every workload they call, have no admitted-utilization
bound (None).
"""

from __future__ import annotations

from dataclasses import dataclass

from components.plan.balancing import ShareFunction, service_rate, share_function
from components.plan.build import Plan
from components.plan.graph import propagate
from components.plan.queueing import mean_latency_s
from components.spec.schema import Route, Spec, Workload


@dataclass(frozen=True)
class ReplicaLoad:
    workload: str
    replica: int
    service_rate_rps: float
    offered_rps: float
    from_calls_rps: float
    utilization: float
    mean_latency_ms: float | None
    overloaded: bool
    admitted_utilization: float | None
    from_load_rps: float = 0.0


@dataclass(frozen=True)
class RouteLoad:
    route: str
    peak_rps: float
    clients: int
    rate_limit: str | None
    limit_rps: float | None
    burst: int | None
    key: str | None
    admitted_max_rps: float | None
    admits_peak: bool


@dataclass(frozen=True)
class WorkloadLoad:
    """One workload at the declared peak: what reaches it from the gateway and from its callers, and how it copes."""

    workload: str
    arrival_rps: float
    from_gateway_rps: float
    from_calls_rps: float
    peak_utilization: float
    mean_latency_ms: float | None
    admits_peak: bool
    from_load_rps: float = 0.0


@dataclass(frozen=True)
class Capacity:
    replicas: tuple[ReplicaLoad, ...]
    routes: tuple[RouteLoad, ...]
    workloads: tuple[WorkloadLoad, ...] = ()

    def peak_utilization(self) -> dict[str, float]:
        peaks: dict[str, float] = {}
        for row in self.replicas:
            peaks[row.workload] = max(peaks.get(row.workload, 0.0), row.utilization)
        return peaks

    def saturates_first(self) -> WorkloadLoad | None:
        """The loaded workload with the highest utilization: the first to saturate as every peak grows alike."""
        loaded = [w for w in self.workloads if w.arrival_rps > 0]
        return max(loaded, key=lambda w: w.peak_utilization) if loaded else None


def admitted_max_rps(route: Route, spec: Spec) -> float | None:
    limit = spec.rate_limit(route.rate_limit)
    if limit is None:
        return None
    return limit.rps if limit.key == "global" else limit.rps * spec.peak(route.name).clients


def compute_capacity(plan: Plan, shares: ShareFunction | None = None) -> Capacity:
    """The capacity table of a plan; `shares` defaults to what the plan's balancing mode expects (`share_function`),
    another is given to ask "what if" (an algorithm's, or the shares a log measured)."""
    spec = plan.spec
    shares = shares or share_function(plan.balancing)
    offered: dict[tuple[str, int], float] = {}
    admitted: dict[tuple[str, int], float | None] = {}
    route_rows = []
    for route in spec.routes:
        peak = spec.peak(route.name)
        cap = admitted_max_rps(route, spec)
        for workload, replica, share in shares(route, spec):
            key = (workload, replica)
            offered[key] = offered.get(key, 0.0) + peak.peak_rps * float(share)
            before = admitted.get(key, 0.0)
            admitted[key] = None if before is None or cap is None else before + cap * float(share)
        route_rows.append(_route_row(route, spec, cap))
    called, called_admitted = _called_rates(spec, offered, admitted)
    replica_rows = []
    for served_by in spec.workloads:
        n = served_by.replicas
        for replica in range(n):
            key = (served_by.name, replica)
            from_calls = called[served_by.name] / n
            from_load = served_by.load_rps / n
            rate = offered.get(key, 0.0) + from_load + from_calls
            bound = admitted.get(key, 0.0)
            extra = called_admitted[served_by.name]
            bound = None if bound is None or extra is None else bound + from_load + extra / n
            replica_rows.append(_replica_row(served_by, replica, rate, from_calls, bound, from_load))
    return Capacity(tuple(replica_rows), tuple(route_rows), _workload_rows(spec, replica_rows))


def _route_row(route: Route, spec: Spec, cap: float | None) -> RouteLoad:
    peak = spec.peak(route.name)
    limit = spec.rate_limit(route.rate_limit)
    return RouteLoad(
        route=route.name,
        peak_rps=peak.peak_rps,
        clients=peak.clients,
        rate_limit=route.rate_limit,
        limit_rps=limit.rps if limit else None,
        burst=limit.burst if limit else None,
        key=limit.key if limit else None,
        admitted_max_rps=cap,
        admits_peak=cap is None or cap >= peak.peak_rps,
    )


def _called_rates(spec: Spec, offered: dict[tuple[str, int], float],
                  admitted: dict[tuple[str, int], float | None]) -> tuple[dict[str, float], dict[str, float | None]]:
    """Per workload, the rate its callers send it (declared and admitted), propagated along the call graph."""
    entry: dict[str, float | None] = {w.name: w.load_rps for w in spec.workloads if w.load_rps}
    entry_admitted: dict[str, float | None] = dict(entry)
    for (workload, _), rate in offered.items():
        entry[workload] = (entry.get(workload) or 0.0) + rate
    for (workload, _), bound in admitted.items():
        before = entry_admitted.get(workload, 0.0)
        entry_admitted[workload] = None if before is None or bound is None else before + bound
    total = propagate(spec, entry)
    total_admitted = propagate(spec, entry_admitted)
    called = {name: (rate or 0.0) - (entry.get(name) or 0.0) for name, rate in total.items()}
    called_admitted: dict[str, float | None] = {}
    for name, bound in total_admitted.items():
        before = entry_admitted.get(name, 0.0)
        called_admitted[name] = None if bound is None or before is None else bound - before
    return called, called_admitted


def _replica_row(served_by: Workload, replica: int, rate: float, from_calls: float, bound: float | None, from_load: float) -> ReplicaLoad:
    mu = float(service_rate(served_by, replica))
    latency = mean_latency_s(served_by.max_concurrency, served_by.replica_response_times_s()[replica], rate)
    return ReplicaLoad(
        workload=served_by.name,
        replica=replica,
        service_rate_rps=mu,
        offered_rps=rate,
        from_calls_rps=from_calls,
        utilization=rate / mu,
        mean_latency_ms=None if latency is None else latency * 1000.0,
        overloaded=latency is None,
        admitted_utilization=None if bound is None else bound / mu,
        from_load_rps=from_load,
    )


def _workload_rows(spec: Spec, replica_rows: list[ReplicaLoad]) -> tuple[WorkloadLoad, ...]:
    rows = []
    for workload in spec.workloads:
        mine = [r for r in replica_rows if r.workload == workload.name]
        arrival = sum(r.offered_rps for r in mine)
        called = sum(r.from_calls_rps for r in mine)
        loaded = sum(r.from_load_rps for r in mine)
        latency = None
        if not any(r.overloaded for r in mine):  # weighted by arrivals: what an average request sees (idle: plain mean)
            weights = [r.offered_rps if arrival > 0 else 1.0 for r in mine]
            latency = sum((r.mean_latency_ms or 0.0) * w for r, w in zip(mine, weights, strict=True)) / sum(weights)
        rows.append(WorkloadLoad(
            workload=workload.name,
            arrival_rps=arrival,
            from_gateway_rps=arrival - called - loaded,
            from_calls_rps=called,
            peak_utilization=max((r.utilization for r in mine), default=0.0),
            mean_latency_ms=latency,
            admits_peak=not any(r.overloaded for r in mine),
            from_load_rps=loaded,
        ))
    return tuple(rows)
