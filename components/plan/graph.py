"""The service graph: who may talk to whom, and the load each call carries.

Two kinds of flow exist and nothing else: the gateway to every workload a route sends traffic to, and each
declared call, caller to callee. The targets derive their isolation from these flows (NetworkPolicies on
Kubernetes); the capacity model propagates route peaks along the calls. Pure: reads a `Spec`, no Pulumi.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from components.spec.schema import Spec

GATEWAY = "gateway"


def proxy_name(workload: str) -> str:
    """The service proxy in front of calls to `workload`: its proxy, container, Deployment and config are named so."""
    return f"{workload}-proxy"


@dataclass(frozen=True)
class Flow:
    """`source` may open connections to `destination` on `port` (TCP). `source` is a workload or the gateway."""

    source: str
    destination: str
    port: int


def routed_workloads(spec: Spec) -> list[str]:
    """Workloads some route sends traffic to, in declaration order: the only ones the gateway may reach."""
    routed = {b.workload for route in spec.routes for b in route.backends}
    return [w.name for w in spec.workloads if w.name in routed]


def flows(spec: Spec) -> list[Flow]:
    """Every connection the application needs: gateway -> routed workloads (their main port), then each declared call
    (on the callee's port it names, else its main port). A caller calling two ports of one callee has two flows."""
    result = [Flow(GATEWAY, name, int(spec.workload(name).port or 0)) for name in routed_workloads(spec)]
    result += [Flow(w.name, call.workload, spec.workload(call.workload).call_port(call)) for w in spec.workloads for call in w.calls]
    return result


def pairs(spec: Spec) -> list[Flow]:
    """The first flow of every (source, destination) pair, in flow order: who may reach whom, whatever the port."""
    seen: set[tuple[str, str]] = set()
    result = []
    for flow in flows(spec):
        if (flow.source, flow.destination) not in seen:
            seen.add((flow.source, flow.destination))
            result.append(flow)
    return result


def hops(spec: Spec, service_proxies: bool) -> list[Flow]:
    """Every connection the network must carry, one per (source, destination, port): the gateway to each routed
    workload, then each call — through the callee's service proxy (caller -> `<callee>-proxy` on the port it calls,
    then the proxy -> each version on its main port, or -> the callee on another named port it passes through) where
    netopt runs one, or straight to each version where a mesh carries the calls."""
    result = [Flow(GATEWAY, name, int(spec.workload(name).port or 0)) for name in routed_workloads(spec)]
    behind: list[Flow] = []
    for w in spec.workloads:
        for call in w.calls:
            callee = spec.workload(call.workload)
            port = callee.call_port(call)
            main = call.port is None or port == callee.port
            targets = [(v, int(spec.workload(v).port or 0)) for v, _ in versions(spec, call.workload)] if main else [(callee.name, port)]
            if service_proxies:
                result.append(Flow(w.name, proxy_name(call.workload), port))
                behind += [Flow(proxy_name(call.workload), version, version_port) for version, version_port in targets]
            else:
                result += [Flow(w.name, version, version_port) for version, version_port in targets]
    return list(dict.fromkeys(result + behind))


def serving_proxies(spec: Spec) -> dict[str, str]:
    """Workload -> the workload whose service proxy serves calls to it: itself when it is called, or the callee whose
    split lists it. A workload no proxy reaches is not a key."""
    owners: dict[str, str] = {}
    for w in spec.workloads:
        for call in w.calls:
            for version, _ in versions(spec, call.workload):
                owners[version] = call.workload
    return owners


def versions(spec: Spec, name: str) -> tuple[tuple[str, int], ...]:
    """(workload, weight) of what serves calls to `name`: its `traffic_policy.split`, or the workload alone."""
    split = spec.workload(name).traffic_policy.split
    return tuple((b.workload, b.weight) for b in split) if split else ((name, 1),)


def served_calls(spec: Spec, caller: str) -> list[tuple[str, float]]:
    """(workload, calls per request of `caller`) for every workload that serves its calls: a call to a split
    name reaches each version in proportion to its weight."""
    served = []
    for call in spec.workload(caller).calls:
        members = versions(spec, call.workload)
        total = sum(weight for _, weight in members)
        served += [(version, call.ratio * weight / total) for version, weight in members]
    return served


def find_cycle(spec: Spec) -> list[str] | None:
    """A call cycle as the list of workloads around it (first repeated last), or None when the graph is acyclic.

    A cycle has no steady state for the propagated load (every request would call itself again), so it is refused.
    A call to a split name counts as a call to each of its versions.
    """
    callees = {w.name: [v for v, _ in served_calls(spec, w.name)] for w in spec.workloads}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for callee in callees.get(name, []):
            if state.get(callee) == 1:
                return [*path[path.index(callee):], callee]
            if callee not in state and (found := visit(callee)) is not None:
                return found
        path.pop()
        state[name] = 2
        return None

    for w in spec.workloads:
        if w.name not in state and (found := visit(w.name)) is not None:
            return found
    return None


def call_order(spec: Spec) -> list[str]:
    """Workloads with every caller before its callees (the graph must be acyclic: see `find_cycle`)."""
    callees = {w.name: [v for v, _ in served_calls(spec, w.name)] for w in spec.workloads}
    callers_left = {w.name: 0 for w in spec.workloads}
    for served in callees.values():
        for callee in served:
            callers_left[callee] += 1
    ready = [w.name for w in spec.workloads if callers_left[w.name] == 0]
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for callee in callees[name]:
            callers_left[callee] -= 1
            if callers_left[callee] == 0:
                ready.append(callee)
    if len(order) != len(spec.workloads):
        raise ValueError(f"the call graph has a cycle: {' -> '.join(find_cycle(spec) or [])}")
    return order


def propagate(spec: Spec, entry_rps: Mapping[str, float | None]) -> dict[str, float | None]:
    """Total arrival rate per workload: what the gateway sends it (`entry_rps`) plus ratio × each caller's total
    (a split callee's versions by weight, `served_calls`).

    None is an unbounded rate (a route without a rate limit, for admitted load); it stays unbounded downstream.
    """
    total: dict[str, float | None] = {w.name: entry_rps.get(w.name, 0.0) for w in spec.workloads}
    for name in call_order(spec):
        rate = total[name]
        for callee, ratio in served_calls(spec, name):
            before = total[callee]
            total[callee] = None if rate is None or before is None else before + rate * ratio
    return total
