"""The one queue model: each replica is an M/M/c queue (c = max_concurrency, mean service time t = its response time).

The capacity table (`components.plan.capacity`) reads its mean latency from here and the latency_optimal split
(`components.plan.balancing`) minimizes the same mean latency, so the split and the table never disagree about what a
replica does with the load it gets. Pure floats: the callers decide how exact their results must be.
"""

from __future__ import annotations

import itertools
import math

RECURSION_STEPS = 20_000
"""Most steps of the Erlang B recursion taken before the integral takes over (about 5 ms of Python)."""


def erlang_b(servers: int, offered_erlangs: float) -> float:
    """Blocking probability of c servers offered a erlangs, in time independent of c (max_concurrency may be 10⁹).

    The stable recursion B_k = a·B_{k-1} / (k + a·B_{k-1}) runs for up to RECURSION_STEPS steps and stops where B
    underflows to 0.0 (every later step gives 0.0 again, so the result is the full recursion's, bit for bit): with
    a modest load that is a few hundred steps whatever c is. Only when c and a are both large does
    `_erlang_b_integral` compute 1/B = ∫₀^∞ e^{-t} (1 + t/a)^c dt instead, in constant time.
    """
    b = 1.0
    for k in range(1, min(servers, RECURSION_STEPS) + 1):
        b = offered_erlangs * b / (k + offered_erlangs * b)
        if b == 0.0:
            return 0.0
    if servers <= RECURSION_STEPS:
        return b
    return _erlang_b_integral(servers, offered_erlangs)


_LEVELS = tuple(k * k / 2 for k in range(1, 13))
"""Where the integrand's panels end, as drops of its log below the peak: one standard deviation each near the
peak, and the last at e^-72 ≈ 5·10⁻³², past which the rest of the integral cannot change a double."""


def _gauss_legendre(n: int) -> tuple[tuple[float, float], ...]:
    """Nodes and weights of n-point Gauss–Legendre quadrature on [-1, 1] (Newton on the Legendre polynomial)."""
    rule = []
    for i in range(1, n + 1):
        x = math.cos(math.pi * (i - 0.25) / (n + 0.5))
        for _ in range(100):
            p0, p1 = 1.0, x
            for k in range(2, n + 1):
                p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
            derivative = n * (x * p1 - p0) / (x * x - 1)
            step = p1 / derivative
            x -= step
            if abs(step) < 1e-16:
                break
        rule.append((x, 2.0 / ((1 - x * x) * derivative * derivative)))
    return tuple(rule)


_RULE = _gauss_legendre(20)


def _log1pmx(x: float) -> float:
    """log(1 + x) − x without the cancellation of computing it that way for small x."""
    if abs(x) > 0.25:
        return math.log1p(x) - x
    total, power, k = 0.0, x, 1
    while True:
        k += 1
        power *= -x
        term = power / k
        total += term
        if abs(term) <= 1e-17 * abs(total):
            return total


def _erlang_b_integral(servers: int, offered: float) -> float:
    """Erlang B from 1/B = ∫₀^∞ e^{-t} (1 + t/a)^c dt (exact for every c ≥ 0, a > 0), by Gauss–Legendre quadrature.

    The integrand is log-concave with its peak at t* = max(0, c − a). Written around the peak, t = t* + u and
    m = a + t* = max(a, c), its log drops by Δh(u) = c·log1pmx(u/m) + u·(c/m − 1), free of cancellation; the
    integral is e^{h(t*)}·J with J = ∫ e^{Δh(u)} du over u ≥ −t*, cut into panels where Δh falls by k²/2
    (k = 1..12), each integrated with 20 points: about 1,500 evaluations, whatever c and a are.
    """
    c, a = float(servers), offered
    if a <= 0.0:
        return 0.0
    m = max(a, c)
    t_star = m - a

    def dh(u: float) -> float:
        return c * _log1pmx(u / m) + u * (c / m - 1.0)

    def boundaries(direction: float) -> list[float]:
        points, inside = [0.0], 0.0
        for level in _LEVELS:
            if direction < 0 and (t_star == 0.0 or dh(-t_star) >= -level):
                if t_star > 0.0:
                    points.append(-t_star)
                break
            width = math.sqrt(m)
            outside = max(-t_star, inside - width) if direction < 0 else inside + width
            while dh(outside) > -level:
                inside, width = outside, width * 2
                outside = max(-t_star, inside + direction * width) if direction < 0 else inside + width
            for _ in range(64):
                middle = (inside + outside) / 2
                if dh(middle) > -level:
                    inside = middle
                else:
                    outside = middle
            inside = outside
            points.append(outside)
        return points

    left, right = boundaries(-1.0)[::-1], boundaries(1.0)
    edges = left + right[1:]
    integral = 0.0
    for lo, hi in itertools.pairwise(edges):
        half, mid = (hi - lo) / 2, (hi + lo) / 2
        integral += half * sum(w * math.exp(dh(mid + half * x)) for x, w in _RULE)
    delta = (c - a) / a
    peak_log = 0.0 if c <= a else c * _log1pmx(delta) + (c - a) * delta if abs(delta) <= 0.25 else c * math.log(c / a) - (c - a)
    return math.exp(-peak_log - math.log(integral))


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
