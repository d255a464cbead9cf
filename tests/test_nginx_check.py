"""`make plan` runs the real `nginx -t` on the rendered gateway config and fails the plan when nginx refuses it
(issue 11 item 2): nothing is written, exit 1, nginx's own message."""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from offline import plan
from offline.nginx_check import find_nginx, resolvable
from offline.stack_config import PROJECT_DIR


def _project(tmp_path: Path, edit: Any) -> Path:
    shutil.copy(PROJECT_DIR / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copy(PROJECT_DIR / "__main__.py", tmp_path / "__main__.py")
    (tmp_path / "stacks").mkdir()
    document = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.dev.yaml").read_text())
    edit(document["config"])
    (tmp_path / "stacks" / "Pulumi.dev.yaml").write_text(yaml.safe_dump(document))
    return tmp_path


def _plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: Any) -> tuple[int, Path]:
    project = _project(tmp_path, edit)
    out = tmp_path / "build"
    monkeypatch.setattr(plan, "build_plan_document", partial(plan.build_plan_document, project_dir=project, out_dir=out))
    return plan.main(["--stack", "dev", "--format", "json", "--no-policy"]), out


def test_nginx_is_found_without_sbin_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.delenv("NETOPT_NGINX", raising=False)
    found = find_nginx()
    assert found is not None and Path(found).name == "nginx"


def test_limits_that_used_to_share_a_zone_now_plan_and_pass_nginx_t(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def edit(config: dict[str, Any]) -> None:
        config["netopt:rate_limits"].append({"name": "api-per-client", "rps": 7})
        next(r for r in config["netopt:routes"] if r["name"] == "login")["rate_limit"] = "api-per-client"

    code, out = _plan(tmp_path, monkeypatch, edit)
    document = json.loads(capsys.readouterr().out)
    assert code == 0 and document["nginx_check"]["status"] == "passed", document.get("nginx_check")
    assert "netopt_rl_api_2dper_2dclient" in (out / "nginx.conf").read_text()


def test_a_config_nginx_refuses_fails_the_plan_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A named capture that is one of nginx's own read-only variables (the SSI module's `date_gmt`): which
    variables exist depends on the modules of the nginx that loads the config, so only nginx can say."""
    def edit(config: dict[str, Any]) -> None:
        next(r for r in config["netopt:routes"] if r["match"].get("path_type") == "regex")["match"]["path"] = "^/v(?<date_gmt>[0-9]+)/orders"

    code, out = _plan(tmp_path, monkeypatch, edit)
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert "fails `nginx -t`" in captured.err and 'the duplicate "date_gmt" variable' in captured.err
    assert "Traceback" not in captured.err
    assert not out.exists(), "nothing rendered for a config nginx refuses"


def test_kubernetes_service_names_are_checked_as_loopback_addresses(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--stack", "prod", "--format", "json", "--no-policy"]) == 0
    check = json.loads(capsys.readouterr().out)["nginx_check"]
    assert check["status"] == "passed" and check["version"].startswith("nginx/")
    assert resolvable({"api": ["api.ns.svc.cluster.local:8000"], "web": ["10.0.0.5:80", "[::1]:81"]}) == {
        "api": ["127.0.0.11:8000"], "web": ["10.0.0.5:80", "[::1]:81"]}
