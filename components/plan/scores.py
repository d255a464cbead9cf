"""The four strategy scores, implemented once and literally: each is (1/N) Σ 1/x over its items.

- load balancing  LB = (1/n) Σ 1/t_i: t_i the declared response time (s) of backend replica i behind the gateway;
- routing         R  = (1/m) Σ 1/r_j: r_j the match steps nginx performs before selecting route j (see plan);
- flow control    F  = (1/k) Σ 1/f_l: f_l the requests/s limit of exposed route l (no limit: f = ∞, adds 0);
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
    """Every replica behind the gateway: (workload, replica, declared response time in seconds)."""
    return [
        (name, r, t)
        for name in routed_workloads(plan.spec)
        for r, t in enumerate(plan.spec.workload(name).replica_response_times_s())
    ]


def compute_scores(plan: Plan) -> Scores:
    spec = plan.spec
    t = tuple(Item(f"{name}/{replica}", seconds) for name, replica, seconds in backend_replicas(plan))
    r = tuple(Item(route.name, float(plan.match_steps[route.name])) for route in spec.routes)
    f = tuple(Item(route.name, limit.rps if (limit := spec.rate_limit(route.rate_limit)) else None) for route in spec.routes)
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
