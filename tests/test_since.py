"""`make plan SINCE=<previous plan json>`: what an update does to each resource, and which steps drop traffic."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components.targets.update_rules import CONTAINER, UnclassifiedInputError, classify
from offline import since
from offline.program import run_program
from offline.stack_config import PROJECT_DIR, cli_config, stack_file


def _fingerprints(stack: str, change: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    config = cli_config(stack_file(stack))
    if change is not None:
        values = {k: json.loads(v) if v[:1] in "[{" else v for k, v in config.items()}
        change(values)
        config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
    return {"stack": stack, "fingerprints": since.fingerprints(run_program(config, stack))}


def _actions(update: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["action"] for s in update["steps"] if s["action"] != "unchanged"}


def _workload(name: str, **changes: Any) -> Callable[[dict[str, Any]], None]:
    def change(values: dict[str, Any]) -> None:
        next(w for w in values["netopt:workloads"] if w["name"] == name).update(changes)
    return change


def _limit(values: dict[str, Any]) -> None:
    values["netopt:rate_limits"][0]["rps"] = 7


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_the_same_stack_changes_nothing(stack: str) -> None:
    update = since.update_plan(_fingerprints(stack), _fingerprints(stack))
    assert _actions(update) == {} and update["warnings"] == [] and not update["drops_traffic"]


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_a_config_change_on_docker_reloads_the_running_gateway(stack: str) -> None:
    update = since.update_plan(_fingerprints(stack), _fingerprints(stack, _limit))
    assert _actions(update) == {f"shop-{stack}-gateway-config": "reloaded in place"}, "the gateway container stays"
    assert update["warnings"] == []


def test_an_image_change_of_a_multi_replica_workload_rolls_it() -> None:
    update = since.update_plan(_fingerprints("staging"), _fingerprints("staging", _workload("web", image="ghcr.io/acme/shop-web:2.5.0")))
    assert _actions(update) == {"shop-staging-web-0": "rolled", "shop-staging-web-0-settle": "rolled", "shop-staging-web-1": "rolled"}
    assert update["warnings"] == []


def test_a_single_replica_workload_says_its_update_has_a_gap() -> None:
    update = since.update_plan(_fingerprints("dev"), _fingerprints("dev", _workload("api", env={"LOG": "debug"})))
    assert _actions(update) == {"shop-dev-api-0": "replaced"}
    (warning,) = update["warnings"]
    assert "workload api has one replica: its update has a gap" in warning and update["drops_traffic"]


def test_a_memory_change_updates_the_containers_in_place() -> None:
    update = since.update_plan(_fingerprints("staging"), _fingerprints("staging", _workload("auth", resources={"cpu": 0.25, "memory_mb": 192})))
    assert _actions(update) == {"shop-staging-auth-0": "updated in place", "shop-staging-auth-1": "updated in place"}


def test_a_gateway_image_change_replaces_it_and_redelivers_the_config() -> None:
    def change(values: dict[str, Any]) -> None:
        values["netopt:gateway"]["image"] = "docker.io/library/nginx:1.27.4-bookworm"

    update = since.update_plan(_fingerprints("dev"), _fingerprints("dev", change))
    # The service proxies run the gateway's image (README): they are replaced with it, delete-first, configs again.
    nginxes = ("shop-dev-gateway", "shop-dev-api-proxy", "shop-dev-auth-proxy")
    assert _actions(update) == {name: "replaced" for nginx in nginxes for name in (nginx, f"{nginx}-config")}
    assert any("the gateway container is replaced delete-first" in w for w in update["warnings"])
    gaps = sorted(w.split(":")[0] for w in update["warnings"] if "every call to" in w)
    assert gaps == ["shop-dev-api-proxy", "shop-dev-auth-proxy"], update["warnings"]


def test_a_call_limit_change_reloads_the_callee_proxy_in_place() -> None:
    def change(values: dict[str, Any]) -> None:
        next(w for w in values["netopt:workloads"] if w["name"] == "api")["calls"][0]["limit_rps"] = 50

    update = since.update_plan(_fingerprints("dev"), _fingerprints("dev", change))
    assert _actions(update) == {"shop-dev-auth-proxy-config": "reloaded in place"} and update["warnings"] == []


def test_a_config_change_on_kubernetes_rolls_the_gateway_deployment() -> None:
    update = since.update_plan(_fingerprints("prod"), _fingerprints("prod", _limit))
    actions = _actions(update)
    assert actions["shop-prod-gateway"] == "rolled" and actions["shop-prod-gateway-nginx"] == "replaced", actions
    assert set(actions) == {"shop-prod-gateway", "shop-prod-gateway-nginx"} and update["warnings"] == []


def test_an_input_the_rules_cannot_classify_is_an_error() -> None:
    with pytest.raises(UnclassifiedInputError, match="noSuchInput"):
        classify(CONTAINER, {"image", "noSuchInput"})
    assert classify(CONTAINER, {"memory"}) == "update" and classify(CONTAINER, {"memory", "envs"}) == "replace"


def _plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "offline.plan", "--no-policy", *args], cwd=PROJECT_DIR,
                          capture_output=True, text=True, check=False)


def test_make_plan_since_prints_the_update(tmp_path: Path) -> None:
    previous = tmp_path / "dev.json"
    run = _plan("--stack", "dev", "--format", "json")
    assert run.returncode == 0, run.stderr
    previous.write_text(run.stdout)
    text = _plan("--stack", "dev", "--since", str(previous))
    assert text.returncode == 0, text.stderr
    assert "Update since the previous plan (stack dev):" in text.stdout and "no step drops traffic" in text.stdout
    document = json.loads(_plan("--stack", "dev", "--format", "json", "--since", str(previous)).stdout)
    assert {s["action"] for s in document["update"]["steps"]} == {"unchanged"}


def test_a_since_file_without_fingerprints_is_a_clear_error(tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"stack": "dev", "resources": []}))
    run = _plan("--stack", "dev", "--since", str(old))
    assert run.returncode == 1 and "has no `fingerprints`" in run.stderr and "Traceback" not in run.stderr
