"""ServiceMesh: the calls between workloads as a service mesh's own resources (`kubernetes.mesh: linkerd | istio`),
generated from the plan's edges by the target in place of netopt's service proxies."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi

from components.plan.calls import Edge
from components.resources.network import ContainerNetwork
from components.targets.base import MeshTarget


class ServiceMesh(pulumi.ComponentResource):
    def __init__(self, name: str, edges: Sequence[Edge], network: ContainerNetwork, target: MeshTarget, depends_on: list[pulumi.Resource],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("netopt:index:ServiceMesh", name, {"mesh": target.spec.kubernetes.mesh, "calls": [edge.name for edge in edges]}, opts)
        self.resources = target.mesh(self, edges, network.handles, depends_on)
        self.register_outputs({"resources": len(self.resources)})
