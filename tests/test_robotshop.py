"""Instana's Robot Shop as its own manifests describe it (tests/demo/Pulumi.robotshop.yaml): every workload expressed as
declared, and a prod plan whose findings are all about the demo (its chart runs one replica of everything, :latest
images, mysql with NET_ADMIN, a consumer without a probe, no rate limit), through the real policy pack."""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from components.plan.capacity import compute_capacity
from components.resources.pulumi_config import namespace_values
from components.spec.validation import SpecError, parse_spec
from offline.analyzer import Analysis, analyze_config, policy_config_path
from offline.manifests import manifests, validate_manifests
from offline.program import run_program
from offline.stack_config import cli_config
from tests.conftest import plan_of
from tests.kubernetes.conftest import by_kind

ROBOTSHOP = Path(__file__).resolve().parent / "demo" / "Pulumi.robotshop.yaml"
STATELESS = ["web", "catalogue", "user", "cart", "shipping", "ratings", "payment", "dispatch"]


def robotshop() -> dict[str, Any]:
    return namespace_values(cli_config(ROBOTSHOP))


def _cli(raw: dict[str, Any]) -> dict[str, str]:
    return {f"netopt:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}


def _analysis(raw: dict[str, Any]) -> Analysis:
    return analyze_config(_cli(raw), "robotshop", policy_config_path("prod"))


def _messages(analysis: Analysis) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for diagnostic in analysis.diagnostics:
        found[diagnostic.policy].append(diagnostic.message)
    return found


@pytest.fixture(scope="module")
def docker_prod() -> Analysis:
    return _analysis(robotshop())


def test_every_workload_is_expressed_as_its_manifests_say() -> None:
    spec = parse_spec(robotshop())
    assert [w.name for w in spec.workloads] == [*STATELESS, "mongodb", "mysql", "redis", "rabbitmq"]
    assert spec.workload("dispatch").port is None and spec.workload("dispatch").load_rps == 0.54
    assert spec.workload("rabbitmq").named_ports() == {"tcp": 5672, "management": 15672, "epmd": 4369}
    assert {w.name for w in spec.workloads if w.singleton} == {"mongodb", "mysql", "redis", "rabbitmq"}
    assert [w.name for w in spec.workloads if w.persistent()] == ["redis"]
    assert spec.workload_user(spec.workload("rabbitmq")) == "100:101" and spec.workload_user(spec.workload("ratings")) == "33:33"
    assert spec.workload("mysql").capabilities.add == ["NET_ADMIN"]


def test_the_queue_consumer_carries_its_declared_load() -> None:
    """payment publishes web's 10 req/s x 0.0538 = 0.538 orders/s; dispatch declares 0.54 and connects once per order."""
    capacity = {w.workload: w for w in compute_capacity(plan_of(parse_spec(robotshop()))).workloads}
    assert capacity["dispatch"].from_load_rps == pytest.approx(0.54) and capacity["dispatch"].from_gateway_rps == 0
    assert capacity["rabbitmq"].arrival_rps == pytest.approx(10 * 0.0538 + 0.54)
    assert capacity["dispatch"].peak_utilization == pytest.approx(0.54 * 0.060 / 1)  # one message at a time, 60 ms each


def test_the_prod_plan_finds_exactly_the_demos_own_gaps(docker_prod: Analysis) -> None:
    # The demo limits nothing at the edge (rate-limits-protect-backends); its calls get netopt's default per-caller
    # limits, which keep the flow-control score above prod's floor.
    assert docker_prod.violated() == {(policy, "mandatory") for policy in (
        "container-hardening", "images-pinned", "health-checks", "min-replicas", "rate-limits-protect-backends")}
    found = _messages(docker_prod)
    (hardening,) = found["container-hardening"]
    assert "robotshop-mysql-0" in hardening and "NET_ADMIN: reconfigure interfaces, routes and firewall rules" in hardening
    (health,) = found["health-checks"]
    assert "robotshop-dispatch-0" in health
    assert len(found["images-pinned"]) == 10, "every robotshop/* image is :latest in the chart's values"
    replicas = found["min-replicas"]
    assert sorted(m.split("workload '")[1].split("'")[0] for m in replicas if "workload '" in m) == sorted(STATELESS)
    assert not any(store in m for m in replicas for store in ("mongodb", "mysql", "redis", "rabbitmq")), "singletons are exempt"
    assert any("the gateway runs 1 replica(s)" in m for m in replicas), "one Docker host publishes one gateway"


def test_a_stateful_workload_is_never_told_to_multiply() -> None:
    raw = robotshop()
    redis = next(w for w in raw["workloads"] if w["name"] == "redis")
    del redis["singleton"]
    (message,) = [m for m in _messages(_analysis(raw))["min-replicas"] if "'redis'" in m]
    assert "keeps state on persistent volumes" in message and "declare singleton: true" in message
    assert "set replicas" not in message


def test_on_kubernetes_the_restricted_namespace_refuses_mysqls_net_admin() -> None:
    raw = {**robotshop(), "target": "kubernetes"}
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    (issue,) = caught.value.issues
    assert issue.path == "netopt:workloads[9].capabilities.add" and issue.message.startswith("NET_ADMIN cannot be added")


def test_on_kubernetes_without_net_admin_the_manifests_are_strict_valid_and_run_as_declared() -> None:
    raw = copy.deepcopy(robotshop())
    raw["target"] = "kubernetes"
    raw["gateway"]["replicas"] = 2
    del next(w for w in raw["workloads"] if w["name"] == "mysql")["capabilities"]
    documents = manifests(run_program(_cli(raw), "robotshop"))
    validate_manifests(documents)
    found = by_kind(documents)
    assert set(found["StatefulSet"]) == {"mongodb", "mysql", "redis", "rabbitmq"}
    assert [t["metadata"]["name"] for t in found["StatefulSet"]["redis"]["spec"]["volumeClaimTemplates"]] == ["data"]
    assert "volumeClaimTemplates" not in found["StatefulSet"]["rabbitmq"]["spec"]
    ratings = found["Deployment"]["ratings"]["spec"]["template"]["spec"]
    assert ratings["securityContext"]["sysctls"] == [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"}]
    assert (ratings["securityContext"]["runAsUser"], ratings["securityContext"]["runAsGroup"]) == (33, 33)
    shipping = found["Deployment"]["shipping"]["spec"]["template"]["spec"]["containers"][0]
    assert (shipping["readinessProbe"]["failureThreshold"], shipping["readinessProbe"]["initialDelaySeconds"]) == (30, 5)
    assert shipping["resources"] == {"limits": {"cpu": "200m", "memory": "1000Mi"}, "requests": {"cpu": "100m", "memory": "500Mi"}}
    assert "dispatch" not in found["Service"]
    # rabbitmq's pods: every named port behind `rabbitmq-backend`; `rabbitmq`, its service proxy, what its callers call.
    assert [p["name"] for p in found["Service"]["rabbitmq-backend"]["spec"]["ports"]] == ["tcp", "management", "epmd"]
    assert [p["name"] for p in found["Service"]["rabbitmq"]["spec"]["ports"]] == ["tcp"]
    verdicts = _analysis(raw).violated()
    assert verdicts == {(policy, "mandatory") for policy in ("images-pinned", "health-checks", "min-replicas", "rate-limits-protect-backends")}
