"""NetworkPolicies derived from the service graph: default-deny both ways, then exactly the declared hops.

Allowed, and nothing else: DNS from every pod to the cluster DNS; under a mesh, every pod's proxy to the mesh's
control plane (its namespace, its ports: identity, configuration); the configured sources to the gateway's listen
port; the gateway to each workload a route sends traffic to, on its port; each declared call, caller to the
callee's service proxy and the proxy to the callee (or, where a mesh carries the calls, caller to callee), on the
callee's port (`graph.hops`). Every hop is opened on both ends (the source's egress and the destination's ingress),
as NetworkPolicy requires once both directions are denied. Pure data: the kubernetes target turns each into a
resource. `network-config-analyzer` checks the result against `graph.hops` in the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from components.plan.graph import GATEWAY, hops, proxy_name, serving_proxies
from components.spec.schema import Spec
from components.targets.mesh import profile

Selector = Callable[[str], dict[str, str]]


@dataclass(frozen=True)
class PolicyDoc:
    """One NetworkPolicy: its name, the workload (or gateway, or "" for the namespace) it belongs to, its spec."""

    name: str
    owner: str
    spec: dict[str, Any]


def network_policies(spec: Spec, selector: Selector) -> list[PolicyDoc]:
    settings = spec.kubernetes
    dns_peer = {"namespace_selector": {"match_labels": {"kubernetes.io/metadata.name": settings.dns_namespace}},
                "pod_selector": {"match_labels": dict(settings.dns_pod_labels)}}
    docs = [
        PolicyDoc("default-deny", "", {"pod_selector": {}, "policy_types": ["Ingress", "Egress"]}),
        PolicyDoc("allow-dns", "", {"pod_selector": {}, "policy_types": ["Egress"], "egress": [{
            "to": [dns_peer], "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]}),
        PolicyDoc("allow-sources-to-gateway", GATEWAY, {
            "pod_selector": {"match_labels": selector(GATEWAY)},
            "policy_types": ["Ingress"],
            "ingress": [{"from_": [{"ip_block": {"cidr": str(cidr)}} for cidr in spec.gateway.allowed_sources],
                         "ports": [{"port": spec.gateway.listen_port, "protocol": "TCP"}]}],
        }),
    ]
    proxies = spec.kubernetes.mesh == "none"
    if not proxies:
        mesh = profile(spec.kubernetes.mesh)
        docs.append(PolicyDoc("allow-mesh-control-plane", "", {"pod_selector": {}, "policy_types": ["Egress"], "egress": [{
            "to": [{"namespace_selector": {"match_labels": {"kubernetes.io/metadata.name": mesh.control_plane_namespace}}}],
            "ports": [{"port": port, "protocol": "TCP"} for port in mesh.control_plane_ports]}]}))
    needed = hops(spec, service_proxies=proxies)
    fronted = list(dict.fromkeys(serving_proxies(spec).values())) if proxies else []
    for name in [GATEWAY, *(w.name for w in spec.workloads), *(proxy_name(w) for w in fronted)]:
        inbound = [f for f in needed if f.destination == name]
        outbound = [f for f in needed if f.source == name]
        if inbound:
            docs.append(PolicyDoc(f"allow-to-{name}", name, {
                "pod_selector": {"match_labels": selector(name)},
                "policy_types": ["Ingress"],
                "ingress": [{"from_": [{"pod_selector": {"match_labels": selector(f.source)}}],
                             "ports": [{"port": f.port, "protocol": "TCP"}]} for f in inbound],
            }))
        if outbound:
            docs.append(PolicyDoc(f"allow-from-{name}", name, {
                "pod_selector": {"match_labels": selector(name)},
                "policy_types": ["Egress"],
                "egress": [{"to": [{"pod_selector": {"match_labels": selector(f.destination)}}],
                            "ports": [{"port": f.port, "protocol": "TCP"}]} for f in outbound],
            }))
    return docs
