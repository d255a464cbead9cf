"""Gateway hardening visible in the config and the resources (issue 11 items 5 and 7): client timeouts as typed
settings, access control before the limits, stub_status for loopback only, and every backend non-root."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from components.resources.app_network import analyse
from components.spec.validation import SpecError, parse_spec
from components.targets import proxy_config
from offline.program import RecordedResource, run_program, run_stack
from offline.stack_config import cli_config, stack_file
from testbed.nginx_runner import nginx_t
from tests.conftest import stack_spec


def _config(raw: dict[str, Any]) -> str:
    target, plan, _ = analyse(parse_spec(raw))
    return proxy_config(target, plan.gateway)


def test_client_timeouts_have_safe_defaults_and_follow_the_spec(minimal: dict[str, Any]) -> None:
    default = _config(minimal)
    for directive in ("client_header_timeout 10s;", "client_body_timeout 10s;", "send_timeout 10s;", "keepalive_timeout 65s;"):
        assert f"\n    {directive}" in default, directive  # http level; old main left the 60 s defaults
    minimal["gateway"]["client_timeouts"] = {"header_s": 2.5, "body_s": 3, "send_s": 4, "keepalive_s": 5}
    tuned = _config(minimal)
    assert all(d in tuned for d in ("client_header_timeout 2500ms;", "client_body_timeout 3s;", "send_timeout 4s;", "keepalive_timeout 5s;"))


def test_client_timeouts_must_be_positive(minimal: dict[str, Any]) -> None:
    minimal["gateway"]["client_timeouts"] = {"header_s": 0}
    with pytest.raises(SpecError, match=r"netopt:gateway\.client_timeouts\.header_s"):
        parse_spec(minimal)


def test_denied_sources_are_refused_in_the_server_rewrite_phase(minimal: dict[str, Any]) -> None:
    minimal["gateway"]["allowed_sources"] = ["10.1.0.0/16", "2001:db8::/32"]
    text = _config(minimal)
    geo = text.split("geo $netopt_denied {")[1].split("}")[0].split()
    assert geo == ["0.0.0.0/0", "1;", "::/0", "1;", "10.1.0.0/16", "0;", "2001:db8::/32", "0;"]
    server = text.split("server {")[1]
    # Before any location (where limit_req/limit_conn live): a denied request never reaches a limit zone.
    assert server.index("if ($netopt_denied) { return 403; }") < server.index("location")
    nginx_t(text)


def test_stub_status_is_loopback_only_on_both_targets() -> None:
    for stack in ("dev", "prod"):
        target, plan, _ = analyse(stack_spec(stack))
        block = proxy_config(target, plan.gateway).split("location = /stub_status {")[1].split("}")[0]
        assert re.findall(r"allow (\S+);", block) == ["127.0.0.1", "::1"], stack  # old main: the whole Docker subnet too


def _backends(resources: list[RecordedResource]) -> list[RecordedResource]:
    """The workloads' replicas: not the gateway, not a service proxy (both run the gateway's image and user)."""
    return [r for r in resources if r.type == "docker:index/container:Container"
            and not any(label["label"] == "netopt.role" for label in r.inputs.get("labels", []))]


def test_docker_backends_run_as_a_non_root_user_like_kubernetes_pods() -> None:
    backends = _backends(run_stack("dev"))
    assert backends and {c.inputs.get("user") for c in backends} == {"65532:65532"}  # old main: the image's user
    spec = stack_spec("prod")
    assert {spec.workload_user(w) for w in spec.workloads} == {spec.kubernetes.run_as_user}


def test_a_workload_may_choose_its_user_but_not_root(minimal: dict[str, Any]) -> None:
    minimal["workloads"][0]["run_as_user"] = "1000:1000"
    spec = parse_spec(minimal)
    assert [spec.workload_user(w) for w in spec.workloads] == ["1000:1000", "65532:65532"]
    minimal["workloads"][0]["run_as_user"] = "0:0"
    with pytest.raises(SpecError, match=r"netopt:workloads\[0\]\.run_as_user"):
        parse_spec(minimal)


def test_a_workloads_own_user_reaches_its_kubernetes_pods() -> None:
    config = cli_config(stack_file("prod"))
    workloads = json.loads(config["netopt:workloads"])
    workloads[0]["run_as_user"] = "1001:1001"
    config["netopt:workloads"] = json.dumps(workloads)
    deployments = {r.name: r for r in run_program(config, "prod") if r.type == "kubernetes:apps/v1:Deployment"}
    users = {name: d.inputs["spec"]["template"]["spec"]["securityContext"]["runAsUser"] for name, d in deployments.items()}
    first = f"shop-prod-{workloads[0]['name']}"
    assert users[first] == 1001
    assert {u for name, u in users.items() if name != first and "gateway" not in name} == {65532}
