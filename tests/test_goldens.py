"""The golden test compares and nothing in a test run can rewrite a golden file (issue #11, 18)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from offline.stack_config import PROJECT_DIR
from testbed.goldens import GOLDEN_DIR, golden_path, main, mismatch, rendered


def test_an_edited_golden_file_is_a_mismatch_whatever_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETOPT_UPDATE_GOLDEN", "1")  # the old switch that made the comparison pass by construction
    edited = golden_path("dev", GOLDEN_DIR).read_text().replace("keepalive_timeout", "keepalive_timeout_edited", 1)
    golden_path("dev", tmp_path).write_text(edited)
    difference = mismatch("dev", tmp_path)
    assert difference is not None and "keepalive_timeout_edited" in difference, difference
    assert golden_path("dev", tmp_path).read_text() == edited, "comparing never writes"


def test_a_missing_golden_file_is_a_mismatch(tmp_path: Path) -> None:
    assert mismatch("staging", tmp_path) is not None


def test_the_update_script_refuses_to_run_inside_a_test_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev"], tmp_path) == 2
    assert not golden_path("dev", tmp_path).exists()
    assert "refusing" in capsys.readouterr().err


def test_the_update_script_writes_what_the_renderer_renders(tmp_path: Path) -> None:
    code = f"import sys, pathlib; from testbed.goldens import main; sys.exit(main(['dev'], pathlib.Path({str(tmp_path)!r})))"
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "dev.nginx.conf: updated" in result.stdout
    assert golden_path("dev", tmp_path).read_text() == rendered("dev")
    assert mismatch("dev", tmp_path) is None
