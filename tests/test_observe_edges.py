"""observe's edges, worked by hand: single lines and tiny logs whose every count follows from the docstrings."""

from __future__ import annotations

from typing import Any

import pytest

from components.observe.log_stats import SETTLE_S, Histogram, LogReader, LogStats, WindowPeak, call_outcome
from components.observe.observation import (
    MIN_SAMPLES,
    Measured,
    call_drift_lines,
    drift_lines,
    log_reader,
    measure,
    measured_calls,
    observation_document,
    target_view,
)
from components.observe.observation_patch import patch_document
from components.plan.addressing import docker_address_map, docker_serve_map
from components.plan.balancing import expected_shares, service_shares
from components.spec.schema import Spec
from components.spec.validation import parse_spec
from testbed.access_log_gen import log_line
from testbed.specs import load_stack, make_spec
from tests.conftest import plan_of

T0 = 1_764_000_000  # a whole second: offsets below are seconds after it


def read_all(spec: Spec, lines: list[str], window_s: int = 10) -> LogStats:
    reader = log_reader(spec, plan_of(spec), window_s=window_s)
    for number, line in enumerate(lines, start=1):
        reader.feed(number, line.encode() + b"\n")
    return reader.finish()


def gateway(at: float, address: str, route: str = "web", status: str = "200", seconds: str = "0.010") -> str:
    return log_line(msec=f"{T0 + at:.3f}", route=route, status=status, upstream_addr=address,
                    upstream_status=status if address else "", upstream_response_time=seconds if address else "", proxy="gateway")


def web_to_api(at: float, address: str, status: str = "200", upstream_time: str = "0.010", request_time: str = "0.011") -> str:
    """A call web made to api, as api's service proxy (dev: `api-proxy`) logs it."""
    return log_line(msec=f"{T0 + at:.3f}", route="web.api", status=status, upstream_addr=address,
                    upstream_status=status if address else "", upstream_response_time=upstream_time if address else "",
                    request_time=request_time, proxy="api-proxy", caller="web", callee="api")


# -- the primitives --------------------------------------------------------------------------------------------------

def test_a_histogram_sample_counts_once_by_default() -> None:
    histogram = Histogram()
    histogram.add(7.0)
    assert (histogram.total, histogram.counts, histogram.sum_ms) == (1, {7: 1}, 7.0)


def test_a_window_second_counts_once_by_default() -> None:
    window = WindowPeak(2)
    for _ in range(3):
        window.add(100)
    window.settle(None)
    assert window.peak_sum == 3 and window.peak_rps() == 1.5  # 3 requests in one second, over a 2 s window


def test_a_line_in_the_last_settled_second_is_late() -> None:
    """"Every second ≤ settled_upto is folded into the window": one more line in that very second is late and
    counts with the oldest second still open, not as a second second 100 pushed into the window."""
    window = WindowPeak(2)
    window.add(100, 4)
    window.settle(None)
    assert window.settled_upto == 100
    window.add(100, 1)
    assert window.late == 1 and window.pending == {101: 1}


@pytest.mark.parametrize(("status", "outcome"), [("400", "refused"), ("499", "refused"), ("500", "failed")])
def test_a_tcp_status_outside_the_table_is_refused_unless_5xx(status: str, outcome: str) -> None:
    assert call_outcome("tcp", status, "", "") == outcome


# -- the reader --------------------------------------------------------------------------------------------------------

def test_a_route_counts_each_of_its_requests() -> None:
    spec = load_stack("dev")
    web = docker_address_map(spec)["web"][0]
    stats = read_all(spec, [gateway(0.1, web), gateway(0.2, web, seconds="0.020"), gateway(0.3, web, status="429")])
    assert stats.routes["web"].requests == 3 and stats.routes["web"].statuses == {"200": 2, "429": 1}


def test_an_edge_keeps_its_proxy_and_counts_a_status_over_different_tallies() -> None:
    """Two 200s with different times are two tallies: the edge's status count adds them up."""
    spec = load_stack("dev")
    api = docker_serve_map(spec)["api"][0]
    stats = read_all(spec, [web_to_api(0.1, api, upstream_time="0.010"), web_to_api(0.2, api, upstream_time="0.030")])
    edge = stats.calls[("web", "api")]
    assert edge.proxy == "api-proxy" and edge.protocol == "http"
    assert edge.calls == 2 and edge.statuses == {"200": 2} and edge.outcomes == {"answered": 2}


def test_a_call_no_replica_was_tried_for_is_refused_not_answered() -> None:
    """http 400 with nothing tried: the proxy refused it (`call_outcome`), so it is no sample of the callee's time."""
    spec = load_stack("dev")
    stats = read_all(spec, [web_to_api(0.1, "", status="400")])
    edge = stats.calls[("web", "api")]
    assert edge.outcomes == {"refused": 1} and edge.latency.total == 0 and edge.upstream.total == 0


