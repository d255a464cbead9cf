"""The harness itself: pack lifecycle, the wire form the pack sees, and agreement with components' numbers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from components.resources.app_network import analyse
from components.resources.pulumi_config import namespace_values
from components.spec.validation import parse_spec
from offline.analyzer import PolicyPackError, analyze, engine_service, policy_config_path, policy_pack
from offline.program import run_program
from offline.stack_config import cli_config, stack_file

from .conftest import STOCK_PACK_VERSION
from .overlays import load_fixtures, recorded, stack_config


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_the_pack_server_is_stopped_by_pid_even_when_the_caller_fails() -> None:
    pid = None
    with pytest.raises(RuntimeError, match="boom"), engine_service() as (address, _), policy_pack(address, {}) as (port, process):
        pid = process.pid
        assert port > 0 and _alive(pid)
        raise RuntimeError("boom")
    assert pid is not None and not _alive(pid)


def test_a_pack_that_cannot_start_is_reported_with_its_stderr(tmp_path: Path) -> None:
    (tmp_path / "__main__.py").write_text("raise SystemExit('this pack is broken')\n")
    with pytest.raises(PolicyPackError, match="did not start"), engine_service() as (address, _), policy_pack(address, {}, pack_dir=tmp_path):
        pass


def test_the_fast_path_version_guard_falls_back_to_the_stock_path_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    from pulumi_policy import policy as library

    from policies import fastpath

    before = dict(vars(library))
    monkeypatch.delitem(sys.modules, "policies.fastpath_patch", raising=False)
    monkeypatch.setattr(fastpath, "installed_version", lambda: "1.22.0")
    with pytest.warns(RuntimeWarning, match=r"written for pulumi-policy==1\.21\.0, but 1\.22\.0 is installed: running the library's stock"):
        assert fastpath.install() is False
    assert vars(library) == before  # nothing patched
    assert "policies.fastpath_patch" not in sys.modules  # the module subclassing private classes is not even imported


def test_the_pack_process_on_another_library_version_gives_identical_verdicts(stock_pack: Path) -> None:
    fixture = next(f for f in load_fixtures() if f.name == "post-retrying-route")
    config = stack_config(fixture)
    resources = recorded(fixture, config)
    (stock_pack / "warnings").unlink(missing_ok=True)
    fast = analyze(resources, stack="prod", config=config, policy_config=policy_config_path("prod"))
    stock = analyze(resources, stack="prod", config=config, policy_config=policy_config_path("prod"), pack_dir=stock_pack)
    assert fast.diagnostics == stock.diagnostics and fast.diagnostics
    assert sorted(map(repr, fast.not_applicable)) == sorted(map(repr, stock.not_applicable))
    assert f"but {STOCK_PACK_VERSION} is installed: running the library's stock path" in (stock_pack / "warnings").read_text()


def test_score_verdicts_use_the_numbers_components_computed() -> None:
    fixture = next(f for f in load_fixtures() if f.name == "unanchored-regex-routes")
    config = stack_config(fixture)
    _, _, report = analyse(parse_spec(namespace_values(config)))
    analysis = analyze(recorded(fixture, config), stack="prod", config=config, policy_config=policy_config_path("prod"))
    (diagnostic,) = analysis.diagnostics
    assert f"routing score is {report['scores']['routing']:.4g}," in diagnostic.message
    assert "below the minimum 0.3" in diagnostic.message


def test_every_recorded_resource_and_the_root_stack_are_analyzed() -> None:
    config = cli_config(stack_file("staging"))
    resources = run_program(config, "staging")
    analysis = analyze(resources, stack="staging", config=config, policy_config=policy_config_path("staging"))
    assert analysis.analyzed == len(resources) + 1  # + pulumi:pulumi:Stack
    assert {"start_s", "analyze_s", "analyze_stack_s", "total_s"} <= set(analysis.timings)


def test_the_offline_runner_refuses_another_pulumi_sdk_with_a_clear_message(monkeypatch: pytest.MonkeyPatch,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from offline import plan, program

    monkeypatch.setattr(program, "installed_sdk_version", lambda: "3.999.0")
    with pytest.raises(program.ProgramError, match=r"written for pulumi==3\.272\.0, but pulumi 3\.999\.0 is installed\. Fix: install"):
        run_program(cli_config(stack_file("dev")), "dev")
    assert plan.main(["--stack", "dev", "--no-policy"]) == 1  # make plan: the message, exit 1, no traceback
    err = capsys.readouterr().err
    assert "pulumi 3.999.0 is installed" in err and "Traceback" not in err
