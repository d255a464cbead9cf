"""The service graph: `workloads[].calls` validated (unknown targets, self-calls, duplicates, cycles) and the load
of every call propagated through the capacity model, checked against hand calculations."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.plan.capacity import compute_capacity
from components.plan.graph import GATEWAY, Flow, flows, propagate
from components.plan.report import capacity_document
from components.spec.validation import SpecError, parse_spec
from tests.conftest import plan_of


def _shop(minimal: dict[str, Any]) -> dict[str, Any]:
    """MINIMAL plus an internal-only `db`: web calls api twice per page and db once; api calls db on half its requests."""
    raw = copy.deepcopy(minimal)
    raw["workloads"].append({"name": "db", "image": "db:1", "port": 5432, "response_time_ms": 5, "max_concurrency": 4})
    api, web, _ = raw["workloads"]
    web["calls"] = [{"workload": "api", "ratio": 2}, {"workload": "db"}]
    api["calls"] = [{"workload": "db", "ratio": 0.5}]
    raw["traffic"] = {"api": 10, "web": 20}
    return raw


def _problems(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    return {issue.path: issue.message for issue in caught.value.issues}


def test_calls_to_unknown_workloads_self_calls_and_duplicates_are_reported_together(minimal: dict[str, Any]) -> None:
    minimal["workloads"][0]["calls"] = [{"workload": "wbe"}, {"workload": "api"}]
    minimal["workloads"][1]["calls"] = [{"workload": "api"}, {"workload": "api", "ratio": 2}]
    problems = _problems(minimal)
    assert "unknown workload 'wbe'. Did you mean 'web'?" in problems["netopt:workloads[0].calls[0].workload"]
    assert "calls itself" in problems["netopt:workloads[0].calls[1].workload"]
    assert "called twice" in problems["netopt:workloads[1].calls[1].workload"]
    assert len(problems) == 3


@pytest.mark.parametrize("ratio", [0, -1, "often"])
def test_a_call_ratio_must_be_a_positive_number(minimal: dict[str, Any], ratio: Any) -> None:
    minimal["workloads"][1]["calls"] = [{"workload": "api", "ratio": ratio}]
    assert "netopt:workloads[1].calls[0].ratio" in _problems(minimal)


def test_a_call_cycle_is_refused_and_named(minimal: dict[str, Any]) -> None:
    raw = _shop(minimal)
    raw["workloads"][2]["calls"] = [{"workload": "web", "ratio": 0.1}]  # db -> web closes web -> db and web -> api -> db
    problems = _problems(raw)
    (path, message), = problems.items()
    assert path == "netopt:workloads[0].calls"
    assert "form a cycle (api -> db -> web -> api)" in message


def test_flows_are_the_gateway_to_routed_workloads_and_each_call(minimal: dict[str, Any]) -> None:
    spec = parse_spec(_shop(minimal))
    assert flows(spec) == [Flow(GATEWAY, "api", 8000), Flow(GATEWAY, "web", 3000),
                           Flow("api", "db", 5432), Flow("web", "api", 8000), Flow("web", "db", 5432)]


def test_propagated_rates_match_a_hand_calculation(minimal: dict[str, Any]) -> None:
    spec = parse_spec(_shop(minimal))
    # api: 10 from the gateway + 20 pages × 2 = 50; db: api's 50 × 0.5 + 20 pages × 1 = 45
    assert propagate(spec, {"api": 10.0, "web": 20.0}) == {"api": 50.0, "web": 20.0, "db": 45.0}
    assert propagate(spec, {"api": 10.0, "web": None}) == {"api": None, "web": None, "db": None}, "unbounded stays unbounded"


def test_every_workload_gets_a_capacity_row_with_its_called_load(minimal: dict[str, Any]) -> None:
    capacity = compute_capacity(plan_of(parse_spec(_shop(minimal))))
    rows = {(r.workload, r.replica): r for r in capacity.replicas}
    assert set(rows) == {("api", 0), ("api", 1), ("web", 0), ("db", 0)}
    for replica in (0, 1):  # 10/2 from the gateway, 40/2 from web's calls; μ = 10 / 0.05 s = 200/s
        assert rows[("api", replica)].offered_rps == pytest.approx(25.0)
        assert rows[("api", replica)].from_calls_rps == pytest.approx(20.0)
        assert rows[("api", replica)].utilization == pytest.approx(0.125)
    db = rows[("db", 0)]
    assert (db.offered_rps, db.from_calls_rps, db.utilization) == pytest.approx((45.0, 45.0, 45 / 800))
    # web's route has no limit, but each call is held to its caller's limit at db's proxy. db serves 4 / 5 ms = 800/s,
    # shared by declared call rate: web 20/s, api (10 + 40) × 0.5 = 25/s -> web 800 × 20/45 = 355.55 (21,333 per minute,
    # what nginx can state), api 444.43. Admitted: web up to its limit; api admits 10/s (its route's limit) + at most
    # 400/s from web (its only caller's limit, all of api's 400/s), so it sends db ≤ 410 × 0.5 = 205 < 444.43.
    assert db.admitted_utilization == pytest.approx((21_333 / 60 + 205) / 800)
    workloads = {w.workload: w for w in capacity.workloads}
    assert (workloads["api"].arrival_rps, workloads["api"].from_gateway_rps, workloads["api"].from_calls_rps) == pytest.approx((50, 10, 40))
    assert workloads["db"].from_gateway_rps == 0 and workloads["db"].admits_peak
    document = capacity_document(capacity)
    assert document["saturates_first"] == {"workload": "api", "peak_utilization": pytest.approx(0.125), "headroom": pytest.approx(8.0)}


def test_an_overloaded_callee_is_named_first_to_saturate(minimal: dict[str, Any]) -> None:
    raw = _shop(minimal)
    raw["workloads"][1]["calls"][1]["ratio"] = 40  # 20 pages × 40 + 25 = 825/s against db's 800/s
    capacity = compute_capacity(plan_of(parse_spec(raw)))
    db = next(w for w in capacity.workloads if w.workload == "db")
    assert db.arrival_rps == pytest.approx(825.0) and not db.admits_peak and db.mean_latency_ms is None
    first = capacity.saturates_first()
    assert first is not None and first.workload == "db"


def test_kubernetes_spreads_called_load_evenly_over_pods(minimal: dict[str, Any]) -> None:
    raw = _shop(minimal)
    raw.update(target="kubernetes", network={"name": "t"})
    from components.plan.balancing import service_shares

    capacity = compute_capacity(plan_of(parse_spec(raw)), service_shares)
    api = [r for r in capacity.replicas if r.workload == "api"]
    assert [r.offered_rps for r in api] == pytest.approx([25.0, 25.0])


def test_injected_environment_never_silently_overrides_a_users_value(minimal: dict[str, Any]) -> None:
    minimal["workloads"][0]["env"] = {"PORT": "9999", "NETOPT_REPLICA": "mine"}
    minimal["workloads"][1]["env"] = {"PORT": "3000"}  # the same value the targets set: fine
    problems = _problems(minimal)
    assert set(problems) == {"netopt:workloads[0].env.PORT", "netopt:workloads[0].env.NETOPT_REPLICA"}
    assert "change netopt:workloads[0].port instead" in problems["netopt:workloads[0].env.PORT"]
