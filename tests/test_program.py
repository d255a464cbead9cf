"""The real program under Pulumi's mocks: component tree, resource counts, and the Docker network boundary."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from components.resources.app_network import analyse
from offline.program import ProgramError, RecordedResource, run_program, run_stack
from offline.stack_config import cli_config, stack_file
from tests.conftest import STACKS, stack_raw, stack_spec

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
DOCKER_STACKS = [s for s in STACKS if stack_spec(s).target == "docker"]


@pytest.fixture(scope="module", params=STACKS)
def stack(request: pytest.FixtureRequest) -> tuple[str, list[RecordedResource]]:
    return request.param, run_stack(request.param)


def test_component_tree(stack: tuple[str, list[RecordedResource]]) -> None:
    name, resources = stack
    spec = stack_spec(name)
    by_urn = {r.urn: r for r in resources}
    counts = Counter(r.type for r in resources)
    assert counts["netopt:index:AppNetwork"] == 1
    assert counts["netopt:index:ContainerNetwork"] == 1
    assert counts["netopt:index:LoadBalancer"] == 1
    assert counts["netopt:index:Workload"] == len(spec.workloads)
    app = next(r for r in resources if r.type == "netopt:index:AppNetwork")
    for resource in resources:
        if resource is not app:
            assert resource.parent in by_urn, f"{resource.name} is not parented inside the AppNetwork"
    report = app.inputs["report"]
    assert report == _as_registered(analyse(spec)[2]), "the AppNetwork carries exactly the report the pure pipeline computes"
    expected = _scores_from_raw_config(stack_raw(name), report["scores"]["routing"], report)
    for key, value in expected.items():
        assert report["scores"][key] == pytest.approx(value, rel=1e-9), key


def _as_registered(value: Any) -> Any:
    """A value as Pulumi registers an input: None-valued keys are dropped."""
    if isinstance(value, dict):
        return {k: _as_registered(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_as_registered(v) for v in value]
    return value


def _scores_from_raw_config(raw: dict[str, Any], routing: float, report: dict[str, Any]) -> dict[str, float]:
    """LB, F and O recomputed from the stack file's raw values (not the spec model, not components/plan/scores.py).

    R needs nginx's location order (tests/test_plan.py and tests/test_scores.py check it by hand); O uses it. The
    call routes' limits are the report's edges (their defaults are hand-worked in tests/test_calls.py): one rule per
    call where callers are told apart (Docker), the callee's total where they are not (Kubernetes)."""
    balanced = {b["workload"] for route in raw["routes"] for b in route["backends"]}
    balanced |= {call["workload"] for w in raw["workloads"] for call in w.get("calls", [])}
    times_ms: list[float] = []
    for w in raw["workloads"]:
        if w["name"] in balanced:
            rt = w["response_time_ms"]
            times_ms += list(rt) if isinstance(rt, list) else [rt] * w.get("replicas", 1)
    lb = sum(1000.0 / t for t in times_ms) / len(times_ms)
    limits = {limit["name"]: limit["rps"] for limit in raw.get("rate_limits", [])}
    rules = [limits[r["rate_limit"]] if r.get("rate_limit") else None for r in raw["routes"]]
    if raw.get("target", "docker") == "docker":
        rules += [edge["limit_rps"] for edge in report["edges"]]
    else:
        totals: dict[str, float] = {}
        for edge in report["edges"]:
            totals[edge["callee"]] = totals.get(edge["callee"], 0.0) + edge["limit_rps"]
        rules += list(totals.values())
    flow = sum(0.0 if rps is None else 1.0 / rps for rps in rules) / len(rules)
    scoring = raw.get("scoring", {})
    references = [(lb, 1000.0 / scoring.get("latency_budget_ms", 100)), (routing, 1.0), (flow, 1.0 / scoring.get("flow_reference_rps", 1000))]
    overall = sum(1.0 / max(1.0, reference / score) for score, reference in references) / 3
    return {"load_balancing": lb, "flow_control": flow, "overall": overall}


