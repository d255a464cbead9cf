"""bench/check.py, the benchmarks' regression guard: verdicts from hand-written results files, and every target
row reads a figure the benchmarks really write (key paths checked against their writers, not restated here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import check, plan_scale
from bench.check import TARGETS, Figure, Ratio, Target
from offline.analyzer import Analysis, write_scale_results


def _write(results: Path, name: str, document: dict[str, object]) -> None:
    (results / name).write_text(json.dumps(document))


def test_verdicts_pass_warn_fail_missing(tmp_path: Path) -> None:
    _write(tmp_path, "a.json", {"x": {"s": 7.0, "fast": 2.0, "slow": 4.0}})
    targets = (
        Target("met", Figure("a.json", ("x", "s")), at_most=8.0),
        Target("within worst", Figure("a.json", ("x", "s")), at_most=5.0, worst=10.0),
        Target("past worst", Figure("a.json", ("x", "s")), at_most=5.0, worst=6.0),
        Target("ratio met", Ratio(Figure("a.json", ("x", "slow")), Figure("a.json", ("x", "fast"))), at_least=1.9),
        Target("ratio missed", Ratio(Figure("a.json", ("x", "slow")), Figure("a.json", ("x", "fast"))), at_least=2.1),
        Target("absent key", Figure("a.json", ("x", "nope")), at_most=1.0),
        Target("absent file", Figure("b.json", ("x",)), at_most=1.0),
    )
    verdicts = {t.name: verdict for t, verdict, _ in check.check(targets, tmp_path)}
    assert verdicts == {"met": "PASS", "within worst": "WARN", "past worst": "FAIL", "ratio met": "PASS",
                        "ratio missed": "FAIL", "absent key": "MISSING", "absent file": "MISSING"}


def test_a_target_names_exactly_one_direction() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Target("both", Figure("a.json", ("x",)), at_most=1.0, at_least=0.5)


def test_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "a.json", {"s": 7.0})
    monkeypatch.setattr(check, "TARGETS", (Target("t", Figure("a.json", ("s",)), at_most=5.0, worst=10.0),))
    assert check.main(["--results", str(tmp_path)]) == 0  # WARN alone passes
    assert check.main(["--results", str(tmp_path), "--strict"]) == 1
    monkeypatch.setattr(check, "TARGETS", (Target("t", Figure("a.json", ("s",)), at_most=5.0),))
    assert check.main(["--results", str(tmp_path)]) == 1
    assert "FAIL" in capsys.readouterr().out


def _rows(file: str) -> list[Figure]:
    figures = []
    for target in TARGETS:
        parts = [target.figure] if isinstance(target.figure, Figure) else [target.figure.numerator, target.figure.denominator]
        figures += [f for f in parts if f.file == file]
    assert figures, f"no target reads {file}"
    return figures


def test_plan_rows_read_what_plan_scale_writes(tmp_path: Path) -> None:
    plan_scale.main(["--runs", "1", "--sizes", "2", "4", "--out", str(tmp_path)])
    written = json.loads((tmp_path / check.PLAN).read_text())
    for figure in _rows(check.PLAN):
        assert figure.path[0] == "sizes" and figure.path[2] in written["sizes"]["2"], figure.label()
    assert written["sizes"]["4"]["resources"] > written["sizes"]["2"]["resources"] > 0


def test_pack_rows_read_what_the_analyzer_writes(tmp_path: Path) -> None:
    timings = {"start_s": 1.0, "analyze_s": 2.0, "analyze_stack_s": 0.5, "pack_cpu_s": 2.2, "total_s": 3.7}
    analysis = Analysis("netopt", "1", {}, {}, [], [], timings=timings, analyzed=4000)
    path = write_scale_results(tmp_path, 1000, analysis, 4.0, ["--generated", "1000"], "0.5 0.5 0.5")
    for figure in _rows(check.PACK):
        figure.read(tmp_path)
    assert Figure(check.PACK, ("generated", "1000", "analyze_ms_per_resource")).read(tmp_path) == pytest.approx(0.5)
    write_scale_results(tmp_path, 2000, analysis, 4.0, None, "0.5 0.5 0.5")
    assert set(json.loads(path.read_text())["generated"]) == {"1000", "2000"}  # one file, a key per size


def test_data_plane_rows_read_the_committed_bench_run() -> None:
    """bench/results/results.json is bench/run.py's output: every gateway row must find its figure there."""
    for figure in _rows(check.DATA_PLANE):
        assert figure.read(check.RESULTS) > 0, figure.label()
