"""The target-neutral plan: every proxy netopt runs (the IR, `components.plan.ir`) and the spec it was built from.

Built once from a validated `Spec`, pure and deterministic. The renderers turn its proxies into nginx configs;
the Docker and Kubernetes targets turn it into resources; the scores, the capacity model and the report read it.
The spec stays on the plan for that math (components/plan/*) only: renderers read the proxies, never the spec.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.plan.balancing import BalancingMode
from components.plan.calls import Edge, edges
from components.plan.deployment import Deployment
from components.plan.gateway import gateway_proxy
from components.plan.ir import Proxy
from components.plan.service_proxy import service_proxies
from components.spec.schema import Spec


@dataclass(frozen=True)
class Plan:
    spec: Spec
    deployment: Deployment  # what the target gives the plan (`deployment.deployment_of`), not the spec
    gateway: Proxy
    services: tuple[Proxy, ...]  # one service proxy per called workload (none where a mesh carries the calls)
    edges: tuple[Edge, ...]  # every call with its resolved policy

    @property
    def balancing(self) -> BalancingMode:
        """Who spreads a workload over its replicas: nginx (gateway) or the platform's Service (service)."""
        return self.deployment.balancing

    @property
    def proxies(self) -> tuple[Proxy, ...]:
        return (self.gateway, *self.services)


def build_plan(spec: Spec, deployment: Deployment) -> Plan:
    """The plan of a validated spec for a deployment (`deployment.deployment_of` maps a target to it: the graph
    lives in the spec and the plan, a target only translates it)."""
    calls = edges(spec)
    services = service_proxies(spec, deployment, calls) if deployment.service_proxies else ()
    return Plan(spec=spec, deployment=deployment, gateway=gateway_proxy(spec, deployment.balancing), services=services, edges=calls)
