"""LoadBalancer: the nginx gateway, deployed from the config rendered from the plan's gateway proxy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.plan.build import Plan
from components.resources.network import ContainerNetwork
from components.resources.workload import Workload
from components.targets.base import Target


@dataclass(frozen=True)
class LoadBalancerArgs:
    plan: Plan  # carries the typed routes, rate limits and concurrency limits the gateway enforces
    config: str  # the gateway's nginx.conf, rendered once (`app_network._analysed`), as the report's digest names it
    network: ContainerNetwork
    workloads: Sequence[Workload]


class LoadBalancer(pulumi.ComponentResource):
    def __init__(self, name: str, args: LoadBalancerArgs, target: Target, opts: pulumi.ResourceOptions | None = None) -> None:
        spec = args.plan.spec
        super().__init__("netopt:index:LoadBalancer", name, {"algorithm": spec.gateway.algorithm, "routes": [r.name for r in spec.routes]}, opts)
        self.config = args.config
        backends = [resource for workload in args.workloads for resource in workload.resources]
        outputs = target.gateway(self, args.plan.gateway, self.config, args.network.handles, backends)
        self.endpoint = outputs["endpoint"]
        self.config_sha256 = outputs["config_sha256"]
        self.register_outputs({"endpoint": self.endpoint, "config_sha256": self.config_sha256})
