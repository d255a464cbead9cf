"""`make plan SINCE=<previous plan json>`: what an update does to each resource, and which steps drop traffic."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components.targets.update_rules import CONTAINER, RolloutFacts, UnclassifiedInputError, classify, kubernetes_rollout
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


def _kinds(update: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(kind, name) -> action of every step that does something (a workload's Service shares its name)."""
    return {(s["type"].rsplit(":", 1)[-1], s["name"]): s["action"] for s in update["steps"] if s["action"] != "unchanged"}


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
    with pytest.raises(UnclassifiedInputError, match=r"^docker:index/container:Container: .*noSuchInput"):
        classify(CONTAINER, {"image", "noSuchInput"})
    with pytest.raises(UnclassifiedInputError, match=r"^docker:index/network:Network: .*'mtu'"):
        classify("docker:index/network:Network", {"mtu"})
    assert classify(CONTAINER, {"memory"}) == "update" and classify(CONTAINER, {"memory", "envs"}) == "replace"


def test_a_command_with_an_update_script_runs_it_when_its_triggers_change() -> None:
    """pulumi-command: new `triggers` replace a Command (its create runs again) unless it has an `update` command."""
    assert classify("command:local:Command", {"triggers"}, {"update": "reload"}) == "update"
    assert classify("command:local:Command", {"triggers"}, {}) == "replace"
    assert classify("command:local:Command", {"stdin"}, {}) == "update"


def test_a_healthcheck_change_replaces_the_container() -> None:
    """Docker cannot change a running container's healthcheck: the provider recreates it (delete-first here, one
    replica: a gap)."""
    assert classify(CONTAINER, {"healthcheck"}) == "replace"
    update = since.update_plan(_fingerprints("dev"), _fingerprints("dev", _workload("api", health={"kind": "http", "interval_s": 9})))
    assert _actions(update) == {"shop-dev-api-0": "replaced"} and update["drops_traffic"]


# -- Kubernetes: what each controller does with a new pod template (hand-worked from the Kubernetes docs) -----------

def test_a_single_replica_statefulset_image_change_recreates_its_pod_and_says_it_drops_traffic() -> None:
    """The boutique's Redis: a StatefulSet has no surge, its one pod is terminated before the new one starts."""
    newer = _workload("redis-cart", image="docker.io/library/redis:7.2.6-alpine")
    update = since.update_plan(_fingerprints("boutique"), _fingerprints("boutique", newer))
    assert _kinds(update) == {("StatefulSet", "boutique-redis-cart"): "recreated",
                              ("Service", "boutique-redis-cart"): "updated in place"}  # its version label
    (warning,) = update["warnings"]
    assert warning.startswith("boutique-redis-cart: a single-replica StatefulSet") and update["drops_traffic"]


def test_a_deployment_image_change_rolls_surge_first_without_a_gap() -> None:
    """maxSurge 1, maxUnavailable 0: a new pod is Ready before an old one goes."""
    update = since.update_plan(_fingerprints("boutique"), _fingerprints("boutique", _workload("cartservice", image="cartservice:v2")))
    assert _kinds(update) == {("Deployment", "boutique-cartservice"): "rolled",  # the version label changes on the others
                              ("Service", "boutique-cartservice"): "updated in place",
                              ("PodDisruptionBudget", "boutique-cartservice"): "updated in place"}
    assert update["warnings"] == []


def test_a_claim_template_change_replaces_the_statefulset_under_its_own_name() -> None:
    """volumeClaimTemplates is immutable (a pulumi-kubernetes forceNew field): the set is replaced, and as its name
    stays the old one is deleted first."""
    def bigger(values: dict[str, Any]) -> None:
        next(w for w in values["netopt:workloads"] if w["name"] == "redis-cart")["volumes"][0]["size_mb"] = 2048

    update = since.update_plan(_fingerprints("boutique"), _fingerprints("boutique", bigger))
    assert _kinds(update) == {("StatefulSet", "boutique-redis-cart"): "replaced"}
    (warning,) = update["warnings"]
    assert "StatefulSet keeps its name, so it is deleted before it is created again" in warning


def _facts(kind: str, replicas: int | None, strategy: str = "RollingUpdate", surge: Any = None, unavailable: Any = None,
           partition: int = 0) -> RolloutFacts:
    return RolloutFacts(kind, replicas, strategy, surge, unavailable, partition)