def test_an_answered_call_without_a_printed_time_is_no_sample_and_no_crash() -> None:
    """`_sample`: a value nginx did not print ("-") is no sample; the upstream time of the same call still is."""
    spec = load_stack("dev")
    api = docker_serve_map(spec)["api"][0]
    stats = read_all(spec, [web_to_api(0.1, api, request_time="-", upstream_time="0.012")])
    edge = stats.calls[("web", "api")]
    assert edge.outcomes == {"answered": 1} and edge.latency.total == 0
    assert edge.upstream.total == 1 and edge.upstream.mean() == pytest.approx(12.0)


def test_an_edge_rate_counts_each_call_once() -> None:
    """10 calls in one second, a 10 s window: the peak is 10 / 10 = 1 call/s."""
    spec = load_stack("dev")
    api = docker_serve_map(spec)["api"][0]
    stats = read_all(spec, [web_to_api(0.05 + i / 20, api) for i in range(10)])
    assert stats.calls[("web", "api")].rate.peak_rps() == pytest.approx(1.0)


def test_a_log_shorter_than_one_batch_is_windowed_in_time_order() -> None:
    """Tallies are folded every FOLD_LINES lines (and at the end): within a batch the seconds are added in order, so
    a line more than SETTLE_S older than one read before it is no late line when both are in the same batch."""
    spec = load_stack("dev")
    web = docker_address_map(spec)["web"][0]
    assert LogReader.FOLD_LINES > 3
    stats = read_all(spec, [gateway(100.5, web), gateway(100.5 + 2 * SETTLE_S, web), gateway(99.5, web)], window_s=2)
    rate = stats.routes["web"].rate
    assert rate.late == 0 and stats.routes["web"].requests == 3
    assert rate.peak_rps() == pytest.approx(1.0)  # seconds 99 and 100 hold one request each: (1 + 1) / 2


def test_a_malformed_example_quotes_the_first_80_bytes_of_the_line() -> None:
    reader = LogReader({}, set())
    line = b"not json " + bytes(range(ord("a"), ord("z") + 1)) * 8
    reader.feed(7, line)
    (problem,) = reader.finish().malformed_examples
    assert problem.line == 7 and problem.text.endswith(repr(line[:80]))


# -- the observation -----------------------------------------------------------------------------------------------

def test_route_rates_of_429_and_5xx_are_fractions_of_its_requests() -> None:
    """web: 4 requests, one 429 and one 503: rate_429 = 1/4, rate_5xx = 1/4; login: 2 requests, both 200: 0 and 0."""
    spec = load_stack("dev")
    addresses = docker_address_map(spec)
    web, auth = addresses["web"][0], addresses["auth"][0]
    lines = [gateway(0.1, web), gateway(0.2, web), gateway(0.3, "", status="429"), gateway(0.4, web, status="503"),
             gateway(0.5, auth, route="login"), gateway(0.6, auth, route="login")]
    routes = {row["route"]: row for row in observation_document(spec, read_all(spec, lines), expected_shares)["routes"]}
    assert routes["web"]["requests"] == 4
    assert routes["web"]["rate_429"] == pytest.approx(0.25) and routes["web"]["rate_503"] == pytest.approx(0.25)
    assert routes["web"]["rate_5xx"] == pytest.approx(0.25)
    assert routes["login"]["rate_429"] == 0.0 and routes["login"]["rate_5xx"] == 0.0


def test_the_observed_peak_is_kept_to_a_tenth_of_a_request_per_second() -> None:
    """One request in a 3 s window: 1/3 req/s, kept as 0.3 (the patch writes peaks to 0.1 req/s, README's example)."""
    spec = load_stack("dev")
    stats = read_all(spec, [gateway(0.5, docker_address_map(spec)["web"][0])], window_s=3)
    assert stats.routes["web"].rate.peak_rps() == pytest.approx(1 / 3)
    measured = measure(spec, stats)
    assert measured.peaks == {"web": 0.3} and measured.spec.peak("web").peak_rps == 0.3


def test_the_patch_writes_a_measured_time_to_a_tenth_of_a_millisecond() -> None:
    spec = make_spec({"svc": {"replicas": 2, "response_time_ms": [10, 10]}}, [{"name": "main", "match": {"path": "/"}, "to": {"svc": 1}}],
                     traffic={"main": 10})
    raw = {f"netopt:{k}": v for k, v in spec.model_dump(mode="json", exclude_unset=True).items()}
    patch, changes = patch_document(raw, spec, Measured(spec, {("svc", 1): 50.123}, {}), tolerance=0.2)
    assert patch["config"]["netopt:workloads"][0]["response_time_ms"] == [10.0, 50.1]
    assert len(changes) == 1


