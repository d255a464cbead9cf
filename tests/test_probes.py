"""Health kinds and protocols on both targets: what each kind renders as (Docker HEALTHCHECK test, Kubernetes
probe), port names and appProtocol per protocol, and what the spec refuses."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from components.spec.validation import SpecError, parse_spec
from offline.manifests import manifests, validate_manifests
from offline.program import run_program
from tests.kubernetes.conftest import by_kind

KINDS: dict[str, dict[str, Any]] = {
    "http": {"kind": "http", "path": "/ready", "headers": {"X-Probe": "kubelet"}},
    "grpc": {"kind": "grpc", "service": "cart.v1.Cart"},
    "tcp": {"kind": "tcp", "port": 6380},
    "exec": {"kind": "exec", "command": ["redis-cli", "ping"]},
    "none": {"kind": "none"},
}
DOCKER_TESTS = {
    "http": ["CMD", "wget", "-q", "-O", "/dev/null", "--header", "X-Probe: kubelet", "http://127.0.0.1:8000/ready"],
    "grpc": ["CMD", "grpc_health_probe", "-addr=127.0.0.1:8000", "-service=cart.v1.Cart"],
    "tcp": ["CMD", "nc", "-z", "127.0.0.1", "6380"],
    "exec": ["CMD", "redis-cli", "ping"],
    "none": ["NONE"],
}
KUBERNETES_HANDLERS: dict[str, dict[str, Any] | None] = {
    "http": {"httpGet": {"path": "/ready", "port": "http", "httpHeaders": [{"name": "X-Probe", "value": "kubelet"}]}},
    "grpc": {"grpc": {"port": 8000, "service": "cart.v1.Cart"}},
    "tcp": {"tcpSocket": {"port": 6380}},
    "exec": {"exec": {"command": ["redis-cli", "ping"]}},
    "none": None,
}


def _cli(raw: dict[str, Any]) -> dict[str, str]:
    return {f"netopt:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}


def _with_internal(minimal: dict[str, Any], health: dict[str, Any], protocol: str = "http") -> dict[str, Any]:
    """MINIMAL plus `cart` (port 8000, called by web, no route) with the given health kind and protocol."""
    raw = copy.deepcopy(minimal)
    raw["workloads"].append({"name": "cart", "image": "cart:1", "port": 8000, "response_time_ms": 5, "max_concurrency": 8,
                             "protocol": protocol, "health": health})
    raw["workloads"][1]["calls"] = [{"workload": "cart"}]
    return raw


@pytest.mark.parametrize("kind", list(KINDS))
def test_docker_healthcheck_per_kind(minimal: dict[str, Any], kind: str) -> None:
    resources = run_program(_cli(_with_internal(minimal, KINDS[kind])), "dev")
    (cart,) = [r for r in resources if r.type == "docker:index/container:Container" and r.name.endswith("-cart-0")]
    assert cart.inputs["healthcheck"]["tests"] == DOCKER_TESTS[kind]


@pytest.mark.parametrize("kind", list(KINDS))
def test_kubernetes_probes_per_kind_validate_strictly(minimal: dict[str, Any], kind: str) -> None:
    raw = _with_internal(minimal, KINDS[kind], protocol="grpc" if kind == "grpc" else "tcp" if kind == "tcp" else "http")
    raw.update(target="kubernetes", network={"name": "t"})
    documents = manifests(run_program(_cli(raw), "dev"))
    passed = validate_manifests(documents)  # raises on any failure
    assert len(passed) == 2 * len(documents) and all(line.endswith("(strict)") for line in passed)
    (container,) = by_kind(documents)["Deployment"]["cart"]["spec"]["template"]["spec"]["containers"]
    expected = KUBERNETES_HANDLERS[kind]
    for probe in ("readinessProbe", "livenessProbe"):
        if expected is None:
            assert probe not in container
        else:
            assert {k: v for k, v in container[probe].items() if k in expected} == expected


@pytest.mark.parametrize(("protocol", "app_protocol"), [("http", "http"), ("grpc", "kubernetes.io/h2c"), ("tcp", None)])
def test_port_names_and_app_protocol_follow_the_protocol(minimal: dict[str, Any], protocol: str, app_protocol: str | None) -> None:
    raw = _with_internal(minimal, {"kind": "tcp"}, protocol=protocol)
    raw.update(target="kubernetes", network={"name": "t"})
    found = by_kind(manifests(run_program(_cli(raw), "dev")))
    (port,) = found["Service"]["cart"]["spec"]["ports"]
    assert (port["name"], port["targetPort"], port.get("appProtocol")) == (protocol, protocol, app_protocol)
    (container,) = found["Deployment"]["cart"]["spec"]["template"]["spec"]["containers"]
    assert container["ports"][0]["name"] == protocol


def test_the_default_probe_follows_the_protocol(minimal: dict[str, Any]) -> None:
    raw = _with_internal(minimal, {"kind": "tcp"}, protocol="grpc")
    del raw["workloads"][2]["health"]
    cart = parse_spec(raw).workload("cart")
    assert cart.health_check().kind == "grpc"
    raw["workloads"][2]["protocol"] = "tcp"
    assert parse_spec(raw).workload("cart").health_check().kind == "tcp"


def test_routes_reach_http_workloads_only(minimal: dict[str, Any]) -> None:
    raw = _with_internal(minimal, {"kind": "grpc"}, protocol="grpc")
    raw["routes"].append({"name": "cart", "match": {"path": "/cart/"}, "backends": [{"workload": "cart"}]})
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    (issue,) = caught.value.issues
    assert issue.path == "netopt:routes[2].backends[0].workload"
    assert "speaks grpc (netopt:workloads[2].protocol), but the gateway proxies HTTP/1.1 only" in issue.message


def test_health_null_is_refused_and_the_old_command_form_is_exec(minimal: dict[str, Any]) -> None:
    minimal["workloads"][0]["health"] = None
    with pytest.raises(SpecError) as caught:
        parse_spec(minimal)
    assert "health: {kind: none}" in str(caught.value)
    minimal["workloads"][0]["health"] = {"command": ["/bin/check"], "interval_s": 3}
    probe = parse_spec(minimal).workload("api").health_check()
    assert probe.kind == "exec" and probe.command == ["/bin/check"]
