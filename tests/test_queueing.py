"""The M/M/c queue model against the textbook closed forms, written here from the definitions (not from queueing.py).

Erlang B: B(c, a) = (a^c / c!) / Σ_{k=0..c} a^k / k!. Erlang C: C(c, a) = c·B / (c − a·(1 − B)). Mean response time
W = t + C·t / (c − a), a = λ·t offered erlangs; the queue is unstable from a = c on (no finite mean).
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from components.plan.queueing import erlang_b, erlang_c_wait_probability, marginal_latency_s, mean_latency_s


def _erlang_b(c: int, a: Fraction) -> Fraction:
    terms = [a**k / math.factorial(k) for k in range(c + 1)]
    return terms[-1] / sum(terms)


def _erlang_c(c: int, a: Fraction) -> Fraction:
    b = _erlang_b(c, a)
    return c * b / (c - a * (1 - b))


def _mean_number(c: int, t: Fraction, rate: Fraction) -> Fraction:
    """L = λ·W, exact."""
    a = rate * t
    return rate * (t + _erlang_c(c, a) * t / (c - a))


@pytest.mark.parametrize(("c", "a"), [(1, Fraction(1, 2)), (2, Fraction(3, 2)), (8, Fraction(6)), (32, Fraction(31, 2)), (3, Fraction(0))])
def test_erlang_b_and_c_are_the_textbook_sums(c: int, a: Fraction) -> None:
    assert erlang_b(c, float(a)) == pytest.approx(float(_erlang_b(c, a)), rel=1e-12)
    if a:
        assert erlang_c_wait_probability(c, float(a)) == pytest.approx(float(_erlang_c(c, a)), rel=1e-12)


def test_one_server_is_m_m_1() -> None:
    """M/M/1 (Kleinrock): W = 1 / (μ − λ); t = 20 ms (μ = 50/s) at λ = 40/s waits 100 ms in all."""
    assert mean_latency_s(1, 0.020, 40.0) == pytest.approx(0.100, rel=1e-12)
    assert mean_latency_s(1, 0.020, 0.0) == 0.020


@pytest.mark.parametrize(("c", "t", "rate"), [(2, Fraction(1, 10), Fraction(15)), (8, Fraction(1, 100), Fraction(600)),
                                              (4, Fraction(1, 20), Fraction(1)), (2, Fraction(1, 10), Fraction(10))])  # a = 1 exactly
def test_mean_latency_is_service_time_plus_the_erlang_c_wait(c: int, t: Fraction, rate: Fraction) -> None:
    a = rate * t
    expected = t + _erlang_c(c, a) * t / (c - a)
    assert mean_latency_s(c, float(t), float(rate)) == pytest.approx(float(expected), rel=1e-12)


@pytest.mark.parametrize(("c", "t"), [(1, 0.02), (2, 0.1), (8, 0.01), (100, 0.5)])
def test_exact_saturation_has_no_finite_latency(c: int, t: float) -> None:
    """λ·t = c exactly: the queue grows without bound. (Taken as finite, the Erlang C wait would divide by c − a = 0.)"""
    assert mean_latency_s(c, t, c / t) is None
    assert marginal_latency_s(c, t, c / t) == math.inf
    assert mean_latency_s(c, t, 2 * c / t) is None and marginal_latency_s(c, t, 2 * c / t) == math.inf
    just_below = mean_latency_s(c, t, c / t * (1 - 1e-6))
    assert just_below is not None and just_below > t


@pytest.mark.parametrize(("c", "t", "rate"), [(1, Fraction(1, 50), Fraction(30)), (2, Fraction(1, 10), Fraction(12)),
                                              (8, Fraction(1, 100), Fraction(500)), (8, Fraction(1, 100), Fraction(790))])
def test_marginal_latency_is_the_derivative_of_the_mean_number_in_the_system(c: int, t: Fraction, rate: Fraction) -> None:
    """d(λ·W)/dλ by a central difference of the exact L(λ) (step 1e-6 of the rate, exact rationals: no rounding)."""
    h = rate * Fraction(1, 10**6)
    expected = (_mean_number(c, t, rate + h) - _mean_number(c, t, rate - h)) / (2 * h)
    assert marginal_latency_s(c, float(t), float(rate)) == pytest.approx(float(expected), rel=1e-6)
    assert marginal_latency_s(c, float(t), 0.0) == float(t), "a lone request never waits"