@pytest.mark.parametrize("name", DOCKER_STACKS)
def test_docker_resources_and_boundary(name: str) -> None:
    spec = stack_spec(name)
    resources = run_stack(name)
    containers = [r for r in resources if r.type == CONTAINER]
    networks = {r.inputs["name"]: r for r in resources if r.type == NETWORK}
    called = {c["workload"] for w in stack_raw(name)["workloads"] for c in w.get("calls", [])}  # one service proxy each
    assert len(containers) == sum(w.replicas for w in spec.workloads) + 1 + len(called)
    proxies = [c for c in containers if {"label": "netopt.role", "value": "service-proxy"} in c.inputs.get("labels", [])]
    assert sorted(p.inputs["name"] for p in proxies) == sorted(f"{spec.network.name}-{w}-proxy" for w in called)
    edge = f"{spec.network.name}-edge"
    assert networks.pop(edge).inputs["internal"] is False
    assert networks and all(n.inputs["internal"] is True for n in networks.values()), "every link is internal (no route out)"
    gateway = [c for c in containers if {"label": "netopt.role", "value": "gateway"} in c.inputs.get("labels", [])]
    assert len(gateway) == 1
    publishing = [c for c in containers if c.inputs.get("ports")]
    assert publishing == gateway, "only the gateway may publish a port"
    assert gateway[0].inputs["ports"][0]["ip"] == str(spec.gateway.publish.address)
    for container in containers:
        assert container.delete_before_replace
        assert container.inputs["capabilities"]["drops"] == ["ALL"]
        assert "no-new-privileges:true" in container.inputs["securityOpts"]
        assert container.inputs["healthcheck"]["tests"]
        assert container.inputs["memory"] > 0 and float(container.inputs["cpus"]) > 0
        if container not in gateway:
            assert {n["name"] for n in container.inputs["networksAdvanced"]} <= set(networks), "backends and proxies only on internal links"
        if container not in gateway + proxies:  # nginx containers take their config as an upload: Docker refuses it on a read-only root
            assert container.inputs["readOnly"] is True


def test_a_config_change_reaches_the_gateway_by_reload_not_replacement() -> None:
    name = DOCKER_STACKS[0]
    config = cli_config(stack_file(name))

    def gateway(cfg: dict[str, str]) -> tuple[RecordedResource, RecordedResource]:
        resources = run_program(cfg, name)
        container = next(r for r in resources if r.type == CONTAINER and r.name.endswith("-gateway"))
        reload = next(r for r in resources if r.type == "command:local:Command" and r.name.endswith("-gateway-config"))
        return container, reload

    before, reload_before = gateway(config)
    assert (before.inputs, reload_before.inputs) == tuple(r.inputs for r in gateway(config)), "same config, no step"
    limits = json.loads(config["netopt:rate_limits"])
    limits[0]["rps"] = limits[0]["rps"] + 1
    after, reload_after = gateway({**config, "netopt:rate_limits": json.dumps(limits)})
    # The container starts with its bootstrap whatever the routes: nothing of it changes, so nothing replaces it (and it
    # needs no ignore_changes, which would show the policy pack the state's value instead of the program's).
    assert before.ignore_changes is None or before.ignore_changes == []
    assert after.inputs == before.inputs, "the container is unchanged: no replacement"
    assert "proxy_pass" not in before.inputs["uploads"][0]["content"], "the bootstrap serves nothing"
    assert reload_after.inputs["stdin"] != reload_before.inputs["stdin"] and "rate=" in reload_after.inputs["stdin"]
    assert reload_after.property_dependencies["triggers"] == [before.urn], "a new gateway container gets the config again"


def test_invalid_config_registers_nothing() -> None:
    config = cli_config(stack_file(STACKS[0]))
    workloads = json.loads(config["netopt:workloads"])
    workloads[0]["port"] = "http"
    with pytest.raises(ProgramError) as caught:
        run_program({**config, "netopt:workloads": json.dumps(workloads)}, STACKS[0])
    assert "netopt:workloads[0].port" in str(caught.value)
