"""Where each replica is reachable from the gateway: the address map every renderer takes.

nginx resolves upstream names once, at load; a name that does not resolve stops it from starting, and a
replaced container's new address would leave it stale. The Docker target therefore gives every backend replica
a fixed IPv4 address on the gateway's own network to its workload (carved from the declared subnet, see
`docker_links`): a replaced container comes back on the same address, and the gateway starts even while a
backend is down. The Kubernetes target cannot fix pod addresses, so its map has one entry per workload, the
workload's ClusterIP Service (its address is fixed for the Service's lifetime, and the Service exists before
the gateway starts). Tests supply their own map.
"""

from __future__ import annotations

from collections.abc import Mapping

from components.plan.docker_links import links
from components.plan.graph import serving_proxies
from components.spec.schema import Spec

AddressMap = Mapping[str, list[str]]
"""Workload name -> "host:port" of each upstream member: each replica, indexed by replica number (gateway
balancing), or the workload's Service alone (service balancing, see `balancing.target_balancing`)."""


def docker_address_map(spec: Spec) -> dict[str, list[str]]:
    """The gateway's: each routed workload's replicas at their fixed addresses on its ingress link (`docker_links`)."""
    return _listening(spec, "ingress")


def docker_serve_map(spec: Spec) -> dict[str, list[str]]:
    """The service proxies': each called workload's (or version's) replicas at their addresses on its serve link."""
    return _listening(spec, "serve")


def _listening(spec: Spec, kind: str) -> dict[str, list[str]]:
    return {link.server: [f"{ip}:{spec.workload(link.server).port}" for ip in link.server_ips] for link in links(spec) if link.kind == kind}


def docker_caller_addresses(spec: Spec, callee: str) -> dict[str, str]:
    """Caller -> the address the callee's service proxy listens on in that caller's call link."""
    return {link.client: link.server_ips[0] for link in links(spec) if link.kind == "call" and link.alias == callee}


def docker_gateway_address(spec: Spec) -> str | None:
    """The gateway's fixed address on the edge network (the first after the bridge's), where alone it listens; None
    without `network.edge_subnet`: Docker then picks the edge subnet, and the gateway listens on every address."""
    edge = spec.network.edge_subnet
    return str(edge.network_address + 2) if edge is not None else None


def kubernetes_namespace(spec: Spec) -> str:
    return spec.namespace or spec.network.name


def kubernetes_service_host(spec: Spec, service: str) -> str:
    """The cluster DNS name of a Service in the stack's namespace."""
    return f"{service}.{kubernetes_namespace(spec)}.svc.{spec.kubernetes.cluster_domain}"


def kubernetes_pods_services(spec: Spec) -> dict[str, str]:
    """Workload -> the Service that selects its own pods: `<w>-backend` when netopt's service proxy fronts the
    workload (the proxy's Service takes the workload's name, which its callers dial), else `<w>`. A mesh carries
    calls to the workload's own Service: no proxy there."""
    fronted = serving_proxies(spec) if spec.kubernetes.mesh == "none" else {}
    return {w.name: f"{w.name}-backend" if w.name in fronted else w.name for w in spec.workloads}


def kubernetes_address_map(spec: Spec) -> dict[str, list[str]]:
    """One member per workload with a port: the Service of its pods, which spreads connections over the ready pods."""
    services = kubernetes_pods_services(spec)
    return {w.name: [f"{kubernetes_service_host(spec, services[w.name])}:{w.port}"] for w in spec.workloads if w.port is not None}
