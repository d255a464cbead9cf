"""Capacity model: predicted per-replica load, utilization and latency at the declared peak.

Each replica is an M/M/c queue: c = the workload's max_concurrency, mean service time t = its declared response
time, Poisson arrivals at the rate the balancing algorithm sends it (route peak × route split × the replica's
expected share, see `balancing.expected_shares`). Mean latency is t + Erlang-C waiting time
(`components.plan.queueing`, the model latency_optimal minimizes too); at utilization ≥ 1 the queue grows without bound
and the replica is flagged overloaded (latency None).

Calls between workloads (`workloads[].calls`) add to that: a workload's total arrival rate is what the gateway
sends it plus ratio × each caller's total (`graph.propagate`; a split callee's versions by weight), and the called
part spreads over its replicas as its service proxy's balancing does (least_conn in proportion to service rate,
latency_optimal by its split; evenly behind a Service). Every replica of every workload gets a row, internal-only
ones included. A workload fed from outside the gateway and the calls (a queue consumer) declares that load as
`load_rps`: it propagates to its callees like the gateway's, spreads evenly over its replicas, and bounds its admitted
load too (a consumer takes messages at its own pace; the queue, not the consumer, absorbs what arrives faster).

"Admitted" load is what the rate limits let through at most (limit × clients for per-client keys); a route with
no limit admits unbounded load. Calls are admitted up to each caller's limit at the callee's proxy (or what the
caller itself admits times the ratio, if less), so every http and grpc callee has an admitted bound; a tcp callee,
whose proxy caps connections but not requests, has one only where its callers do. `edges` checks each per-caller
limit against the callee: whether it lets the caller's declared calls through, what share of the callee's
capacity it claims, and whether the callers' limits together fit what the callee serves.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.plan.balancing import ShareFunction, called_shares, service_rate, share_function
from components.plan.build import Plan
from components.plan.graph import call_order, propagate, versions
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
class CallLoad:
    """One call's limit against its callee: `admits_declared` (the limit lets the declared calls through) and
    `callers_fit` (the limits of all the callee's callers add up to no more than the callee serves)."""

    caller: str
    callee: str
    declared_rps: float
    limit_rps: float | None
    capacity_share: float | None  # limit / the callee's capacity
    admits_declared: bool
    callers_fit: bool


@dataclass(frozen=True)
class Capacity:
    replicas: tuple[ReplicaLoad, ...]
    routes: tuple[RouteLoad, ...]
    workloads: tuple[WorkloadLoad, ...] = ()
    edges: tuple[CallLoad, ...] = ()

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
    called, called_admitted = _called_rates(plan, offered, admitted)
    replica_rows = []
    for served_by in spec.workloads:
        parts = called_shares(plan, served_by.name, called[served_by.name])
        for replica, part in enumerate(parts):
            key = (served_by.name, replica)
            from_calls = called[served_by.name] * float(part)
            from_load = served_by.load_rps / served_by.replicas
            rate = offered.get(key, 0.0) + from_load + from_calls
            bound = admitted.get(key, 0.0)
            extra = called_admitted[served_by.name]
            bound = None if bound is None or extra is None else bound + from_load + extra * float(part)
            replica_rows.append(_replica_row(served_by, replica, rate, from_calls, bound, from_load))
    return Capacity(tuple(replica_rows), tuple(route_rows), _workload_rows(spec, replica_rows), _edge_rows(plan))


def _edge_rows(plan: Plan) -> tuple[CallLoad, ...]:
    """Each call's limit against its callee. The callers fit when their rate limits add up to no more than the callee
    serves (a tcp callee: their connection caps to no more than its replicas hold)."""
    rates: dict[str, float] = {}
    connections: dict[str, int] = {}
    for edge in plan.edges:
        rates[edge.callee] = rates.get(edge.callee, 0.0) + (edge.limit_rps or 0.0)
        connections[edge.callee] = connections.get(edge.callee, 0) + edge.max_concurrency
    rows = []
    for edge in plan.edges:
        capacity = edge.policy.capacity_rps
        fits = (connections[edge.callee] <= edge.policy.concurrency if edge.policy.protocol == "tcp"
                else rates[edge.callee] <= capacity * (1 + 1e-9))
        rows.append(CallLoad(
            caller=edge.caller,
            callee=edge.callee,
            declared_rps=edge.declared_rps,
            limit_rps=edge.limit_rps,
            capacity_share=None if edge.limit_rps is None else edge.limit_rps / capacity,
            admits_declared=edge.limit_rps is None or edge.limit_rps >= edge.declared_rps,
            callers_fit=fits,
        ))
    return tuple(rows)


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


def _called_rates(plan: Plan, offered: dict[tuple[str, int], float],
                  admitted: dict[tuple[str, int], float | None]) -> tuple[dict[str, float], dict[str, float | None]]:
    """Per workload, the rate its callers send it (declared and admitted), propagated along the call graph: a call is
    admitted up to the caller's admitted rate × ratio, and never past its limit at the callee's proxy. A queue
    consumer's `load_rps` enters like the gateway's, declared and admitted alike."""
    spec = plan.spec
    entry: dict[str, float | None] = {w.name: w.load_rps for w in spec.workloads if w.load_rps}
    for (workload, _), rate in offered.items():
        entry[workload] = (entry.get(workload) or 0.0) + rate
    total = propagate(spec, entry)
    called = {name: (rate or 0.0) - (entry.get(name) or 0.0) for name, rate in total.items()}
    from_gateway: dict[str, float | None] = {w.name: w.load_rps for w in spec.workloads}  # and from its queue
    for (workload, _), bound in admitted.items():
        before = from_gateway[workload]
        from_gateway[workload] = None if before is None or bound is None else before + bound
    limit = {(edge.caller, edge.callee): edge.limit_rps for edge in plan.edges}
    called_admitted: dict[str, float | None] = {w.name: 0.0 for w in spec.workloads}
    for name in call_order(spec):
        inflow = called_admitted[name]
        own = from_gateway[name]
        arriving = None if inflow is None or own is None else inflow + own
        for call in spec.workload(name).calls:
            cap = limit[(name, call.workload)]
            sent = None if arriving is None else arriving * call.ratio
            sent = cap if sent is None else sent if cap is None else min(sent, cap)
            members = versions(spec, call.workload)
            weights = sum(weight for _, weight in members)
            for version, weight in members:
                before = called_admitted[version]
                called_admitted[version] = None if before is None or sent is None else before + sent * weight / weights
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
    by_workload: dict[str, list[ReplicaLoad]] = {}
    for row in replica_rows:
        by_workload.setdefault(row.workload, []).append(row)
    for workload in spec.workloads:
        mine = by_workload.get(workload.name, [])
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
