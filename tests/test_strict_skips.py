"""Under CI (CI=true or --fail-on-skip) every kind of skip fails the run; elsewhere a skip stays a skip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from offline.stack_config import PROJECT_DIR

SKIPPING = '''
import pytest

@pytest.fixture
def needs_tool():
    pytest.skip("tool missing")

@pytest.mark.skipif(True, reason="marker skip")
def test_marked(): pass

def test_in_body(): pytest.skip("body skip")

def test_in_fixture(needs_tool): pass

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure(): assert False

def test_passes(): pass
'''


def _run(tmp_path: Path, *args: str, ci: str | None = None, module: str = SKIPPING) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_skipping.py").write_text(module)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_DIR)}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.strict_skips", "-q", "-rA", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tmp_path), *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("args", "ci"), [((), "true"), (("--fail-on-skip",), None)])
def test_every_skip_fails_under_ci(tmp_path: Path, args: tuple[str, ...], ci: str | None) -> None:
    result = _run(tmp_path, *args, ci=ci)
    assert result.returncode == 1, result.stdout
    summary = result.stdout.strip().splitlines()[-1]
    assert "1 passed" in summary and "1 xfailed" in summary and "skipped" not in summary, summary
    assert "1 failed" in summary and "2 errors" in summary, summary  # a skip in the body fails; at setup (marker, fixture) it errors
    for reason in ("marker skip", "body skip", "tool missing"):
        assert f"skips fail under CI (CI=true or --fail-on-skip): {reason}" in result.stdout, reason


def test_a_module_skipped_at_collection_fails_under_ci(tmp_path: Path) -> None:
    result = _run(tmp_path, ci="true", module='import pytest\npytest.skip("whole module", allow_module_level=True)\n')
    assert result.returncode != 0, result.stdout
    assert "skips fail under CI (CI=true or --fail-on-skip): whole module" in result.stdout


def test_a_skip_is_a_skip_outside_ci(tmp_path: Path) -> None:
    result = _run(tmp_path, ci="false")
    assert result.returncode == 0, result.stdout
    assert "1 passed, 3 skipped, 1 xfailed" in result.stdout.strip().splitlines()[-1]
