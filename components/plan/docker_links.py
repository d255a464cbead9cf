"""Docker isolation by construction: one internal network ("link") per hop of the service graph, in one direction.

Docker has no NetworkPolicy: two containers on one bridge network can always connect, both ways. So every hop the
application needs gets a network of its own, joined by exactly its two ends, and only the end that should accept
connections listens there:

- `<net>.ingress.<w>`: the gateway and the replicas of `w`, a workload some route sends traffic to;
- `<net>.call.<caller>.<callee>`: the caller's replicas and the callee's service proxy, which answers there to the
  callee's name (DNS alias) and listens on its address on this link only — the link a call arrives on names its
  caller, so per-caller limits cannot be forged;
- `<net>.serve.<w>`: the service proxy that serves calls to `w` (its own, or its callee's when `w` is a version
  in a split) and the replicas of `w`. The proxy only connects here; it listens nowhere on this link.

So a callee's replicas share no network with any caller (calls reach them only through the proxy), a callee cannot
open a connection back to a caller, and two workloads with no declared call between them share nothing.

Every link's subnet is one block of `network.subnet`, all blocks the size of the largest link (a power of two).
Blocks are placed so a graph change moves few addresses: workload i's ingress link takes block 2i and its serve link
block 2i + 1, from the bottom up, so adding or removing a route or a call never moves a replica's address there;
the call links take the blocks from the top down, in declaration order. Addresses inside a block are fixed: .1 the
bridge, then the listening end's members by number, then the connecting end's. Pure: reads a `Spec`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from components.plan.graph import GATEWAY, proxy_name, routed_workloads, serving_proxies
from components.spec.schema import Spec

_RESERVED = 3  # network address, the bridge's own (.1), broadcast
LinkKind = Literal["ingress", "call", "serve"]


@dataclass(frozen=True)
class Link:
    kind: LinkKind
    name: str  # the Docker network's name
    subnet: ipaddress.IPv4Network
    server: str  # who listens: a workload's replicas (ingress, serve), or the callee's proxy (call: `proxy_name`)
    client: str  # who connects: the gateway (ingress), the caller's replicas (call), the serving proxy (serve)
    alias: str  # the name the listening end answers to on this link
    server_ips: tuple[str, ...]  # the listening end's members, by number
    client_ips: tuple[str, ...]  # the connecting end's: the gateway's or a proxy's one address, or the caller's replicas


def link_name(network: str, kind: LinkKind, *ends: str) -> str:
    """Names and workloads are DNS labels (no dots), so the parts keep kinds and ends apart."""
    return ".".join((network, kind, *ends))


def _planned(spec: Spec) -> list[tuple[LinkKind, int | None, str, str, str, int, int]]:
    """(kind, workload block index or None for a call link, server, client, alias, servers, clients) per link."""
    routed = set(routed_workloads(spec))
    owners = serving_proxies(spec)
    planned: list[tuple[LinkKind, int | None, str, str, str, int, int]] = []
    for i, w in enumerate(spec.workloads):
        if w.name in routed:
            planned.append(("ingress", 2 * i, w.name, GATEWAY, w.name, w.replicas, 1))
        owner = owners.get(w.name)
        if owner is not None:
            planned.append(("serve", 2 * i + 1, w.name, proxy_name(owner), w.name, w.replicas, 1))
    for caller in spec.workloads:
        for callee in dict.fromkeys(call.workload for call in caller.calls):  # one link per pair, whichever ports it calls
            planned.append(("call", None, proxy_name(callee), caller.name, callee, 1, caller.replicas))
    return planned


def block_size(spec: Spec) -> int:
    """Addresses per link: the smallest power of two holding the largest link's members and the reserved three."""
    need = max((servers + clients + _RESERVED for *_, servers, clients in _planned(spec)), default=_RESERVED + 1)
    return 1 << (need - 1).bit_length()


def blocks_needed(spec: Spec) -> int:
    """Blocks the layout spans: two per workload up to the last one with a link, and one per call."""
    planned = _planned(spec)
    bottom = max((index + 1 for _, index, *_ in planned if index is not None), default=0)
    return bottom + sum(1 for kind, *_ in planned if kind == "call")


def room_needed(spec: Spec) -> tuple[int, int]:
    """(links, the prefix length of a subnet that holds them all): for validation's message."""
    total = max(blocks_needed(spec), 1) * block_size(spec)
    return len(_planned(spec)), 32 - (total - 1).bit_length()


def links(spec: Spec) -> list[Link]:
    """Every link: ingress and serve links in workload order, then call links. The caller has validated that
    `network.subnet` holds them."""
    subnet = spec.network.subnet
    assert subnet is not None, "validated: the docker target requires network.subnet"
    size = block_size(spec)
    top = subnet.num_addresses // size - 1
    result = []
    calls = 0
    for kind, index, server, client, alias, servers, clients in _planned(spec):
        if index is None:
            index, calls = top - calls, calls + 1
        base = subnet.network_address + index * size
        ends = (alias,) if kind != "call" else (client, alias)
        result.append(Link(
            kind=kind,
            name=link_name(spec.network.name, kind, *ends),
            subnet=ipaddress.IPv4Network((base, 32 - (size - 1).bit_length())),
            server=server,
            client=client,
            alias=alias,
            server_ips=tuple(str(base + 2 + r) for r in range(servers)),
            client_ips=tuple(str(base + 2 + servers + c) for c in range(clients)),
        ))
    return result
