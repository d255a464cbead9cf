"""observe: the access-log parser's bad input, address -> replica mapping on both targets, drift, patch and re-plan."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.observe.log_stats import DEFAULT_WINDOW_S, KEEP_EXAMPLES, Histogram, LogReader, LogStats, WindowPeak
from components.observe.observation import measure, member_addresses, observation_document, target_view
from components.observe.observation_patch import apply_patch, patch_document
from components.plan.addressing import docker_address_map, kubernetes_address_map, kubernetes_service_host
from components.plan.balancing import expected_shares
from components.spec.schema import Spec
from components.spec.validation import parse_spec
from offline import observe as cli
from offline.stack_config import stack_file
from testbed.access_log_gen import log_line, synthetic_lines
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
    assert "the log has no request line" in capsys.readouterr().out
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
