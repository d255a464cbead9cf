"""The four scores against hand-computed values, and their edge cases."""

from __future__ import annotations

import math
from typing import Any

import pytest

from components.plan.scores import compute_scores, mean_reciprocal
from components.spec.validation import parse_spec
from tests.conftest import plan_of


def test_mean_reciprocal_by_hand() -> None:
    assert mean_reciprocal([0.05, 0.02]) == pytest.approx((20 + 50) / 2)
    assert mean_reciprocal([2.0, None]) == pytest.approx(0.25)  # an unlimited item contributes 0
    assert mean_reciprocal([]) == 0.0


def test_minimal_stack_scores_by_hand(minimal: dict[str, Any]) -> None:
    # Replicas behind the gateway: api/0, api/1 (50 ms) and web/0 (20 ms).
    # Routes: /api/ prefix and / prefix, no regex anywhere: each found in 1 step.
    # Flow: api limited at 10 r/s, web unlimited. References: 100 ms budget, 1000 r/s.
    scores = compute_scores(plan_of(parse_spec(minimal)))
    lb = (1 / 0.05 + 1 / 0.05 + 1 / 0.02) / 3
    assert scores.load_balancing == pytest.approx(lb)
    assert scores.routing == pytest.approx(1.0)
    assert scores.flow_control == pytest.approx((1 / 10 + 0) / 2)
    s_lb = max(1.0, 10.0 / lb)
    s_r = 1.0
    s_f = max(1.0, (1 / 1000) / 0.05)
    assert [i.value for i in scores.s] == pytest.approx([s_lb, s_r, s_f])
    assert scores.overall == pytest.approx((1 / s_lb + 1 / s_r + 1 / s_f) / 3)
    assert [i.item for i in scores.t_seconds] == ["api/0", "api/1", "web/0"]
    assert [i.value for i in scores.f_rps] == [10.0, None]


def test_slow_backends_and_regexes_lower_the_scores(minimal: dict[str, Any]) -> None:
    minimal["workloads"][0]["response_time_ms"] = 400
    minimal["workloads"][1]["response_time_ms"] = 400
    minimal["routes"].append({"name": "v", "match": {"path": "^/v[0-9]+/", "path_type": "regex"}, "backends": [{"workload": "web"}]})
    scores = compute_scores(plan_of(parse_spec(minimal)))
    assert scores.load_balancing == pytest.approx(2.5)
    s_lb = 10.0 / 2.5  # 100 ms budget vs 400 ms replicas: 4x worse than reference
    assert scores.s[0].value == pytest.approx(s_lb)
    # "/" may be overtaken by the regex: 1 tree walk + 1 regex try; /api/ stops the search (^~); the regex: 1 + 1.
    assert {i.item: i.value for i in scores.r} == {"api": 1, "web": 2, "v": 2}
    assert scores.routing == pytest.approx((1 + 0.5 + 0.5) / 3)


def test_no_limits_at_all_gives_flow_zero_and_infinite_s(minimal: dict[str, Any]) -> None:
    del minimal["routes"][0]["rate_limit"]
    scores = compute_scores(plan_of(parse_spec(minimal)))
    assert scores.flow_control == 0.0
    assert scores.s[2].value is None
    assert math.isfinite(scores.overall) and scores.overall < 1.0


def test_only_routed_replicas_count(minimal: dict[str, Any]) -> None:
    minimal["workloads"].append({"name": "batch", "image": "b:1", "port": 1, "response_time_ms": 1, "max_concurrency": 1})
    scores = compute_scores(plan_of(parse_spec(minimal)))
    assert "batch/0" not in [i.item for i in scores.t_seconds]


def test_per_replica_response_times(minimal: dict[str, Any]) -> None:
    minimal["workloads"][0]["response_time_ms"] = [50, 250]
    scores = compute_scores(plan_of(parse_spec(minimal)))
    assert [i.value for i in scores.t_seconds] == pytest.approx([0.05, 0.25, 0.02])
