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
from components.plan.graph import GATEWAY
from components.spec.schema import Spec

AddressMap = Mapping[str, list[str]]
"""Workload name -> "host:port" of each upstream member: each replica, indexed by replica number (gateway
balancing), or the workload's Service alone (service balancing, see `balancing.target_balancing`)."""


def docker_address_map(spec: Spec) -> dict[str, list[str]]:
    """Each routed workload's replicas at their fixed addresses on the gateway's link to it (`docker_links`)."""
    return {link.flow.destination: [f"{ip}:{spec.workload(link.flow.destination).port}" for ip in link.server_ips]
            for link in links(spec) if link.flow.source == GATEWAY}


def kubernetes_namespace(spec: Spec) -> str:
    return spec.namespace or spec.network.name


def kubernetes_service_host(spec: Spec, workload: str) -> str:
    """The cluster DNS name of a Service in the stack's namespace."""
    return f"{workload}.{kubernetes_namespace(spec)}.svc.{spec.kubernetes.cluster_domain}"


def kubernetes_address_map(spec: Spec) -> dict[str, list[str]]:
    """One member per workload with a port: its ClusterIP Service, which spreads connections over the ready pods."""
    return {w.name: [f"{kubernetes_service_host(spec, w.name)}:{w.port}"] for w in spec.workloads if w.port is not None}
