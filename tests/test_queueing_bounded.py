"""Erlang B in bounded time, checked against an independent arbitrary-precision reference (mpmath).

The reference is B(c, a) = a^c e^-a / Γ(c+1, a), the Poisson pmf over the cdf written with the upper incomplete
gamma function, computed by mpmath at 40 digits: no line of it shares code or method with `queueing.erlang_b`.
"""

from __future__ import annotations

import math

import mpmath  # type: ignore[import-untyped]  # mpmath ships no type information
import pytest

from components.plan import queueing
from components.plan.queueing import erlang_b, mean_latency_s

mpmath.mp.dps = 40


def reference(servers: int, offered: float) -> float:
    c, a = mpmath.mpf(servers), mpmath.mpf(offered)
    return float(mpmath.exp(c * mpmath.log(a) - a) / mpmath.gammainc(c + 1, a))


def _loads(c: int) -> list[float]:
    return [0.01, 0.5, c * 0.1, c * 0.5, c * 0.9, c - math.sqrt(c), float(c), c + math.sqrt(c), c * 1.1, c * 2, c * 10]


SMALL_AND_MEDIUM = [(c, a) for c in (1, 2, 5, 30, 100, 1000, 20_000, 20_001, 50_000, 100_000) for a in _loads(c)]


@pytest.mark.parametrize(("servers", "offered"), SMALL_AND_MEDIUM)
def test_erlang_b_matches_the_incomplete_gamma_reference(servers: int, offered: float) -> None:
    expected = reference(servers, offered)
    assert erlang_b(servers, offered) == pytest.approx(expected, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize(("servers", "offered"), [(c, a) for c in (30, 1000, 20_000) for a in _loads(c)])
def test_the_integral_alone_matches_the_reference_where_the_recursion_would_run(servers: int, offered: float) -> None:
    """The large-c path checked where the exact recursion is affordable too: the two methods and mpmath agree."""
    expected = reference(servers, offered)
    assert queueing._erlang_b_integral(servers, offered) == pytest.approx(expected, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize(("servers", "offered"), [(10**7, 10**7 - 3000), (10**8, 10**8 + 10**4), (10**9, 10**9 - 10**5)])
def test_large_c_near_saturation_matches_the_reference(servers: int, offered: float) -> None:
    assert erlang_b(servers, offered) == pytest.approx(reference(servers, offered), rel=1e-12)


def test_a_huge_pool_at_light_and_at_overload() -> None:
    """max_concurrency 10⁹ (the old recursion took 10⁹ steps a call): a light load never blocks, B underflows to
    exactly 0.0 as the full recursion would; far past saturation B tends to 1 − c/a (Erlang's overload limit)."""
    assert erlang_b(10**9, 2.4) == 0.0
    assert mean_latency_s(10**9, 0.025, 50.0) == 0.025  # a lone request never waits
    assert erlang_b(10**9, 5e9) == pytest.approx(1 - 1e9 / 5e9, rel=1e-6)
