"""NetworkPolicies on the kubernetes target, checked by network-config-analyzer: the connectivity it computes from
the rendered manifests is exactly the declared service graph — the gateway to routed workloads, each declared
call, DNS, the configured sources to the gateway — and nothing else, in either direction."""

from __future__ import annotations

import copy
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from components.spec.schema import Spec
from components.spec.validation import parse_spec
from offline.manifests import manifests
from offline.program import run_program
from offline.stack_config import cli_config, stack_file
from tests.conftest import stack_spec
from tests.kubernetes.conftest import PROD, by_kind
from tests.kubernetes.nca import DNS, DNS_POD, Connection, connectivity, deployment, in_namespace, tcp


def _range(cidr: Any) -> str:
    """How nca prints an address block: `first-last`, or the address alone for a single one."""
    network = ipaddress.ip_network(str(cidr))
    return str(network[0]) if network.num_addresses == 1 else f"{network[0]}-{network[-1]}"


def declared(spec: Spec, namespace: str) -> set[Connection]:
    """The connections the spec asks for, written out from the spec's own keys (not from components.plan.graph).

    Without a mesh every call goes caller -> `<callee>-proxy` (a Deployment) -> each version of the callee (the
    callee itself, or the workloads of its `traffic_policy.split`); under a mesh, caller -> each version."""
    ports = {w.name: int(w.port or 0) for w in spec.workloads}
    kinds = {w.name: "StatefulSet" if any(v.kind == "persistent" for v in w.volumes) else "Deployment" for w in spec.workloads}
    proxies = spec.kubernetes.mesh == "none"

    def pod(name: str) -> str:
        return deployment(namespace, name) if kinds.get(name, "Deployment") == "Deployment" else f"{namespace}/{name}[{kinds[name]}]"

    def versions(callee: str) -> list[str]:
        split = spec.workload(callee).traffic_policy.split
        return [b.workload for b in split] if split else [callee]

    called = {c.workload for w in spec.workloads for c in w.calls}
    gateway = pod("gateway")
    expected = {Connection(pod(name), DNS_POD, DNS) for name in ["gateway", *ports, *(f"{c}-proxy" for c in called if proxies)]}
    expected |= {Connection(_range(cidr), gateway, tcp(spec.gateway.listen_port)) for cidr in spec.gateway.allowed_sources}
    expected |= {Connection(gateway, pod(b.workload), tcp(ports[b.workload])) for r in spec.routes for b in r.backends}
    for w in spec.workloads:
        for c in w.calls:
            if proxies:
                expected.add(Connection(pod(w.name), pod(f"{c.workload}-proxy"), tcp(ports[c.workload])))
                expected |= {Connection(pod(f"{c.workload}-proxy"), pod(v), tcp(ports[v])) for v in versions(c.workload)}
            else:
                expected |= {Connection(pod(w.name), pod(v), tcp(ports[v])) for v in versions(c.workload)}
    return expected


def test_prod_connectivity_is_exactly_the_declared_graph(prod_manifests: list[dict[str, Any]], tmp_path: Path) -> None:
    spec = stack_spec(PROD)
    assert any(w.calls for w in spec.workloads), "prod declares service-to-service calls"
    namespace = "shop-prod"
    found = in_namespace(connectivity(prod_manifests, tmp_path), namespace)
    expected = declared(spec, namespace)
    assert found - expected == set(), "allowed but not declared"
    assert expected - found == set(), "declared but denied"


