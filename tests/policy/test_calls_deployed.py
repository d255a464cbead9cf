"""The call gates' reading of deployed service proxy configs (policies/calls_deployed.py), against the plan's proxies.

The plan's IR is what the renderer wrote each config from; the pack reads the config back with crossplane and its
own code (nothing from `components`): every call route, with its timeouts, limits and upstream, must come back as
the plan has it, on every shipped stack and the boutique on both targets. Hand edits move what nginx would do.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from components.plan.ir import Proxy
from components.resources.app_network import analyse
from components.resources.pulumi_config import namespace_values
from components.spec.validation import parse_spec
from components.targets import proxy_config
from offline.program import run_stack
from offline.stack_config import cli_config, stack_file
from policies.calls_deployed import VARIES, DeployedCall, deployed_calls, deployed_workloads, nginx_seconds
from policies.model import DOCKER_CONTAINER

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def _container(proxy: str, text: str) -> SimpleNamespace:
    """A Docker service proxy container as the engine sends it: its labels and its nginx.conf upload."""
    labels = [{"label": "netopt.role", "value": "service-proxy"}, {"label": "netopt.proxy", "value": proxy}]
    props = {"labels": labels, "uploads": [{"file": "/etc/nginx/nginx.conf", "content": text}]}
    return SimpleNamespace(resource_type=DOCKER_CONTAINER, name=f"c-{proxy}", props=props, urn=f"urn:{proxy}")


def _rendered(stack: str, target: str | None = None) -> list[tuple[Proxy, str]]:
    config = cli_config(stack_file(stack))
    if target is not None:
        config = {**config, "netopt:target": target}
    if target == "docker":  # one Docker host publishes the gateway's port once
        config["netopt:gateway"] = json.dumps({**json.loads(config["netopt:gateway"]), "replicas": 1})
    deployment_target, plan, _ = analyse(parse_spec(namespace_values(config)))
    return [(proxy, proxy_config(deployment_target, proxy)) for proxy in plan.services]


@pytest.mark.parametrize(("stack", "target"), [("dev", None), ("staging", None), ("prod", None), ("boutique", "kubernetes"),
                                               ("boutique", "docker")])
def test_every_call_route_reads_back_as_the_plan_rendered_it(stack: str, target: str | None) -> None:
    rendered = _rendered(stack, target)
    assert rendered
    for proxy, text in rendered:
        calls = {call.route: call for call in deployed_calls([_container(proxy.name, text)])}
        assert set(calls) == {route.name for route in proxy.routes}, proxy.name
        upstream = proxy.upstreams[0]
        for route in proxy.routes:
            call = calls[route.name]
            assert not call.problems, call.problems
            assert call.callee == proxy.workload and call.caller == route.caller
            assert call.forward == {"http": "proxy_pass", "grpc": "grpc_pass", "tcp": "stream"}[proxy.protocol]
            assert call.read_timeout_s == pytest.approx(proxy.timeouts.read_s)
            assert call.connect_timeout_s == pytest.approx(proxy.timeouts.connect_s)
            rate = proxy.limit("rate", route.rate_limit) if route.rate_limit else None
            assert [b.value for b in call.rates] == ([pytest.approx(rate.rps)] if rate else [])
            assert route.concurrency_limit is not None
            connections = proxy.limit("concurrency", route.concurrency_limit)
            assert [(b.value, b.key) for b in call.connections] == [(connections.connections, "global")]
            assert call.upstream is not None and call.upstream.name == upstream.name
            assert [(m.weight, m.backup) for m in call.upstream.members] == [(s.weight, s.backup) for s in upstream.servers]
            assert call.upstream.pooled == (upstream.keepalive is not None)
            assert call.upstream.method[:1] == (() if upstream.method.kind == "round_robin" else (upstream.method.kind,))


def _auth_proxy(edit: tuple[str, str] | None = None) -> dict[str, DeployedCall]:
    (proxy, text), = [(p, t) for p, t in _rendered("dev") if p.workload == "auth"]
    if edit is not None:
        assert edit[0] in text
        text = text.replace(*edit)
    return {call.route: call for call in deployed_calls([_container(proxy.name, text)])}


def test_hand_edits_move_what_nginx_would_do() -> None:
    calls = _auth_proxy(("    proxy_read_timeout 1s;\n", "    proxy_read_timeout 2m30s;\n"))
    assert {c.read_timeout_s for c in calls.values()} == {150.0}
    calls = _auth_proxy(("    proxy_read_timeout 1s;\n", ""))
    assert {c.read_timeout_s for c in calls.values()} == {None}, "nginx's default is no timeout of the stack's"
    (anchor,) = re.findall(r"limit_conn netopt_cl_api \d+;", dict((p.workload, t) for p, t in _rendered("dev"))["auth"])
    calls = _auth_proxy((anchor, anchor + "\n            proxy_read_timeout 7s;"))
    assert calls["api.auth"].read_timeout_s == 7.0 and calls["api-canary.auth"].read_timeout_s == 1.0  # a location's own wins
    calls = _auth_proxy(("api.auth global;\n    }\n    map $netopt_route $netopt_rl_api_2dcanary", "api.auth $binary_remote_addr;\n    }\n"
                                                                                                  "    map $netopt_route $netopt_rl_api_2dcanary"))
    assert [b.key for b in calls["api.auth"].rates] == [VARIES], "a per-client key: one bucket per caller address"
    calls = _auth_proxy(("    map $netopt_route $netopt_cl_api {\n        default \"\";\n        api.auth global;",
                         "    map $netopt_route $netopt_cl_api {\n        default \"\";\n        api.auth \"\";"))
    assert calls["api.auth"].connections == () and calls["api-canary.auth"].connections, "an empty key is not counted"


@pytest.mark.parametrize(("text", "seconds"), [("1s", 1.0), ("500ms", 0.5), ("1m30s", 90.0), ("75", 75.0), ("2h", 7200.0),
                                               ("1d", 86400.0), ("", None), ("1x", None), ("s", None), ("1s 2s", None)])
def test_nginx_times(text: str, seconds: float | None) -> None:
    assert nginx_seconds(text) == seconds


def test_members_trace_to_the_deployed_workloads_and_their_replicas() -> None:
    resources = [SimpleNamespace(resource_type=r.type, name=r.name, props=json.loads(json.dumps(r.inputs)), urn=r.urn) for r in run_stack("prod")]
    workloads = deployed_workloads(resources)
    calls: dict[str, Any] = {call.route: call for call in deployed_calls(resources)}
    (member,) = calls["-.api"].upstream.members
    served = workloads.serving(member.address)
    assert served is not None and (served.workload, served.count) == ("api", 3)  # the Deployment has no replicas: its autoscaler's min
    dev = [SimpleNamespace(resource_type=r.type, name=r.name, props=json.loads(json.dumps(r.inputs)), urn=r.urn) for r in run_stack("dev")]
    calls = {call.route: call for call in deployed_calls(dev)}
    (member,) = calls["api.auth"].upstream.members
    served = deployed_workloads(dev).serving(member.address)
    assert served is not None and (served.workload, served.replica, served.count) == ("auth", 0, 1)


def _imports(module: str) -> set[str]:
    tree = ast.parse((POLICIES / f"{module}.py").read_text())
    return {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}


def test_the_call_gates_import_nothing_from_components() -> None:
    # They verify what the program deployed (service proxy configs, a mesh's resources): a shared reading of the config
    # would be a shared bug. Followed through every policies module they import.
    for gates in ("calls", "calls_deployed", "calls_mesh", "mesh_index", "mesh"):
        seen, todo = set(), [gates]
        while todo:
            module = todo.pop()
            seen.add(module)
            imported = _imports(module)
            assert imported and not any(name.startswith("components") for name in imported), (gates, module, imported)
            todo += [name.removeprefix("policies.") for name in imported if name.startswith("policies.")
                     and name.removeprefix("policies.") not in seen]
        assert {"calls_mesh", "mesh_index"} <= seen or gates in ("calls_deployed", "calls_mesh", "mesh_index"), seen
