"""observe: the access-log parser's bad input, address -> replica mapping on both targets, drift, patch and re-plan."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.observe.log_stats import DEFAULT_WINDOW_S, KEEP_EXAMPLES, Histogram, LogReader, LogStats, WindowPeak, call_outcome
from components.observe.observation import log_reader, measure, member_addresses, observation_document, target_view
from components.observe.observation_patch import apply_patch, patch_document
from components.plan.addressing import (
    docker_address_map,
    docker_serve_map,
    kubernetes_address_map,
    kubernetes_pods_services,
    kubernetes_service_host,
)
from components.plan.balancing import expected_shares
from components.spec.schema import Spec
from components.spec.validation import parse_spec
from offline import observe as cli
from offline.stack_config import stack_file
from testbed.access_log_gen import log_line, synthetic_lines, synthetic_traffic
from testbed.specs import load_stack, make_spec
from tests.conftest import plan_of


def read(spec: Spec, lines: list[str], addresses: dict[str, list[str]] | None = None, resolved: dict[str, str] | None = None,
         window_s: int = DEFAULT_WINDOW_S) -> LogStats:
    addresses = addresses if addresses is not None else docker_address_map(spec)
    reader = LogReader(member_addresses(addresses, resolved), {u.name for u in plan_of(spec).gateway.upstreams}, window_s)
    for number, line in enumerate(lines, start=1):
        reader.feed(number, line.encode() + b"\n")
    return reader.finish()


def request(address: str, seconds: float, msec: float = 1_764_000_000.0, route: str = "web", status: str = "200",
            upstream_status: str = "200") -> str:
    return log_line(msec=f"{msec:.3f}", route=route, status=status, upstream_addr=address, upstream_status=upstream_status,
                    upstream_response_time=f"{seconds:.3f}")


# -- bad input -----------------------------------------------------------------------------------------------------

def test_malformed_lines_are_counted_and_the_first_few_reported_with_their_line_numbers() -> None:
    spec = load_stack("dev")
    web = docker_address_map(spec)["web"][0]
    good = request(web, 0.025)
    bad = [
        "garbage",
        "[1, 2]",  # JSON, not an object
        json.dumps({"v": 1, "route": "web"}),  # fields missing
        good.replace('"v":1', '"v":"1"'),  # wrong type
        good.replace('"v":1', '"v":0'),  # an older schema
        good.replace('"msec":"1764000000.000"', '"msec":"nan"'),
        good.replace('"msec":"1764000000.000"', '"msec":"inf"'),
        '{"v":1,"msec":"1764000000.000", "route": "web"',  # cut short
    ]
    stats = read(spec, [good, *bad, "", "   ", good])
    assert stats.requests == 2 and stats.malformed == len(bad) and stats.lines == 2 + len(bad)
    assert [p.line for p in stats.malformed_examples] == [2, 3, 4, 5, 6][:KEEP_EXAMPLES]
    assert "schema version 0" in stats.malformed_examples[4].text
    assert stats.members[("web", 0)].times.total == 2  # the malformed lines changed nothing else


def test_an_unparsable_time_is_an_error_of_that_try_not_a_crash() -> None:
    spec = load_stack("dev")
    web = docker_address_map(spec)["web"][0]
    stats = read(spec, [request(web, 0.02).replace('"upstream_response_time":"0.020"', '"upstream_response_time":"abc"'),
                        request(web, 0.02).replace('"upstream_response_time":"0.020"', '"upstream_response_time":"-1"')])
    assert stats.members[("web", 0)].errors == 2 and stats.members[("web", 0)].times.total == 0


def test_an_address_outside_the_plan_is_reported_and_counts_for_no_replica() -> None:
    spec = load_stack("dev")
    web = docker_address_map(spec)["web"][0]
    stats = read(spec, [request(web, 0.02), request("10.9.9.9:80", 0.5), request(f"{web}, 10.9.9.9:80", 0.5)])
    assert stats.unmapped == {"10.9.9.9:80": 2} and stats.unmapped_tries == 2
    assert [(p.line, "10.9.9.9:80" in p.text) for p in stats.unmapped_examples] == [(2, True), (3, True)]
    assert stats.members[("web", 0)].served == 1 and stats.members[("web", 0)].tries == 2


def test_an_empty_log_says_so_and_binary_garbage_is_no_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    assert cli.main(["--stack", "dev", "--log", str(empty)]) == 0
    assert "the log has no request or call line" in capsys.readouterr().out
    noise = tmp_path / "noise.log"
    noise.write_bytes(bytes(range(256)) * 40 + b"\n\xff\xfe{\"v\":1}\n")
    assert cli.main(["--stack", "dev", "--log", str(noise), "--format", "json", "--write-patch", str(tmp_path / "p.yaml")]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["log"]["empty"] and document["log"]["malformed"] == document["log"]["lines"] == 42  # 40 + 2 line breaks
    assert document["drift"] == [] and len(document["log"]["malformed_examples"]) == KEEP_EXAMPLES
    assert not (tmp_path / "p.yaml").exists(), "no patch from a log without requests"


def test_unknown_stack_missing_log_and_bad_options_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--stack", "nope", "--log", "-"]) == 2
    assert "no stack 'nope'" in capsys.readouterr().err
    assert cli.main(["--stack", "dev", "--log", str(tmp_path / "missing.log")]) == 2
    assert "cannot read the log" in capsys.readouterr().err
    assert cli.main(["--stack", "dev", "--log", "-", "--tolerance", "0"]) == 2
    assert "TOLERANCE" in capsys.readouterr().err


# -- the statistics ------------------------------------------------------------------------------------------------

def test_histogram_quantiles_are_exact_at_millisecond_resolution() -> None:
    histogram = Histogram()
    for ms in range(1, 101):
        histogram.add(float(ms))
    assert histogram.quantile(0.5) == 50 and histogram.quantile(0.99) == 99 and histogram.quantile(1.0) == 100
    assert histogram.mean() == pytest.approx(50.5)
    assert Histogram().quantile(0.5) is None


def test_window_peak_counts_empty_seconds_and_takes_late_lines_into_the_open_second() -> None:
    window = WindowPeak(2)
    for second, count in ((100, 5), (101, 7), (103, 9), (104, 1)):
        window.add(second, count)
    window.settle(None)
    assert window.peak_rps() == 6.0  # (5 + 7) / 2; 102 was empty, so (0 + 9) / 2 and (9 + 1) / 2 are lower
    window.add(90, 3)  # older than what is settled
    assert window.late == 3


def test_folding_in_batches_gives_the_same_statistics_as_line_by_line(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = load_stack("staging")
    lines = list(synthetic_lines(spec, docker_address_map(spec), 3000, 300.0, {}))
    whole = read(spec, lines)
    monkeypatch.setattr(LogReader, "FOLD_LINES", 7)
    folded = read(spec, lines)
    assert whole.members == folded.members and whole.requests == folded.requests
    assert {n: (r.requests, r.rate.peak_rps(), r.served_by) for n, r in whole.routes.items()} == \
        {n: (r.requests, r.rate.peak_rps(), r.served_by) for n, r in folded.routes.items()}


def test_retries_count_for_every_replica_tried_and_a_named_upstream_is_no_server_left() -> None:
    spec = load_stack("staging")
    api = docker_address_map(spec)["api"]
    upstream = plan_of(spec).gateway.route_upstreams["api_versioned"]
    stats = read(spec, [
        log_line(msec="1764000000.100", route="api_versioned", status="200", upstream_addr=f"{api[0]}, {api[1]}",
                 upstream_status="502, 200", upstream_response_time="0.001, 0.040"),
        log_line(msec="1764000000.200", route="api_versioned", status="503", upstream_addr=upstream, upstream_status="-",
                 upstream_response_time="-"),
    ])
    first, second = stats.members[("api", 0)], stats.members[("api", 1)]
    assert (first.tries, first.served, first.errors, first.times.total) == (1, 0, 1, 0)
    assert (second.tries, second.served, second.errors) == (1, 1, 0) and second.times.mean() == pytest.approx(40.0)
    assert stats.routes["api_versioned"].no_server_left == 1 and stats.unmapped_tries == 0


# -- address -> replica, both targets ------------------------------------------------------------------------------

def test_docker_addresses_map_back_to_each_replica_and_recover_its_time_and_share() -> None:
    spec = load_stack("staging")
    truth = {("api", 0): 40.0, ("api", 1): 120.0, ("web", 0): 25.0, ("web", 1): 25.0}
    stats = read(spec, list(synthetic_lines(spec, docker_address_map(spec), 40_000, 400.0, truth, seed=3)))
    document = observation_document(spec, stats, expected_shares)
    rows = {row["item"]: row for row in document["members"]}
    assert set(rows) == {f"{w.name}/{r}" for w in spec.workloads for r in range(w.replicas)}
    for (workload, replica), mean in truth.items():
        assert rows[f"{workload}/{replica}"]["mean_ms"] == pytest.approx(mean, rel=0.1)
    assert rows["api/0"]["requests"] == pytest.approx(rows["api/1"]["requests"], rel=0.15)  # least_conn declared: even
    assert [d["item"] for d in document["drift"] if d["kind"] == "response_time_ms"] == ["api/1"]  # 120 vs 40 declared


def _services_json(spec: Spec, addresses: dict[str, str]) -> str:
    return json.dumps({"kind": "List", "items": [{"metadata": {"name": name, "namespace": "shop-prod"}, "spec": {"clusterIP": ip}}
                                                 for name, ip in addresses.items()]})


def test_kubernetes_service_addresses_map_to_workloads_with_no_per_pod_breakdown() -> None:
    spec = load_stack("prod")
    services = kubernetes_pods_services(spec)  # a called workload's pods are `<w>-backend`: its name is its proxy's
    assert services["api"] == "api-backend" and services["web"] == "web"
    ips = {w.name: f"10.96.0.{10 + i}" for i, w in enumerate(spec.workloads)}
    logged = {w.name: [f"{ips[w.name]}:{w.port}"] for w in spec.workloads}  # what nginx logs: the resolved ClusterIP
    # prod's called workloads (api, auth) answer to their name through their service proxy; the gateway reaches their
    # pods through `<w>-backend`. `kubectl get services` lists both, the proxies' on addresses the gateway never logs.
    services = {"web": ips["web"], "api-backend": ips["api"], "api-canary": ips["api-canary"], "auth-backend": ips["auth"],
                "static": ips["static"], "api": "10.96.1.1", "auth": "10.96.1.2"}
    resolved = cli.service_addresses(_services_json(spec, services), spec)
    assert resolved[kubernetes_service_host(spec, "api-backend")] == ips["api"]
    lines = list(synthetic_lines(spec, logged, 20_000, 500.0, {("api", 0): 90.0}, seed=5))
    without = read(spec, lines, kubernetes_address_map(spec))
    assert without.unmapped_tries == 20_000, "a ClusterIP without the Services' addresses maps to nothing"
    stats = read(spec, lines, kubernetes_address_map(spec), resolved)
    assert stats.unmapped_tries == 0
    document = observation_document(spec, stats, expected_shares)
    assert {row["item"] for row in document["members"]} == {w.name for w in spec.workloads}
    assert [d["item"] for d in document["drift"] if d["kind"] == "response_time_ms"] == ["api"]
    measured = measure(spec, stats).spec.workload("api")
    assert isinstance(measured.response_time_ms, list) and len(set(measured.response_time_ms)) == 1  # every pod: the workload's time
    assert measured.response_time_ms[0] == pytest.approx(90.0, rel=0.1)


def test_observe_maps_docker_addresses_as_the_dev_subnet_is_carved() -> None:
    """Hand-worked from README "Docker target": a dev link holds its network, bridge (.1), broadcast, one server and
    one client address: 5, so every block is a /29 (8 addresses). Workload i's ingress link takes block 2i from the
    bottom (web, api, api-canary, auth, static: blocks 0, 2, 4, 6, 8), and a replica's address on its link is the
    block's .2. Shares under gateway balancing: the route's weights (api 90 / api-canary 10), one replica each."""
    spec = load_stack("dev")
    address_map, shares = target_view(spec)
    assert address_map == {"web": ["10.42.0.2:3000"], "api": ["10.42.0.18:8000"], "api-canary": ["10.42.0.34:8000"],
                           "auth": ["10.42.0.50:9000"], "static": ["10.42.0.66:8080"]}
    by_route = {r.name: shares(r, spec) for r in spec.routes}
    assert by_route["api"] == [("api", 0, Fraction(9, 10)), ("api-canary", 0, Fraction(1, 10))]
    assert by_route["web"] == [("web", 0, Fraction(1))] and by_route["login"] == [("auth", 0, Fraction(1))]


def test_observe_maps_kubernetes_service_names_and_spreads_each_workload_evenly_over_its_pods() -> None:
    """Service balancing: nginx logs the Service of the workload's pods (<name>.<namespace>.svc.<cluster domain>:<port>, one member
    per workload) and kube-proxy spreads it evenly: prod runs 3 pods each, so api's 90 % is 30 % per pod, the canary's
    10 % is 1/30 per pod."""
    spec = load_stack("prod")
    address_map, shares = target_view(spec)
    # api and auth are called: their service proxies take their names, their own pods are `<w>-backend`.
    pods = {"web": "web", "api": "api-backend", "api-canary": "api-canary", "auth": "auth-backend", "static": "static"}
    assert address_map == {w.name: [f"{pods[w.name]}.shop-prod.svc.cluster.local:{w.port}"] for w in spec.workloads}
    assert [w.replicas for w in spec.workloads] == [3, 3, 3, 3, 3]
    by_route = {r.name: shares(r, spec) for r in spec.routes}
    assert by_route["api"] == [("api", i, Fraction(3, 10)) for i in range(3)] + [("api-canary", i, Fraction(1, 30)) for i in range(3)]
    assert by_route["static"] == [("static", i, Fraction(1, 3)) for i in range(3)]


def test_hosts_lines_also_name_service_addresses() -> None:
    spec = load_stack("prod")
    text = f"# kube services\n10.96.0.7 {kubernetes_service_host(spec, 'web')} web\n"
    assert cli.service_addresses(text, spec) == {kubernetes_service_host(spec, "web"): "10.96.0.7", "web": "10.96.0.7"}


# -- scores, drift, patch, re-plan ---------------------------------------------------------------------------------

def skew(declared: list[float]) -> Spec:
    return make_spec({"svc": {"replicas": 4, "response_time_ms": declared, "max_concurrency": 8}},
                     [{"name": "main", "match": {"path": "/"}, "to": {"svc": 1}}],
                     gateway={"algorithm": "latency_optimal"}, traffic={"main": 1000})


def skew_log(spec: Spec, truth: list[float], count: int = 30_000) -> LogStats:
    addresses = {"svc": [f"127.0.0.1:{9000 + i}" for i in range(4)]}
    times = {("svc", i): t for i, t in enumerate(truth)}
    return read(spec, list(synthetic_lines(spec, addresses, count, 1000.0, times, seed=7)), addresses)


def test_measured_scores_are_the_formula_on_the_times_in_the_log() -> None:
    """A hand-written log: svc/0-2 answer in 10 ms, svc/3 in 50 ms (every request). Declared: 10 ms each, so
    LB = (1/4)(4 x 100) = 100 /s; measured: (1/4)(100 + 100 + 100 + 20) = 80 /s."""
    spec = skew([10, 10, 10, 10])
    addresses = {"svc": [f"127.0.0.1:{9000 + i}" for i in range(4)]}
    lines = [request(addresses["svc"][i], seconds, msec=1_764_000_000.0 + n / 100, route="main")
             for n in range(20) for i, seconds in enumerate((0.010, 0.010, 0.010, 0.050))]
    document = observation_document(spec, read(spec, lines, addresses), expected_shares)
    assert document["scores"]["declared"]["load_balancing"] == pytest.approx(100.0, rel=1e-12)
    assert document["scores"]["measured"]["load_balancing"] == pytest.approx(80.0, rel=1e-12)


def test_the_capacity_model_at_the_observed_peak_overloads_the_slow_replica() -> None:
    """svc/3 keeps its declared quarter of 1,000 req/s = 250 req/s, but at 50 ms x 8 in service it serves 160 req/s:
    overloaded; the re-plan (latency_optimal from the measured times) sends it nothing."""
    spec = skew([10, 10, 10, 10])
    document = observation_document(spec, skew_log(spec, [10, 10, 10, 50]), expected_shares)
    assert document["capacity"]["observed"]["replicas"][3]["overloaded"]
    assert document["capacity"]["replanned"]["replicas"][3]["offered_rps"] == 0.0


def test_the_patch_replans_latency_optimal_to_make_the_slow_replica_a_backup() -> None:
    spec = skew([10, 10, 10, 10])
    before = plan_of(spec).gateway.upstreams[0].servers
    assert not any(s.backup for s in before) and len({s.weight for s in before}) == 1
    raw = {f"netopt:{k}": v for k, v in spec.model_dump(mode="json", exclude_unset=True).items()}
    patch, changes = patch_document(raw, spec, measure(spec, skew_log(spec, [10, 10, 10, 50])), tolerance=0.2)
    assert len(changes) == 1 and changes[0].startswith("svc: response_time_ms")
    times = patch["config"]["netopt:workloads"][0]["response_time_ms"]
    assert times[:3] == [10.0, 10.0, 10.0] and times[3] == pytest.approx(50, rel=0.1)  # only what drifts changes
    merged = apply_patch({"config": raw}, yaml.safe_load(yaml.safe_dump(patch)))["config"]
    replanned = parse_spec({k.removeprefix("netopt:"): v for k, v in merged.items()})
    after = plan_of(replanned).gateway.upstreams[0].servers
    assert [s.backup for s in after] == [False, False, False, True]


def test_the_cli_patch_is_a_stack_file_fragment_that_replans(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = load_stack("dev")
    log = tmp_path / "access.log"
    lines = synthetic_lines(spec, docker_address_map(spec), 5000, 100.0, {("api", 0): 200.0}, seed=2)
    log.write_text("\n".join(lines) + "\n")
    patch_path = tmp_path / "patch.yaml"
    assert cli.main(["--stack", "dev", "--log", str(log), "--write-patch", str(patch_path)]) == 0
    out = capsys.readouterr().out
    assert "api/0: mean upstream time" in out and f"Patch written to {patch_path}" in out
    patch = yaml.safe_load(patch_path.read_text())
    stack = yaml.safe_load(stack_file("dev").read_text())
    merged: dict[str, Any] = apply_patch(stack, patch)
    replanned = parse_spec({k.removeprefix("netopt:"): v for k, v in merged["config"].items()})
    assert replanned.workload("api").response_time_ms == pytest.approx(200.0, rel=0.1)
    assert replanned.workload("web") == spec.workload("web"), "what did not drift is left as declared"


def test_nothing_drifts_within_the_tolerance() -> None:
    spec = skew([10, 10, 10, 50])
    stats = skew_log(spec, [10, 10, 10, 50])
    kinds = [d["kind"] for d in observation_document(spec, stats, expected_shares, tolerance=0.2)["drift"]]
    assert "response_time_ms" not in kinds
    assert "response_time_ms" in [d["kind"] for d in observation_document(spec, stats, expected_shares, tolerance=0.001)["drift"]]


def test_faster_than_declared_is_drift_too() -> None:
    """Drift is |measured / declared - 1| > tolerance in either direction: svc/3 declared 50 ms answers in 10 ms
    (-80 %), and the route declared at 1,000 req/s peaks at 80 requests in a 10 s window, 8 req/s (-99.2 %)."""
    spec = skew([10, 10, 10, 50])
    addresses = {"svc": [f"127.0.0.1:{9000 + i}" for i in range(4)]}
    lines = [request(addresses["svc"][i], 0.010, msec=1_764_000_000.0 + n / 100, route="main") for n in range(20) for i in range(4)]
    drift = {(d["kind"], d["item"]): d["relative"] for d in observation_document(spec, read(spec, lines, addresses), expected_shares)["drift"]}
    assert drift[("response_time_ms", "svc/3")] == pytest.approx(-0.8, rel=1e-9)
    assert drift[("peak_rps", "main")] == pytest.approx(8 / 1000 - 1, rel=1e-9)
    assert ("response_time_ms", "svc/0") not in drift


def test_a_route_with_no_declared_peak_and_a_split_off_its_weights_are_drift() -> None:
    """A route whose traffic is not declared: any observed peak is drift ("no peak declared"). dev's `api` is split
    90/10 between api and api-canary; a log where each serves 20 of 40 requests is 50 %: api -44 %, api-canary +400 %."""
    spec = make_spec({"svc": {"replicas": 1, "response_time_ms": 10}}, [{"name": "main", "match": {"path": "/"}, "to": {"svc": 1}}])
    addresses = {"svc": ["127.0.0.1:9000"]}
    lines = [request(addresses["svc"][0], 0.010, msec=1_764_000_000.0 + n / 10, route="main") for n in range(10)]
    drift = {(d["kind"], d["item"]): d for d in observation_document(spec, read(spec, lines, addresses), expected_shares)["drift"]}
    assert drift[("peak_rps", "main")]["relative"] is None and "no peak declared" in drift[("peak_rps", "main")]["message"]
    dev = load_stack("dev")
    dev_addresses = docker_address_map(dev)
    lines = [request(dev_addresses[w][0], 0.040, msec=1_764_000_001.0 + n / 10, route="api") for n in range(20) for w in ("api", "api-canary")]
    drift = {(d["kind"], d["item"]): d for d in observation_document(dev, read(dev, lines), expected_shares)["drift"]}
    assert drift[("split", "api->api")]["relative"] == pytest.approx(0.5 / 0.9 - 1)
    assert drift[("split", "api->api-canary")]["relative"] == pytest.approx(0.5 / 0.1 - 1)
# -- calls between workloads: the service proxies' lines ----------------------------------------------------------

def read_all(spec: Spec, lines: list[str], resolved: dict[str, str] | None = None) -> LogStats:
    """Every proxy's lines through the reader observe builds for the stack (gateway and service proxies)."""
    reader = log_reader(spec, plan_of(spec), resolved)
    for number, line in enumerate(lines, start=1):
        reader.feed(number, line.encode() + b"\n")
    return reader.finish()


