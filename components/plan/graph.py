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


def find_cycle(spec: Spec) -> list[str] | None:
    """A call cycle as the list of workloads around it (first repeated last), or None when the graph is acyclic.

    A cycle has no steady state for the propagated load (every request would call itself again), so it is refused.
    """
    callees = {w.name: [c.workload for c in w.calls] for w in spec.workloads}
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
    callers_left = {w.name: 0 for w in spec.workloads}
    for w in spec.workloads:
        for call in w.calls:
            callers_left[call.workload] += 1
    ready = [w.name for w in spec.workloads if callers_left[w.name] == 0]
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for call in spec.workload(name).calls:
            callers_left[call.workload] -= 1
            if callers_left[call.workload] == 0:
                ready.append(call.workload)
    if len(order) != len(spec.workloads):
        raise ValueError(f"the call graph has a cycle: {' -> '.join(find_cycle(spec) or [])}")
    return order


def propagate(spec: Spec, entry_rps: Mapping[str, float | None]) -> dict[str, float | None]:
    """Total arrival rate per workload: what the gateway sends it (`entry_rps`) plus ratio × each caller's total.

    None is an unbounded rate (a route without a rate limit, for admitted load); it stays unbounded downstream.
    """
    total: dict[str, float | None] = {w.name: entry_rps.get(w.name, 0.0) for w in spec.workloads}
    for name in call_order(spec):
        rate = total[name]
        for call in spec.workload(name).calls:
            before = total[call.workload]
            total[call.workload] = None if rate is None or before is None else before + rate * call.ratio
    return total
