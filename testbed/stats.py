"""Small statistics helpers (no scipy needed; scipy is used when importable)."""
from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["chi2_sf", "chi_square", "median", "spread"]


def _gamma_p_series(a: float, x: float) -> float:
    term = total = 1.0 / a
    n = a
    for _ in range(10000):
        n += 1
        term *= x / n
        total += term
        if abs(term) < abs(total) * 1e-15:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_q_cf(a: float, x: float) -> float:
    # Lentz's continued fraction for the upper incomplete gamma (Numerical Recipes gcf).
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def chi2_sf(x: float, dof: int) -> float:
    """P(X >= x) for a chi-square variable with ``dof`` degrees of freedom."""
    try:  # pragma: no cover - scipy optional
        from scipy.stats import chi2  # type: ignore

        return float(chi2.sf(x, dof))
    except Exception:
        pass
    if x <= 0:
        return 1.0
    a, hx = dof / 2.0, x / 2.0
    if hx < a + 1.0:
        return 1.0 - _gamma_p_series(a, hx)
    return _gamma_q_cf(a, hx)


def chi_square(observed: Sequence[float], expected_shares: Sequence[float]) -> tuple[float, float]:
    """Pearson goodness of fit of ``observed`` counts to ``expected_shares``
    (normalized here). Returns ``(statistic, p_value)``."""
    n = sum(observed)
    total = sum(expected_shares)
    stat = 0.0
    for o, s in zip(observed, expected_shares, strict=True):
        e = n * s / total
        stat += (o - e) ** 2 / e
    return stat, chi2_sf(stat, len(observed) - 1)


def median(values: Sequence[float]) -> float:
    v = sorted(values)
    n = len(v)
    if n == 0:
        return float("nan")
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def spread(values: Sequence[float]) -> tuple[float, float]:
    """(min, max)."""
    return (min(values), max(values)) if values else (float("nan"), float("nan"))
