"""`make plan` runs the pack with the environment's config, shows the verdicts and fails on a mandatory one."""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path

import pytest
import yaml

from offline import plan
from offline.stack_config import PROJECT_DIR


def test_plan_json_carries_the_policy_verdicts(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--stack", "prod", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["policy"]["config"] == "policies/config/prod.json"
    assert document["policy"]["violations"] == []
    assert document["policy"]["mandatory"] == 0


def _project_with_bad_prod(tmp_path: Path) -> Path:
    shutil.copy(PROJECT_DIR / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copy(PROJECT_DIR / "__main__.py", tmp_path / "__main__.py")
    (tmp_path / "stacks").mkdir()
    document = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.prod.yaml").read_text())
    static = next(r for r in document["config"]["netopt:routes"] if r["name"] == "static")
    static.pop("rate_limit")
    (tmp_path / "stacks" / "Pulumi.prod.yaml").write_text(yaml.safe_dump(document))
    return tmp_path


def test_a_mandatory_violation_fails_the_plan_with_a_table(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    project = _project_with_bad_prod(tmp_path)
    monkeypatch.setattr(plan, "build_plan_document", partial(plan.build_plan_document, project_dir=project))
    assert plan.main(["--stack", "prod"]) == 1
    out = capsys.readouterr().out
    assert "mandatory  rate-limits-protect-backends" in out
    assert "workload 'static' is reachable through route(s) 'static' with no rate limit" in out
    assert "1 mandatory, 0 advisory" in out


def test_json_violations_have_policy_level_resource_message(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    project = _project_with_bad_prod(tmp_path)
    monkeypatch.setattr(plan, "build_plan_document", partial(plan.build_plan_document, project_dir=project))
    assert plan.main(["--stack", "prod", "--format", "json"]) == 1
    (violation,) = json.loads(capsys.readouterr().out)["policy"]["violations"]
    assert {"policy", "level", "resource", "message"} <= set(violation)
    assert (violation["policy"], violation["level"], violation["resource"]) == ("rate-limits-protect-backends", "mandatory", "shop-prod")
    assert not violation["message"].startswith("The traffic")  # the policy description is not repeated in each message


def test_no_policy_skips_the_pack(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--stack", "dev", "--format", "json", "--no-policy"]) == 0
    assert "policy" not in json.loads(capsys.readouterr().out)
