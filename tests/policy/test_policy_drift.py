"""`make plan OBSERVED=<observe json>`: the observation reaches the report and the observed-drift gate, over gRPC.

The gate re-reads the observation file, checks its digest and compares measured with declared itself: a drifting
observation is an advisory violation, a faithful one none, a file changed after the plan read it or an observation
of another environment a violation too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.plan.addressing import docker_address_map
from offline import observe, plan
from testbed.access_log_gen import log_line, synthetic_lines, synthetic_traffic
from testbed.specs import load_stack


def _observation(tmp_path: Path, stack: str, times: dict[tuple[str, int], float], capsys: pytest.CaptureFixture[str]) -> Path:
    spec = load_stack(stack)
    log = tmp_path / "access.log"
    log.write_text("\n".join(synthetic_lines(spec, docker_address_map(spec), 6000, 20.0, times, seed=4)) + "\n")
    assert observe.main(["--stack", stack, "--log", str(log), "--format", "json"]) == 0
    path = tmp_path / "observed.json"
    path.write_text(capsys.readouterr().out)
    return path


def _drift_violations(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in document["policy"]["violations"] if v["policy"] == "observed-drift"]


def test_drift_beyond_tolerance_is_an_advisory_violation_naming_the_replica(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _observation(tmp_path, "staging", {("api", 1): 160.0}, capsys)
    document = plan.build_plan_document("staging", observed=str(path), out_dir=tmp_path / "build")
    observed = document["report"]["observed"]
    assert observed["file"] == str(path.resolve()) and len(observed["sha256"]) == 64 and observed["matches_environment"]
    violations = _drift_violations(document)
    assert len(violations) == 1 and violations[0]["level"] == "advisory"
    assert "replica api/1: measured" in violations[0]["message"] and "declared 40 ms" in violations[0]["message"]
    assert "replica api/0" not in violations[0]["message"]


def test_a_faithful_observation_passes_and_no_observation_is_not_applicable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _observation(tmp_path, "staging", {}, capsys)
    document = json.loads(path.read_text())
    assert [d for d in document["drift"] if d["kind"] == "response_time_ms"] == []
    planned = plan.build_plan_document("staging", observed=str(path), out_dir=tmp_path / "build")
    assert not [v for v in _drift_violations(planned) if "replica" in v["message"]]
    assert "observed" not in plan.build_plan_document("staging", out_dir=tmp_path / "build2")["report"]


def test_an_observation_changed_after_the_plan_read_it_is_a_violation(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = _observation(tmp_path, "staging", {}, capsys)
    original = plan.check_gateway  # type: ignore[attr-defined]  # runs after the program read the observation, before the pack

    def tampering(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        document = json.loads(path.read_text())
        document["measured"]["t_seconds"] = [{"item": "api/0", "value": 0.040}]
        path.write_text(json.dumps(document))  # after the plan read it, before the pack checks it
        return result

    monkeypatch.setattr(plan, "check_gateway", tampering)
    violations = _drift_violations(plan.build_plan_document("staging", observed=str(path), out_dir=tmp_path / "build"))
    assert len(violations) == 1 and "changed since" in violations[0]["message"]


def test_an_observation_of_another_environment_is_flagged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _observation(tmp_path, "dev", {}, capsys)
    violations = _drift_violations(plan.build_plan_document("staging", observed=str(path), out_dir=tmp_path / "build"))
    assert len(violations) == 1 and "made on environment 'dev'" in violations[0]["message"]


def test_an_unreadable_or_foreign_observation_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--stack", "dev", "--observed", str(tmp_path / "missing.json")]) == 1
    assert "netopt-observed:file: cannot read the observation" in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text('{"stack": "dev"}')
    assert plan.main(["--stack", "dev", "--observed", str(other)]) == 1
    assert "is no observe document" in capsys.readouterr().err


def test_faster_replicas_and_peaks_off_the_declared_ones_are_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A hand-written log of staging: route api_versioned (declared 5 req/s) served by api/1 (declared 40 ms) 300 times
    over 10 s, each in 10 ms. The gate reads the file itself: api/1 measured 10 ms is -75 %, the route's 10 s peak of
    30 req/s is +500 %; both beyond ±20 %, in either direction."""
    spec = load_stack("staging")
    api_1 = docker_address_map(spec)["api"][1]
    log = tmp_path / "access.log"
    log.write_text("".join(log_line(msec=f"{1_764_000_000 + n / 30:.3f}", route="api_versioned", status="200", upstream_addr=api_1,
                                    upstream_status="200", upstream_response_time="0.010") + "\n" for n in range(300)))
    assert observe.main(["--stack", "staging", "--log", str(log), "--format", "json"]) == 0
    path = tmp_path / "observed.json"
    path.write_text(capsys.readouterr().out)
    (violation,) = _drift_violations(plan.build_plan_document("staging", observed=str(path), out_dir=tmp_path / "build"))
    assert "replica api/1: measured 10 ms, declared 40 ms (-75%)" in violation["message"], violation["message"]
    assert "route api_versioned: measured 30 req/s, declared 5 req/s (+500%)" in violation["message"], violation["message"]
def test_call_ratio_and_latency_drift_reach_the_gate_from_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = load_stack("staging")
    lines = [line for _, line in synthetic_traffic(spec, docker_address_map(spec), 6000, 160.0, {("auth", 0): 90.0, ("auth", 1): 90.0},
                                                   ratios={"api.auth": 0.6}, seed=4)]
    log = tmp_path / "mixed.log"
    log.write_text("\n".join(lines) + "\n")
    assert observe.main(["--stack", "staging", "--log", str(log), "--format", "json"]) == 0
    path = tmp_path / "observed.json"
    path.write_text(capsys.readouterr().out)
    measured = {entry["item"]: entry for entry in json.loads(path.read_text())["measured"]["calls"]}
    assert measured["api.auth"]["calls"] > 0 and measured["api.auth"]["caller_requests"]["api"] > 0
    (violation,) = _drift_violations(plan.build_plan_document("staging", observed=str(path), out_dir=tmp_path / "build"))
    message = violation["message"]
    assert violation["level"] == "advisory"
    assert "call api -> auth:" in message and "calls measured" in message and "ms upstream, predicted 30 ms" in message
    assert "call web -> api:" not in message and "call api-canary -> auth: " in message  # its ratio holds, auth's time does not
    assert "calls measured" not in message.split("call api-canary -> auth:")[1].split(";")[0]
