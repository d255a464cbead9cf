"""The four strategy scores, implemented once and literally: each is (1/N) Σ 1/x over its items.

- load balancing  LB = (1/n) Σ 1/t_i: t_i the declared response time (s) of backend replica i, every replica a proxy
                   balances (behind the gateway, or behind a service proxy: the calls' callees);
- routing         R  = (1/m) Σ 1/r_j: r_j the match steps nginx performs before selecting route j: every gateway route
                   (see plan) and every call route of a service proxy (one location: 1 step);
- flow control    F  = (1/k) Σ 1/f_l: f_l the requests/s limit of rule l: each gateway route's rate limit (no limit:
                   f = ∞, adds 0) and each call route's (the per-caller limit; where callers are not told apart, the
                   callee's total). A tcp call has no rate rule (its proxy caps connections) and adds no f_l;
- overall         O  = (1/p) Σ 1/s_o: s_o = max(1, reference_o / score_o) for each of the three strategies above.

s_o is dimensionless: 1.0 means strategy o meets its reference (LB: replicas answer within the latency budget
on average; R: every route is found in one step; F: routes are limited at or below the reference rate). It is
floored at 1 so that one strategy far better than its reference cannot hide a weak one: O lies in [0, 1], and
O = 1.0 means every strategy meets its reference. A strategy with score 0 (no route limited) has s = ∞.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from components.plan.build import Plan
from components.plan.graph import routed_workloads
from components.plan.mesh_limits import mesh_call_routes


@dataclass(frozen=True)
class Item:
    item: str
    value: float | None  # None = infinite (an unlimited route's f, a zero score's s)


@dataclass(frozen=True)
class Scores:
    load_balancing: float
    routing: float
    flow_control: float
    overall: float
    t_seconds: tuple[Item, ...]
    r: tuple[Item, ...]
    f_rps: tuple[Item, ...]
    s: tuple[Item, ...]


def mean_reciprocal(values: Sequence[float | None]) -> float:
    """(1/N) Σ 1/x — the one formula behind all four scores. An infinite x (None) contributes 0."""
    if not values:
        return 0.0
    return math.fsum(0.0 if v is None else 1.0 / v for v in values) / len(values)


def backend_replicas(plan: Plan) -> list[tuple[str, int, float]]:
    """Every replica some proxy balances — the gateway or a service proxy (or, under a mesh, the mesh's): (workload,
    replica, declared response time in seconds), each replica once, in workload order."""
    balanced = set(routed_workloads(plan.spec)) | {version for edge in plan.edges for version, _ in edge.policy.versions}
    return [
        (w.name, r, t)
        for w in plan.spec.workloads
        if w.name in balanced
        for r, t in enumerate(w.replica_response_times_s())
    ]


def call_routes(plan: Plan) -> list[tuple[str, int, float | None]]:
    """(route, r_j, f_l or None) of every call route: each route of a service proxy (one per caller, or one per callee
    where callers are not told apart) with its match steps and its rate limit (a tcp route has none: a connection
    cap is no rate, and adds no f_l). Under a mesh, which runs no netopt proxy, each call is one route of one step,
    limited at what the mesh enforces (`mesh_limits`: whole requests per second per pod)."""
    if plan.deployment.callers == "mesh":
        return mesh_call_routes(plan.spec, plan.edges)
    rows: list[tuple[str, int, float | None]] = []
    for proxy in plan.services:
        for route in proxy.routes:
            rate = proxy.limit("rate", route.rate_limit).rps if route.rate_limit else None
            rows.append((route.name, proxy.match_steps[route.name], rate))
    return rows


def compute_scores(plan: Plan) -> Scores:
    spec = plan.spec
    calls = call_routes(plan)
    t = tuple(Item(f"{name}/{replica}", seconds) for name, replica, seconds in backend_replicas(plan))
    r = tuple(Item(route.name, float(plan.gateway.match_steps[route.name])) for route in spec.routes)
    r += tuple(Item(name, float(steps)) for name, steps, _ in calls)
    f = tuple(Item(route.name, limit.rps if (limit := spec.rate_limit(route.rate_limit)) else None) for route in spec.routes)
    f += tuple(Item(name, rps) for name, _, rps in calls if rps is not None)  # every http and grpc call is limited
    lb = mean_reciprocal([i.value for i in t])
    routing = mean_reciprocal([i.value for i in r])
    flow = mean_reciprocal([i.value for i in f])
    references = {
        "load_balancing": (lb, 1000.0 / spec.scoring.latency_budget_ms),
        "routing": (routing, 1.0),
        "flow_control": (flow, 1.0 / spec.scoring.flow_reference_rps),
    }
    s = tuple(Item(name, max(1.0, reference / score) if score > 0 else None) for name, (score, reference) in references.items())
    return Scores(lb, routing, flow, mean_reciprocal([i.value for i in s]), t, r, f, s)

