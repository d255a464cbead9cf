"""The one queue model: each replica is an M/M/c queue (c = max_concurrency, mean service time t = its response time).

The capacity table (`components.plan.capacity`) reads its mean latency from here and the latency_optimal split
(`components.plan.balancing`) minimizes the same mean latency, so the split and the table never disagree about what a
replica does with the load it gets. Pure floats: the callers decide how exact their results must be.
"""

from __future__ import annotations

import math


def erlang_b(servers: int, offered_erlangs: float) -> float:
    """Blocking probability of c servers offered a erlangs, by the stable recursion B_k = a·B_{k-1} / (k + a·B_{k-1})."""
    b = 1.0
    for k in range(1, servers + 1):
        b = offered_erlangs * b / (k + offered_erlangs * b)
    return b


def _erlang_c_from_b(servers: int, offered_erlangs: float, b: float) -> float:
    rho = offered_erlangs / servers
    return b / (1.0 - rho * (1.0 - b))


def erlang_c_wait_probability(servers: int, offered_erlangs: float) -> float:
    """Probability an arrival waits in an M/M/c queue (Erlang C), from Erlang B."""
    return _erlang_c_from_b(servers, offered_erlangs, erlang_b(servers, offered_erlangs))


def mean_latency_s(servers: int, service_time_s: float, arrival_rps: float) -> float | None:
    """Mean response time W = t + Erlang-C wait; None at or past saturation (λ·t ≥ c), where the queue grows forever."""
    offered = arrival_rps * service_time_s
    if offered >= servers:
        return None
    if offered == 0:
        return service_time_s
    wait = erlang_c_wait_probability(servers, offered) * service_time_s / (servers - offered)
    return service_time_s + wait


def marginal_latency_s(servers: int, service_time_s: float, arrival_rps: float) -> float:
    """d/dλ [λ·W(λ)]: what one more request per second adds to the total time in the replica (∞ at saturation).

    λ·W is the mean number in the system, L = a + Lq(a) with a = λ·t and Lq = C·a/(c − a), so the derivative is
    t·(1 + Lq'(a)), with Erlang B's derivative B' = B·(c/a − 1 + B). It equals t at λ = 0 (a lone request never
    waits) and grows without bound towards c/t: L is convex in λ, which is what lets the split bisect on it.
    """
    c, a = servers, arrival_rps * service_time_s
    if a >= c:
        return math.inf
    if a == 0:
        return service_time_s
    b = erlang_b(c, a)
    db = b * (c / a - 1.0 + b)
    d = 1.0 - (a / c) * (1.0 - b)
    dd = -(1.0 - b) / c + (a / c) * db
    erlang_c = b / d
    dc = (db * d - b * dd) / (d * d)
    dlq = (dc * a * (c - a) + erlang_c * c) / ((c - a) ** 2)
    return service_time_s * (1.0 + dlq)
