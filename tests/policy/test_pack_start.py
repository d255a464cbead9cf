"""The pack starts as the engine starts it, whatever the caller's environment (issue #11, the intro bug).

The engine's Python analyzer shim runs `python -u -m pulumi.policy <engine> <pack>`; the pack writes its port to
stdout without a flush, so without `-u` the harness only worked where the caller happened to export
PYTHONUNBUFFERED=1. These tests remove it (and add variables that would break an inheriting child) and check the
real pack process: its command line, its environment, and `make plan`'s own entry point end to end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from offline.analyzer import engine_service, policy_pack
from offline.stack_config import PROJECT_DIR

HOSTILE = {"PYTHONPATH": "/nonexistent-netopt", "PYTHONHOME": "/nonexistent-netopt", "PYTHONSTARTUP": "/nonexistent-netopt",
           "PATH": "/nonexistent-netopt", "PYTHONWARNINGS": "error::Warning:nonexistent"}


def _proc(pid: int, name: str) -> list[str]:
    return [part.decode() for part in Path(f"/proc/{pid}/{name}").read_bytes().split(b"\0") if part]


def test_the_pack_runs_unbuffered_with_an_environment_built_from_scratch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    for name, value in HOSTILE.items():
        monkeypatch.setenv(name, value)
    with engine_service() as (address, _), policy_pack(address, {"PULUMI_STACK": "dev"}) as (port, process):
        assert port > 0
        argv = _proc(process.pid, "cmdline")
        environment = dict(item.split("=", 1) for item in _proc(process.pid, "environ"))
    assert argv[1:4] == ["-u", "-m", "pulumi.policy"], argv
    assert argv[4:] == [address, str(PROJECT_DIR / "policies")]
    assert environment["PULUMI_STACK"] == "dev"
    assert not (set(HOSTILE) - {"PATH"}) & set(environment), "no PYTHON* variable of the caller reaches the pack"
    assert "PYTHONUNBUFFERED" not in environment, "unbuffered by its command line (-u), not by the environment"
    assert environment["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent), "the venv's bin first, as the shim does"
    assert "/nonexistent-netopt" not in environment["PATH"]


def test_make_plans_entry_point_works_in_a_scrubbed_environment(tmp_path: Path) -> None:
    """`python -m offline.plan` under `env -i` with a user's minimal PATH: the policy verdicts are printed, exit 0."""
    scrubbed = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    result = subprocess.run([sys.executable, "-m", "offline.plan", "--stack", "dev"], cwd=PROJECT_DIR, env=scrubbed,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "PolicyPackError" not in result.stderr
    assert "Policy pack netopt" in result.stdout and "0 mandatory" in result.stdout, result.stdout[-2000:]
