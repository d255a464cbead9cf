"""Workload: the replicas of one backend service, reachable by the gateway under the workload's name."""

from __future__ import annotations

import pulumi

from components.network import ContainerNetwork
from components.spec import Workload as WorkloadSpec
from components.targets.base import Target


class Workload(pulumi.ComponentResource):
    def __init__(self, spec: WorkloadSpec, network: ContainerNetwork, target: Target, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("netopt:index:Workload", spec.name, {"image": spec.image, "replicas": spec.replicas, "port": spec.port}, opts)
        self.spec = spec
        self.resources = target.workload(self, spec, network.handles)
        self.addresses = list(target.address_map()[spec.name])
        self.register_outputs({"addresses": self.addresses, "replicas": spec.replicas})
