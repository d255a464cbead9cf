"""Where each replica is reachable from the gateway: the address map every renderer takes.

nginx resolves upstream names once, at load; a name that does not resolve stops it from starting, and a
replaced container's new address would leave it stale. The Docker target therefore gives every backend replica
a fixed IPv4 address from the declared internal subnet: a replaced container comes back on the same address,
and the gateway starts even while a backend is down. The Kubernetes target cannot fix pod addresses, so its map
has one entry per workload, the workload's ClusterIP Service (its address is fixed for the Service's lifetime,
and the Service exists before the gateway starts). Tests supply their own map.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from components.spec import Spec

AddressMap = Mapping[str, list[str]]
"""Workload name -> "host:port" of each upstream member: each replica, indexed by replica number (gateway
balancing), or the workload's Service alone (service balancing, see `balancing.balancing_mode`)."""

GATEWAY_OFFSET = 2
FIRST_REPLICA_OFFSET = 10


def gateway_address(subnet: ipaddress.IPv4Network) -> str:
    return str(subnet.network_address + GATEWAY_OFFSET)


def docker_replica_ips(spec: Spec) -> dict[str, list[str]]:
    """Fixed internal IPs, allocated in declaration order from the subnet's 10th address on."""
    assert spec.network.subnet is not None, "validated: the docker target requires network.subnet"
    base = spec.network.subnet.network_address + FIRST_REPLICA_OFFSET
    ips: dict[str, list[str]] = {}
    offset = 0
    for workload in spec.workloads:
        ips[workload.name] = [str(base + offset + r) for r in range(workload.replicas)]
        offset += workload.replicas
    return ips


def docker_address_map(spec: Spec) -> dict[str, list[str]]:
    return {
        name: [f"{ip}:{spec.workload(name).port}" for ip in ips] for name, ips in docker_replica_ips(spec).items()
    }


def kubernetes_namespace(spec: Spec) -> str:
    return spec.namespace or spec.network.name


def kubernetes_service_host(spec: Spec, workload: str) -> str:
    """The cluster DNS name of a Service in the stack's namespace."""
    return f"{workload}.{kubernetes_namespace(spec)}.svc.{spec.kubernetes.cluster_domain}"


def kubernetes_address_map(spec: Spec) -> dict[str, list[str]]:
    """One member per workload: its ClusterIP Service, which spreads connections over the ready pods."""
    return {w.name: [f"{kubernetes_service_host(spec, w.name)}:{w.port}"] for w in spec.workloads}