@pytest.mark.parametrize(("facts", "action", "drops", "how"), [
    # Deployment RollingUpdate defaults 25 % / 25 %: 4 replicas -> surge ceil(1) = 1, unavailable floor(1) = 1
    (_facts("Deployment", 4), "rolled", False, "surge 1, at most 1 unavailable"),
    # 10 replicas, 25 %: surge rounds 2.5 up to 3, unavailable rounds 2.5 down to 2
    (_facts("Deployment", 10, surge="25%", unavailable="25%"), "rolled", False, "surge 3, at most 2 unavailable"),
    # one replica, no surge, one may be unavailable: the only pod stops before its successor is ready
    (_facts("Deployment", 1, surge=0, unavailable=1), "rolled", True, "surge 0, at most 1 unavailable"),
    (_facts("Deployment", 1, surge=1, unavailable=0), "rolled", False, "surge 1, at most 0 unavailable"),
    # the controller keeps replicas - maxUnavailable available: with 1 - 1 = 0 the old pod may go first, surge or not
    (_facts("Deployment", 1, surge=1, unavailable=1), "rolled", True, "surge 1, at most 1 unavailable"),
    (_facts("Deployment", 4, surge=0, unavailable=1), "rolled", False, "surge 0, at most 1 unavailable"),
    (_facts("Deployment", 3, strategy="Recreate"), "recreated", True, "all pods killed, then the new ones created"),
    (_facts("StatefulSet", 1, unavailable=1), "recreated", True, "pod deleted, then recreated"),
    (_facts("StatefulSet", 3, unavailable=1), "rolled", False, "1 pod(s) at a time from ordinal 2 down to 0, each Ready before the next"),
    (_facts("StatefulSet", 3, unavailable=3), "rolled", True, "3 pod(s) at a time from ordinal 2 down to 0, each Ready before the next"),
    # a StatefulSet's maxUnavailable percentage rounds up: 50 % of 3 = 1.5 -> 2, 67 % of 3 = 2.01 -> 3 (all of them)
    (_facts("StatefulSet", 3, unavailable="50%"), "rolled", False, "2 pod(s) at a time from ordinal 2 down to 0, each Ready before the next"),
    (_facts("StatefulSet", 3, unavailable="67%"), "rolled", True, "3 pod(s) at a time from ordinal 2 down to 0, each Ready before the next"),
    (_facts("StatefulSet", 3, partition=2), "rolled", False, "1 pod(s) at a time from ordinal 2 down to 2, each Ready before the next"),
    (_facts("StatefulSet", 3, partition=3), "staged", False, "partition 3 ≥ replicas: no pod is updated"),
    (_facts("StatefulSet", 1, strategy="OnDelete"), "staged", False, "OnDelete: each pod takes the new template only when it is deleted"),
    (_facts("DaemonSet", None), "rolled", False, "one node at a time, the node's old pod killed before its new one starts"),
])
def test_kubernetes_rollouts_follow_the_controllers(facts: RolloutFacts, action: str, drops: bool, how: str) -> None:
    step = kubernetes_rollout(facts)
    assert (step.action, step.drops is not None, step.how) == (action, drops, how)


@pytest.mark.parametrize(("kind", "changed", "expected"), [
    ("core/v1:Service", {"spec.clusterIP"}, "replace"), ("core/v1:Service", {"spec.ports", "metadata"}, "update"),
    ("core/v1:ConfigMap", {"data"}, "replace"), ("core/v1:ConfigMap", {"metadata"}, "update"),
    ("apps/v1:StatefulSet", {"spec.volumeClaimTemplates"}, "replace"), ("apps/v1:StatefulSet", {"spec.serviceName"}, "replace"),
    ("apps/v1:StatefulSet", {"spec.template", "spec.replicas", "spec.updateStrategy"}, "update"),
    ("apps/v1:Deployment", {"spec.selector"}, "replace"), ("apps/v1:Deployment", {"spec.template", "spec.strategy"}, "update"),
    ("networking.k8s.io/v1:NetworkPolicy", {"spec.egress", "spec.ingress"}, "update"),
    ("policy/v1:PodDisruptionBudget", {"spec.maxUnavailable"}, "update"),
    ("autoscaling/v2:HorizontalPodAutoscaler", {"spec.maxReplicas"}, "update"),
    ("core/v1:Namespace", {"metadata.name"}, "replace"), ("apps/v1:Deployment", {"metadata.namespace"}, "replace"),
])
def test_kubernetes_replacements_follow_the_providers_force_new_fields(kind: str, changed: set[str], expected: str) -> None:
    assert classify(f"kubernetes:{kind}", changed) == expected


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