def independent_counts(lines: list[str]) -> dict[tuple[str, str], dict[str, int]]:
    """(caller, callee) -> {status: lines}, read with the json module: a second reading of the same lines."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for line in lines:
        fields = json.loads(line)
        if fields["callee"]:
            per = counts.setdefault((fields["caller"], fields["callee"]), {})
            per[fields["status"]] = per.get(fields["status"], 0) + 1
    return counts


@pytest.mark.parametrize(("protocol", "status", "tried", "upstream_status", "outcome"), [
    ("http", "200", "10.0.0.1:80", "200", "answered"),
    ("http", "404", "10.0.0.1:80", "404", "answered"),  # the replica's own answer
    ("http", "429", "", "", "limited"),
    ("http", "503", "up_api", "", "unavailable"),  # every replica at max_conns or down
    ("http", "504", "10.0.0.1:80, 10.0.0.2:80", "504, 504", "failed"),
    ("http", "400", "", "", "refused"),
    # gRPC: the proxy's refusals are trailers-only responses, HTTP 204 (checked on real nginx in test_dp_observe.py)
    ("grpc", "200", "10.0.0.1:50051", "200", "answered"),
    ("grpc", "204", "", "", "limited"),  # RESOURCE_EXHAUSTED: nothing was tried
    ("grpc", "204", "10.0.0.1:50051, 10.0.0.2:50051", "502, 502", "unavailable"),
    ("grpc", "204", "up_svc", "", "unavailable"),
    ("grpc", "204", "10.0.0.1:50051", "504", "failed"),  # DEADLINE_EXCEEDED
    # tcp: the stream module's $status
    ("tcp", "200", "10.0.0.1:6379", "", "answered"),
    ("tcp", "503", "", "", "limited"),  # limit_conn closed it
    ("tcp", "502", "10.0.0.1:6379", "", "unavailable"),
])
def test_a_call_line_tells_what_became_of_the_call(protocol: str, status: str, tried: str, upstream_status: str, outcome: str) -> None:
    assert call_outcome(protocol, status, tried, upstream_status) == outcome


def test_each_edge_recovers_its_calls_ratio_refusals_and_latency() -> None:
    spec = load_stack("dev")  # web -> api 0.5, api -> auth 0.3, api-canary -> auth 0.3
    traffic = list(synthetic_traffic(spec, docker_address_map(spec), 30_000, 160.0, {("auth", 0): 60.0},
                                     ratios={"api.auth": 0.6}, refused={"web.api": 0.05}, seed=11))
    lines = [line for _, line in traffic]
    stats = read_all(spec, lines)
    assert stats.requests == 30_000 and stats.malformed == 0 and stats.unmapped_tries == 0
    document = observation_document(spec, stats, expected_shares)
    rows = {row["item"]: row for row in document["calls"]}
    assert set(rows) == {"web.api", "api.auth", "api-canary.auth"}
    truth = independent_counts(lines)
    for row in rows.values():
        statuses = truth[(row["caller"], row["callee"])]
        assert row["calls"] == sum(statuses.values()) and row["outcomes"].get("limited", 0) == statuses.get("429", 0)
    assert document["log"]["calls"] == sum(sum(s.values()) for s in truth.values())
    to_auth = rows["api.auth"]["calls"] + rows["api-canary.auth"]["calls"]
    assert document["log"]["proxies"] == {"api-proxy": rows["web.api"]["calls"], "auth-proxy": to_auth, "gateway": 30_000}
    assert rows["web.api"]["ratio_measured"] == pytest.approx(0.5, abs=0.02) and rows["web.api"]["ratio_declared"] == 0.5
    assert rows["web.api"]["rate_429"] == pytest.approx(0.05, abs=0.01)
    assert rows["api.auth"]["ratio_measured"] == pytest.approx(0.6, abs=0.02) and rows["api.auth"]["ratio_declared"] == 0.3
    assert rows["api-canary.auth"]["ratio_measured"] == pytest.approx(0.3, abs=0.05)
    assert rows["api.auth"]["upstream_mean_ms"] == pytest.approx(60.0, rel=0.1)
    assert rows["web.api"]["upstream_mean_ms"] == pytest.approx(40.0, rel=0.1)  # api as declared
    # api's requests: what the gateway sent it and what web's calls it answered, both in this one log
    api = set(docker_address_map(spec)["api"]) | set(docker_serve_map(spec)["api"])
    answered_by_api = sum(1 for line in lines if json.loads(line)["upstream_addr"] in api)
    assert rows["api.auth"]["caller_requests"] == answered_by_api
    drift = {(d["kind"], d["item"]) for d in document["drift"]}
    assert {("call_ratio", "api.auth"), ("call_latency_ms", "api.auth"), ("call_latency_ms", "api-canary.auth")} <= drift
    assert ("call_ratio", "web.api") not in drift and ("call_ratio", "api-canary.auth") not in drift
    assert ("response_time_ms", "auth/0") in drift, "a replica's time is measured from its proxy's lines too"
    measured = {row["item"]: row for row in document["measured"]["calls"]}
    assert measured["api.auth"]["calls"] == rows["api.auth"]["calls"] and measured["api.auth"]["caller_requests"] == {"api": answered_by_api}


def test_concatenated_proxy_logs_read_as_the_interleaved_log() -> None:
    spec = load_stack("staging")
    traffic = list(synthetic_traffic(spec, docker_address_map(spec), 20_000, 160.0, {}, seed=5))
    by_proxy: dict[str, list[str]] = {}
    for proxy, line in traffic:
        by_proxy.setdefault(proxy, []).append(line)
    concatenated = [line for lines in by_proxy.values() for line in lines]  # `docker logs` of each proxy, one after another
    assert concatenated != [line for _, line in traffic]
    one = observation_document(spec, read_all(spec, [line for _, line in traffic]), expected_shares)
    other = observation_document(spec, read_all(spec, concatenated), expected_shares)
    assert one == other
    assert max(row["peak_rps"] for row in one["calls"]) > 0 and one["log"]["late_lines"] == 0


def test_where_callers_share_one_address_an_edge_row_covers_every_caller_of_the_callee() -> None:
    spec = load_stack("prod")  # kubernetes, no mesh: the proxy logs caller "-"
    traffic = [line for _, line in synthetic_traffic(spec, kubernetes_address_map(spec), 20_000, 150.0, {}, seed=2)]
    assert all(json.loads(line)["caller"] in ("", "-") for line in traffic)
    document = observation_document(spec, read_all(spec, traffic), expected_shares)
    rows = {row["item"]: row for row in document["calls"]}
    assert set(rows) == {"-.api", "-.auth"}
    assert rows["-.auth"]["callers"] == ["api", "api-canary"] and rows["-.auth"]["ratio_measured"] is None
    assert rows["-.auth"]["calls_vs_declared"] == pytest.approx(1.0, abs=0.06)
    assert not [d for d in document["drift"] if d["kind"] == "call_ratio"]
    doubled = [line for _, line in synthetic_traffic(spec, kubernetes_address_map(spec), 20_000, 150.0, {}, ratios={"api.auth": 0.6}, seed=2)]
    drift = observation_document(spec, read_all(spec, doubled), expected_shares)["drift"]
    assert [d["item"] for d in drift if d["kind"] == "call_ratio"] == ["-.auth"]


def tcp_spec() -> Spec:
    return make_spec({"front": {"calls": [{"workload": "cache", "ratio": 2}], "response_time_ms": 20},
                      "cache": {"protocol": "tcp", "replicas": 2, "response_time_ms": 1, "max_concurrency": 64}},
                     [{"name": "front", "match": {"path": "/"}, "to": {"front": 1}}], traffic={"front": 10})


def test_a_tcp_edge_counts_connections_without_times_and_its_ratio_is_never_drift() -> None:
    spec = tcp_spec()
    cache = docker_serve_map(spec)["cache"]
    front = docker_address_map(spec)["front"][0]
    gateway = [log_line(msec=f"{1_764_000_000 + i / 10:.3f}", route="front", status="200", upstream_addr=front, upstream_status="200",
                        upstream_response_time="0.020", proxy="gateway") for i in range(100)]

    def connection(status: str, tried: str, session: str = "12.500") -> str:
        return log_line(msec="1764000005.000", route="front.cache", status=status, upstream_addr=tried, upstream_status="",
                        upstream_response_time=session, request_time=session, proxy="cache-proxy", caller="front", callee="cache")

    calls = [connection("200", cache[0])] * 30 + [connection("503", "", "0.000")] * 2 + [connection("502", f"{cache[0]}, {cache[1]}")]
    stats = read_all(spec, gateway + calls)
    first, second = stats.members[("cache", 0)], stats.members[("cache", 1)]
    assert (first.tries, first.served, first.errors, first.times.total) == (31, 30, 1, 0)  # retried away from once: an error
    assert (second.tries, second.served, second.errors, second.times.total) == (1, 1, 1, 0)  # the connection failed there
    (row,) = observation_document(spec, stats, expected_shares)["calls"]
    assert row["outcomes"] == {"answered": 30, "limited": 2, "unavailable": 1}
    assert row["latency_p50_ms"] == 12500 and row["upstream_mean_ms"] is None  # a session's length, not a response time
    assert row["ratio_measured"] == pytest.approx(33 / 100) and row["ratio_declared"] == 2
    assert not observation_document(spec, stats, expected_shares)["drift"] or all(
        d["kind"] != "call_ratio" for d in observation_document(spec, stats, expected_shares)["drift"])


def test_calls_outside_the_plan_and_lines_without_the_newer_fields() -> None:
    spec = load_stack("dev")
    web = docker_address_map(spec)["web"][0]
    old = json.dumps({"v": 1, "msec": "1764000000.000", "route": "web", "status": "200", "upstream_addr": web,
                      "upstream_status": "200", "upstream_response_time": "0.025"})  # a gateway line from before `proxy`
    stranger = log_line(msec="1764000000.500", route="x.api", status="200", proxy="api-proxy", caller="intruder", callee="api")
    stats = read_all(spec, [old, stranger])
    assert stats.requests == 1 and stats.malformed == 0 and stats.members[("web", 0)].served == 1
    document = observation_document(spec, stats, expected_shares)
    assert document["log"]["unknown_calls"] == ["intruder.api"] and document["log"]["proxies"] == {"": 1, "api-proxy": 1}


def test_the_text_report_has_a_row_per_call(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = load_stack("dev")
    log = tmp_path / "mixed.log"
    log.write_text("\n".join(line for _, line in synthetic_traffic(spec, docker_address_map(spec), 4000, 160.0, {}, seed=3)) + "\n")
    assert cli.main(["--stack", "dev", "--log", str(log)]) == 0
    out = capsys.readouterr().out
    assert "Per call (the callee's service proxy" in out
    for edge in ("web -> api", "api -> auth", "api-canary -> auth"):
        assert any(line.strip().startswith(edge) for line in out.splitlines()), edge


def test_a_log_without_a_proxys_lines_measures_nothing_of_its_calls() -> None:
    spec = load_stack("dev")
    traffic = list(synthetic_traffic(spec, docker_address_map(spec), 6000, 160.0, {}, seed=8))
    gateway_only = [line for proxy, line in traffic if proxy == "gateway"]
    document = observation_document(spec, read_all(spec, gateway_only), expected_shares)
    assert not any(row["observed"] for row in document["calls"]) and document["measured"]["calls"] == []
    assert all(row["ratio_measured"] is None and row["calls_vs_declared"] is None for row in document["calls"])
    assert not [d for d in document["drift"] if d["kind"].startswith("call_")], "calls not logged are not calls not made"
    without_api_proxy = [line for proxy, line in traffic if proxy != "api-proxy"]
    rows = {row["item"]: row for row in observation_document(spec, read_all(spec, without_api_proxy), expected_shares)["calls"]}
    assert not rows["web.api"]["observed"] and rows["api.auth"]["observed"]
    # api's requests come from the gateway and from api-proxy (web's calls): without api-proxy's log, no ratio for api
    assert rows["api.auth"]["callers_unread"] == ["api-proxy"] and rows["api.auth"]["ratio_measured"] is None
    assert rows["api-canary.auth"]["callers_unread"] == [] and rows["api-canary.auth"]["ratio_measured"] == pytest.approx(0.3, abs=0.05)


def test_an_edge_row_worked_by_hand() -> None:
    """Ten calls from front to cart over 4 s, worked out by hand: 6 answered (4 by cart, 2 by its canary cart-v2),
    2 refused by front's limits (429), 1 with every replica busy (503: nginx logs the upstream's name), 1 timed out on cart-v2
    (504).
    The split's observed share counts the member each call was last sent to, the 504's included."""
    spec = make_spec({"front": {"calls": [{"workload": "cart", "ratio": 1}]},
                      "cart": {"port": 8080, "replicas": 1, "response_time_ms": 10,
                               "traffic_policy": {"timeout_s": 2.5,
                                                  "split": [{"workload": "cart", "weight": 3}, {"workload": "cart-v2", "weight": 1}]}},
                      "cart-v2": {"port": 8080, "replicas": 1, "response_time_ms": 10}},
                     [{"name": "front", "match": {"path": "/"}, "to": {"front": 1}}], traffic={"front": 10})
    serve = docker_serve_map(spec)
    cart, canary = serve["cart"][0], serve["cart-v2"][0]

    def call(at: float, status: str, tried: str, upstream_status: str, times: str) -> str:
        return log_line(msec=f"{1_764_000_000 + at:.3f}", route="front.cart", status=status, upstream_addr=tried, upstream_status=upstream_status,
                        upstream_response_time=times, request_time="0.010", proxy="cart-proxy", caller="front", callee="cart")

    lines = ([call(i * 0.5, "200", cart, "200", "0.010") for i in range(4)] + [call(2.0 + i * 0.5, "200", canary, "200", "0.010") for i in range(2)]
             + [call(3.0, "429", "", "", ""), call(3.2, "429", "", "", ""), call(3.5, "503", "up_cart_3_cart_2dv2_1", "", ""),
                call(4.0, "504", canary, "504", "2.500")])
    stats = read_all(spec, lines)
    (row,) = observation_document(spec, stats, expected_shares)["calls"]
    assert (row["item"], row["caller"], row["callee"], row["proxy"], row["protocol"]) == ("front.cart", "front", "cart", "cart-proxy", "http")
    assert row["calls"] == 10 and row["mean_rps"] == pytest.approx(10 / 4.0) and row["timeout_s"] == 2.5
    assert row["outcomes"] == {"answered": 6, "failed": 1, "limited": 2, "unavailable": 1}
    assert (row["rate_429"], row["rate_503"], row["rate_5xx"]) == (pytest.approx(0.2), pytest.approx(0.1), pytest.approx(0.2))
    assert row["no_server_left"] == 1 and row["upstream_samples"] == 6 and row["upstream_mean_ms"] == pytest.approx(10.0)
    assert row["split"] == [{"workload": "cart", "declared": 0.75, "observed": pytest.approx(4 / 7)},
                            {"workload": "cart-v2", "declared": 0.25, "observed": pytest.approx(3 / 7)}]
    assert stats.members[("cart-v2", 0)].tries == 3 and stats.members[("cart", 0)].served == 4
    (alone,) = observation_document(spec, read_all(spec, lines[:1]), expected_shares)["calls"]
    assert alone["mean_rps"] == 1.0, "a log shorter than a second counts as one second"