def test_default_deny_covers_both_directions(prod_manifests: list[dict[str, Any]]) -> None:
    policies = by_kind(prod_manifests)["NetworkPolicy"]
    assert policies["default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert "default-deny-ingress" not in policies


def _k8s(raw: dict[str, Any]) -> dict[str, str]:
    """CLI form, as the engine passes config to a program: strings as they are, everything else as JSON."""
    return {f"netopt:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}


def test_a_call_opens_exactly_caller_to_proxy_to_callee_and_an_unrouted_workload_is_closed_to_the_gateway(
        k8s_minimal: dict[str, Any], tmp_path: Path) -> None:
    raw = copy.deepcopy(k8s_minimal)
    raw["workloads"].append({**copy.deepcopy(raw["workloads"][0]), "name": "ledger", "port": 7000})
    raw["workloads"][0]["calls"] = [{"workload": "ledger", "ratio": 0.5}]  # internal-only: no route reaches it
    spec = parse_spec(raw)
    caller = raw["workloads"][0]["name"]
    found = in_namespace(connectivity(manifests(run_program(_k8s(raw), "dev")), tmp_path / "a"), "t")
    assert found == declared(spec, "t")
    proxy, ledger = deployment("t", "ledger-proxy"), deployment("t", "ledger")
    assert Connection(deployment("t", caller), proxy, tcp(7000)) in found
    assert Connection(proxy, ledger, tcp(7000)) in found
    assert Connection(deployment("t", caller), ledger, tcp(7000)) not in found, "the caller reaches ledger only through its proxy"
    assert {c.source for c in found if c.destination == proxy} == {deployment("t", caller)}
    assert {c.source for c in found if c.destination == ledger} == {proxy}
    assert {c.destination for c in found if c.source == ledger} == {DNS_POD}, "ledger calls no one, not even back"
    assert {c.destination for c in found if c.source == proxy} == {ledger, DNS_POD}, "the proxy opens nothing back to its caller"

    del raw["workloads"][0]["calls"]
    closed = in_namespace(connectivity(manifests(run_program(_k8s(raw), "dev")), tmp_path / "b"), "t")
    assert not any(c.destination == ledger for c in closed), "without the call nobody reaches ledger"
    assert not any("ledger-proxy" in c.source + c.destination for c in closed), "and it has no proxy"


@pytest.mark.parametrize("sources", [["203.0.113.0/24", "2001:db8:1::/48"], ["198.51.100.7/32"]])
def test_only_the_configured_sources_reach_the_gateway(sources: list[str], tmp_path: Path) -> None:
    config = cli_config(stack_file(PROD))
    gateway = json.loads(config["netopt:gateway"])
    gateway["allowed_sources"] = sources
    config = {**config, "netopt:gateway": json.dumps(gateway)}
    documents = manifests(run_program(config, PROD))
    found = in_namespace(connectivity(documents, tmp_path), "shop-prod")
    inbound = {c.source for c in found if c.destination == deployment("shop-prod", "gateway")}
    assert inbound == {_range(s) for s in sources}
    service = by_kind(documents)["Service"]["gateway"]["spec"]
    assert service["loadBalancerSourceRanges"] == sources


def _one_direction(documents: list[dict[str, Any]], keep: str) -> list[dict[str, Any]]:
    """The manifests with only the `keep` ("Ingress" or "Egress") half of every NetworkPolicy: what that direction
    enforces on its own."""
    kept = []
    for document in copy.deepcopy(documents):
        if document["kind"] == "NetworkPolicy":
            spec = document["spec"]
            if keep not in spec["policyTypes"]:
                continue
            spec["policyTypes"] = [keep]
            spec.pop("ingress" if keep == "Egress" else "egress", None)
        kept.append(document)
    return kept


def _pod(namespace: str, name: str) -> bool:
    return name.startswith(f"{namespace}/")


@pytest.mark.parametrize("direction", ["Egress", "Ingress"])
def test_each_direction_alone_allows_exactly_the_declared_graph(prod_manifests: list[dict[str, Any]], tmp_path: Path, direction: str) -> None:
    """Both halves enforce the graph, ports included: with ingress stripped, what leaves each pod is exactly its declared
    flows (a dropped egress `ports` would open every port of the callee); with egress stripped, what reaches each pod."""
    spec, namespace = stack_spec(PROD), "shop-prod"
    found = in_namespace(connectivity(_one_direction(prod_manifests, direction), tmp_path), namespace)

    def side(connection: Connection) -> bool:
        return _pod(namespace, connection.source if direction == "Egress" else connection.destination)

    assert {c for c in found if side(c)} == {c for c in declared(spec, namespace) if side(c)}
