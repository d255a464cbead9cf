"""Workload: the replicas of one backend service; `addresses` are where the gateway reaches them (none for a
workload no route sends traffic to)."""

from __future__ import annotations

import pulumi

from components.resources.network import ContainerNetwork
from components.spec.schema import Workload as WorkloadSpec
from components.targets.base import Target


class Workload(pulumi.ComponentResource):
    def __init__(self, spec: WorkloadSpec, network: ContainerNetwork, target: Target, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("netopt:index:Workload", spec.name, {"image": spec.image, "replicas": spec.replicas, "port": spec.port}, opts)
        self.spec = spec
        self.resources = target.workload(self, spec, network.handles)
        self.addresses = list(target.address_map().get(spec.name, []))
        self.register_outputs({"addresses": self.addresses, "replicas": spec.replicas})