def test_kubernetes_shares_are_the_services_even_spread_whatever_the_algorithm() -> None:
    """On Kubernetes kube-proxy picks the pod: static's three pods get a third each, although latency_weighted on
    10/20/40 ms would give nginx's 4/7, 2/7, 1/7."""
    document = load_stack("prod").model_dump(mode="json", exclude_unset=True)
    document["gateway"]["algorithm"] = "latency_weighted"
    for workload in document["workloads"]:
        if workload["name"] == "static":
            workload["response_time_ms"] = [10, 20, 40]
    spec = parse_spec(document)
    _, shares = target_view(spec)
    static = next(r for r in spec.routes if r.name == "static")
    assert [float(share) for _, _, share in shares(static, spec)] == pytest.approx([1 / 3] * 3)
    assert shares(static, spec) == service_shares(static, spec) != expected_shares(static, spec)


def test_a_callee_overloaded_at_the_declared_peak_has_no_predicted_latency() -> None:
    """front calls cache twice per request at 100 req/s: 200 calls/s to one replica serving 1 / 0.1 s = 10/s."""
    spec = make_spec({"front": {"calls": [{"workload": "cache", "ratio": 2}], "response_time_ms": 1},
                      "cache": {"replicas": 1, "response_time_ms": 100, "max_concurrency": 1}},
                     [{"name": "front", "match": {"path": "/"}, "to": {"front": 1}}], traffic={"front": 100})
    (row,) = observation_document(spec, read_all(spec, []), expected_shares)["calls"]
    assert row["callee"] == "cache" and row["declared_latency_ms"] is None


# -- drift ---------------------------------------------------------------------------------------------------------------

def call_row(**values: Any) -> dict[str, Any]:
    """A `calls` row with what the drift lines and the measured inputs read; nothing drifts unless given."""
    row: dict[str, Any] = {"item": "web.api", "caller": "web", "callee": "api", "protocol": "http", "observed": True,
                           "calls": 0, "expected_calls": 0.0, "ratio_measured": None, "ratio_declared": 0.5,
                           "declared_latency_ms": None, "upstream_mean_ms": None, "upstream_samples": 0,
                           "caller_requests_by_caller": {"web": 0}}
    row.update(values)
    return row


def test_a_call_ratio_drifts_with_exactly_min_samples_calls_made() -> None:
    """20 calls where 10 were expected: +100 %, and 20 calls made is the MIN_SAMPLES needed."""
    assert MIN_SAMPLES == 20
    row = call_row(calls=20, expected_calls=10.0, ratio_measured=1.0, caller_requests_by_caller={"web": 20})
    (line,) = call_drift_lines([row], 0.2)
    assert line["kind"] == "call_ratio" and line["relative"] == pytest.approx(1.0)
    assert "1.00 calls per request of web, declared 0.5" in line["message"]


def test_a_call_latency_drifts_with_exactly_min_samples_answered_calls() -> None:
    row = call_row(declared_latency_ms=10.0, upstream_mean_ms=15.0, upstream_samples=20)
    (line,) = call_drift_lines([row], 0.2)
    assert line["kind"] == "call_latency_ms" and line["relative"] == pytest.approx(0.5)
    assert call_drift_lines([call_row(declared_latency_ms=10.0, upstream_mean_ms=15.0, upstream_samples=19)], 0.2) == []


def test_the_measured_call_latency_needs_min_samples_and_no_more() -> None:
    (enough,) = measured_calls([call_row(upstream_mean_ms=12.5, upstream_samples=20)])
    (few,) = measured_calls([call_row(upstream_mean_ms=12.5, upstream_samples=19)])
    assert enough["latency_ms"] == 12.5 and few["latency_ms"] is None


def test_a_split_off_by_exactly_the_tolerance_is_no_drift() -> None:
    """Drift is more than the tolerance: a 50/50 split observed 75/25 is +50 % / -50 %, not beyond 0.5."""
    spec = load_stack("dev")
    split = [{"workload": "api", "declared": 0.5, "observed": 0.75}, {"workload": "api-canary", "declared": 0.5, "observed": 0.25}]
    route = {"route": "api", "requests": 40, "peak_rps": 4.0, "declared_peak_rps": 4.0, "split": split}
    measured = Measured(spec, {}, {})
    assert drift_lines(spec, measured, [route], 0.5) == []
    assert [line["item"] for line in drift_lines(spec, measured, [route], 0.49)] == ["api->api", "api->api-canary"]
