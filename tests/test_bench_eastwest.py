"""bench/eastwest.py's arithmetic and report on hand-made runs, and bench/check.py's east-west rows against the
committed results (every row must find its figure where the benchmark writes it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import check, eastwest
from bench.eastwest_report import write_markdown


def _run(p50: float, p99: float, *, ok: int = 1000, sent: int = 1000, load: float = 0.5) -> dict[str, Any]:
    return {"p50_ms": p50, "p99_ms": p99, "ok": ok, "sent": sent, "success": ok / sent, "errors": {} if ok == sent else {"X": sent - ok},
            "cpu_us_per_call": {"proxy": 30.0, "relay": 20.0}, "cores_busy": {"backend": 0.2, "client": 0.3}, "load": [load, load],
            "shares": {"echo-0": 0.5, "echo-1": 0.5, "echo-2": 0.0}, "utilization": {"echo-0": 0.3, "echo-1": 0.3, "echo-2": 0.0}}


def test_hop_added_latency_is_the_median_of_paired_differences() -> None:
    rows = {"direct": [_run(0.5, 1.0), _run(0.6, 2.0), _run(0.4, 1.5)],
            "proxy": [_run(0.7, 1.3), _run(0.8, 2.9), _run(0.7, 1.7)],
            "relay": [_run(0.6, 1.4), _run(0.7, 2.2), _run(0.6, 1.6, ok=999)]}
    summary = eastwest._hop_summary(rows)
    assert summary["added_p99_ms"] == pytest.approx(0.3)  # pairs: +0.3, +0.9, +0.2
    assert summary["added_p99"]["min"] == pytest.approx(0.2) and summary["added_p99"]["max"] == pytest.approx(0.9)
    assert summary["added_p50_ms"] == pytest.approx(0.2)  # +0.2, +0.2, +0.3
    assert summary["relay_added_p99_ms"] == pytest.approx(0.2)  # +0.4, +0.2, +0.1
    assert summary["proxy_over_relay_p99_ms"] == pytest.approx(0.1)  # -0.1, +0.7, +0.1
    assert summary["proxy_over_relay_p99"]["min"] == pytest.approx(-0.1)
    assert summary["proxy_over_relay_p50_ms"] == pytest.approx(0.1)  # +0.1, +0.1, +0.1
    assert summary["relay_cpu_us_per_call"]["median"] == pytest.approx(20.0)
    assert summary["failed"] == 1


def test_balancing_ratio_is_against_the_pooled_landings_of_the_same_rep() -> None:
    rows = {"direct-0": [_run(10, 40)], "direct-1": [_run(10, 40)], "direct-2": [_run(900, 1000, ok=500)],
            "least_conn": [_run(12, 150)], "latency_optimal": [_run(11, 50)]}
    pooled = [{"p50_ms": 12.0, "p99_ms": 1000.0, "ok": 2500, "sent": 3000, "errors": {"DEADLINE_EXCEEDED": 500}}]
    summary = eastwest._balancing_summary(400, 1.0, rows, pooled, ["echo-0", "echo-1", "echo-2"])
    assert summary["least_conn"]["p99_ratio"] == pytest.approx(0.15)
    assert summary["latency_optimal"]["p99_ratio"] == pytest.approx(0.05)
    assert summary["direct"]["pooled"]["success"] == pytest.approx(2500 / 3000)
    assert summary["direct"]["direct-2"]["errors"] == {"X": 500}


def _noisy_rows(alone_p99: float, noisy_p99: float, quiet_ok: int) -> dict[str, list[dict[str, Any]]]:
    def row(p99: float, ok: int, neighbour: bool) -> dict[str, Any]:
        r: dict[str, Any] = {"quiet": _run(21, p99, ok=ok, sent=2000), "load": [0.4, 0.6], "cores_busy": {"backend": 0.1, "proxy": 0.1}}
        if neighbour:
            r["noisy"] = _run(1, 2, ok=3000, sent=26000)
            r["noisy_wall_s"] = 10.4
            r["cores_busy"]["noisy_client"] = 0.5
        return r
    return {"alone": [row(alone_p99, 2000, False)], "noisy": [row(noisy_p99, quiet_ok, True)], "shared": [row(300, 1500, True)]}


@pytest.mark.parametrize(("noisy_p99", "quiet_ok", "success_met", "p99_met"),
                         [(24.0, 2000, True, True), (25.0, 2000, True, False), (24.0, 1997, False, True)])
def test_noisy_verdicts(tmp_path: Path, noisy_p99: float, quiet_ok: int, success_met: bool, p99_met: bool) -> None:
    """p99 alone 20 ms: 24 ms is 1.2× (met), 25 ms 1.25× (not); 1997 of 2000 is 99.85 % (not met)."""
    edges = {c: type("E", (), {"limit_rps": 100.0, "burst": 100, "max_concurrency": 5, "declared_rps": 50.0})() for c in ("orders", "search")}
    summary = eastwest._noisy_summary(_noisy_rows(20.0, noisy_p99, quiet_ok), 200, 2666, edges, "") | {"reps": 1, "duration_s": 10}
    assert summary["quiet_p99_ratio"] == pytest.approx(noisy_p99 / 20.0)
    assert summary["quiet_success"] == pytest.approx(quiet_ok / 2000)
    text = Path(write_markdown({"command": "c", "when": "w", "host": "h", "grpcio": "g", "python": "p", "niceness": 0,
                                "loadavg_before": 0.5, "loadavg_after": 0.5, "cpus": 2, "noisy": summary}, str(tmp_path / "e.md"))).read_text()
    verdict = text.rsplit("Quiet caller with the noisy one:", 1)[1]
    success_part, p99_part = verdict.split("), p99", 1)
    assert ("**met**" in success_part) == success_met
    assert ("**met**" in p99_part) == p99_met
    assert "Rerun on a quiet machine" not in text


def test_a_loaded_run_says_so(tmp_path: Path) -> None:
    edges = {c: type("E", (), {"limit_rps": 100.0, "burst": 100, "max_concurrency": 5, "declared_rps": 50.0})() for c in ("orders", "search")}
    rows = _noisy_rows(20.0, 22.0, 2000)
    rows["noisy"][0]["load"] = [5.5, 6.0]
    summary = eastwest._noisy_summary(rows, 200, 2666, edges, "") | {"reps": 1, "duration_s": 10}
    text = Path(write_markdown({"command": "c", "when": "w", "host": "h", "grpcio": "g", "python": "p", "niceness": 0,
                                "loadavg_before": 0.5, "loadavg_after": 0.5, "cpus": 2, "noisy": summary}, str(tmp_path / "e.md"))).read_text()
    assert "The load average reached 6.0" in text


def test_eastwest_rows_read_the_committed_run() -> None:
    """bench/results/eastwest.json is bench/eastwest.py's output: every east-west row of the guard finds its figure."""
    rows = [t for t in check.TARGETS if isinstance(t.figure, check.Figure) and t.figure.file == check.EASTWEST]
    assert len(rows) == 6
    document = json.loads((check.RESULTS / check.EASTWEST).read_text())
    for target in rows:
        assert isinstance(target.figure, check.Figure)
        target.figure.read(check.RESULTS)
        assert document["command"].startswith("python bench/eastwest.py")
