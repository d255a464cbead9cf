"""ContainerNetwork: where the workloads and the gateway live (internal for backends, edge for the gateway)."""

from __future__ import annotations

import pulumi

from components.targets.base import Target


class ContainerNetwork(pulumi.ComponentResource):
    def __init__(self, name: str, target: Target, opts: pulumi.ResourceOptions | None = None) -> None:
        net = target.spec.network
        super().__init__("netopt:index:ContainerNetwork", name, {"subnet": str(net.subnet) if net.subnet else None}, opts)
        self.handles = target.network(self)
        self.internal_name = self.handles.get("internal")
        self.edge_name = self.handles.get("edge")
        self.register_outputs({"internal_name": self.internal_name, "edge_name": self.edge_name})
