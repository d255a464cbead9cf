"""Docker isolation by construction: one internal network ("link") per flow of the service graph.

Docker has no NetworkPolicy: two containers on one bridge network can always connect. So every flow the
application needs (gateway -> a routed workload, caller -> callee; `graph.pairs`: one per pair, whichever ports the
caller calls — a bridge cannot tell ports apart) gets a network of its own,
joined by exactly the two ends: the destination's replicas (with the workload's name as DNS alias there) and
the source's (the gateway, or the caller's replicas). Workloads that share no link share no network, so an
undeclared pair cannot connect. A bridge is not directional: on its link the callee could also open a
connection back to the caller (Kubernetes, whose policies are directional, forbids that too; see README).

Every link's subnet is one block carved from `network.subnet`: the gateway's links from the bottom up, the calls'
from the top down, each in flow order, so adding or removing a call never moves a gateway upstream, and adding
or removing a routed workload never moves a call. Addresses inside a block are fixed, as nginx needs them: .1 the
bridge, then the destination's replicas by replica number, then the source's. All blocks have one size, the
smallest power of two that holds the largest link, so growing a workload moves addresses only when it crosses
a power of two. Pure: reads a `Spec`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from components.plan.graph import GATEWAY, Flow, pairs
from components.spec.schema import Spec

_RESERVED = 3  # network address, the bridge's own (.1), broadcast


@dataclass(frozen=True)
class Link:
    flow: Flow
    name: str  # the Docker network's name
    subnet: ipaddress.IPv4Network
    server_ips: tuple[str, ...]  # the destination's replicas, by replica number
    client_ips: tuple[str, ...]  # the source's: the gateway's one address, or the caller's replicas by replica number


def link_name(network: str, flow: Flow) -> str:
    """`<net>.ingress.<workload>` for the gateway's links, `<net>.call.<caller>.<callee>` for calls: names and
    workloads are DNS labels (no dots), so the part counts keep the two kinds apart."""
    if flow.source == GATEWAY:
        return f"{network}.ingress.{flow.destination}"
    return f"{network}.call.{flow.source}.{flow.destination}"


def _members(spec: Spec, flow: Flow) -> tuple[int, int]:
    clients = 1 if flow.source == GATEWAY else spec.workload(flow.source).replicas
    return spec.workload(flow.destination).replicas, clients


def block_size(spec: Spec) -> int:
    """Addresses per link: the smallest power of two holding the largest link's members and the reserved three."""
    need = max((sum(_members(spec, f)) + _RESERVED for f in pairs(spec)), default=_RESERVED + 1)
    return 1 << (need - 1).bit_length()


def room_needed(spec: Spec) -> tuple[int, int]:
    """(links, the prefix length of a subnet that holds them all): for validation's message."""
    count = len(pairs(spec))
    total = max(count, 1) * block_size(spec)
    return count, 32 - (total - 1).bit_length()


def links(spec: Spec) -> list[Link]:
    """Every flow's network, in flow order. The caller has validated that `network.subnet` holds them."""
    subnet = spec.network.subnet
    assert subnet is not None, "validated: the docker target requires network.subnet"
    size = block_size(spec)
    blocks = subnet.num_addresses // size
    result = []
    gateway_links = 0
    for index, flow in enumerate(pairs(spec)):
        if flow.source == GATEWAY:
            gateway_links += 1
            block = index
        else:
            block = blocks - 1 - (index - gateway_links)
        base = subnet.network_address + block * size
        servers, clients = _members(spec, flow)
        result.append(Link(
            flow=flow,
            name=link_name(spec.network.name, flow),
            subnet=ipaddress.IPv4Network((base, 32 - (size - 1).bit_length())),
            server_ips=tuple(str(base + 2 + r) for r in range(servers)),
            client_ips=tuple(str(base + 2 + servers + c) for c in range(clients)),
        ))
    return result
