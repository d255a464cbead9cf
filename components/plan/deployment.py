"""What a deployment target gives the plan: who balances a workload's replicas and how a service proxy knows who
calls it. The one mapping from a stack's target (and mesh) to the plan's inputs, read at the program's edge, so the
plan and the renderers never branch on the target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from components.plan.balancing import BalancingMode, target_balancing
from components.spec.schema import Spec

CallerIdentity = Literal["link", "none", "mesh"]
"""How the callee's side tells callers apart. "link": every call has a network of its own (Docker), so the address a
call arrives on names its caller and a service proxy serves each caller separately. "none": callers share one
address (a Kubernetes Service without a mesh): one proxy server for all, whose limits are the callee's totals.
"mesh": a service mesh's mTLS identity (Linkerd, Istio) — the mesh carries the calls, netopt runs no proxy."""


@dataclass(frozen=True)
class Deployment:
    balancing: BalancingMode
    callers: CallerIdentity

    @property
    def service_proxies(self) -> bool:
        """Whether netopt runs a service proxy in front of each called workload (not where a mesh carries calls)."""
        return self.callers != "mesh"


def deployment_of(spec: Spec) -> Deployment:
    if spec.target == "docker":
        return Deployment(target_balancing(spec.target), "link")
    return Deployment(target_balancing(spec.target), "none" if spec.kubernetes.mesh == "none" else "mesh")
