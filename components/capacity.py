"""Capacity model: predicted per-replica load, utilization and latency at the declared peak.

Each replica is an M/M/c queue: c = the workload's max_concurrency, mean service time t = its declared response
time, Poisson arrivals at the rate the balancing algorithm sends it (route peak × route split × the replica's
expected share, see `balancing.expected_shares`). Mean latency is t + Erlang-C waiting time; at utilization ≥ 1
the queue grows without bound and the replica is flagged overloaded (latency None).

"Admitted" load is what the rate limits let through at most (limit × clients for per-client keys); a route with
no limit admits unbounded load, so its replicas have no admitted-utilization bound (None).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from components.balancing import expected_shares, service_rate
from components.plan import Plan
from components.spec import Route, Spec

ShareFunction = Callable[[Route, Spec], list[tuple[str, int, Fraction]]]


@dataclass(frozen=True)
class ReplicaLoad:
    workload: str
    replica: int
    service_rate_rps: float
    offered_rps: float
    utilization: float
    mean_latency_ms: float | None
    overloaded: bool
    admitted_utilization: float | None


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
class Capacity:
    replicas: tuple[ReplicaLoad, ...]
    routes: tuple[RouteLoad, ...]

    def peak_utilization(self) -> dict[str, float]:
        peaks: dict[str, float] = {}
        for row in self.replicas:
            peaks[row.workload] = max(peaks.get(row.workload, 0.0), row.utilization)
        return peaks


def erlang_c_wait_probability(servers: int, offered_erlangs: float) -> float:
    """Probability an arrival waits in an M/M/c queue (Erlang C), via the stable Erlang-B recursion."""
    b = 1.0
    for k in range(1, servers + 1):
        b = offered_erlangs * b / (k + offered_erlangs * b)
    rho = offered_erlangs / servers
    return b / (1.0 - rho * (1.0 - b))


def mean_latency_s(servers: int, service_time_s: float, arrival_rps: float) -> float | None:
    offered = arrival_rps * service_time_s
    if offered >= servers:
        return None
    if offered == 0:
        return service_time_s
    wait = erlang_c_wait_probability(servers, offered) * service_time_s / (servers - offered)
    return service_time_s + wait


def admitted_max_rps(route: Route, spec: Spec) -> float | None:
    limit = spec.rate_limit(route.rate_limit)
    if limit is None:
        return None
    return limit.rps if limit.key == "global" else limit.rps * spec.peak(route.name).clients


def compute_capacity(plan: Plan, shares: ShareFunction = expected_shares) -> Capacity:
    spec = plan.spec
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
        limit = spec.rate_limit(route.rate_limit)
        route_rows.append(RouteLoad(
            route=route.name,
            peak_rps=peak.peak_rps,
            clients=peak.clients,
            rate_limit=route.rate_limit,
            limit_rps=limit.rps if limit else None,
            burst=limit.burst if limit else None,
            key=limit.key if limit else None,
            admitted_max_rps=cap,
            admits_peak=cap is None or cap >= peak.peak_rps,
        ))
    replica_rows = []
    for (workload_name, replica), rate in offered.items():
        served_by = spec.workload(workload_name)
        mu = float(service_rate(served_by, replica))
        latency = mean_latency_s(served_by.max_concurrency, served_by.replica_response_times_s()[replica], rate)
        bound = admitted[(workload_name, replica)]
        replica_rows.append(ReplicaLoad(
            workload=workload_name,
            replica=replica,
            service_rate_rps=mu,
            offered_rps=rate,
            utilization=rate / mu,
            mean_latency_ms=None if latency is None else latency * 1000.0,
            overloaded=latency is None,
            admitted_utilization=None if bound is None else bound / mu,
        ))
    order = {w.name: i for i, w in enumerate(spec.workloads)}
    replica_rows.sort(key=lambda row: (order[row.workload], row.replica))
    return Capacity(tuple(replica_rows), tuple(route_rows))
