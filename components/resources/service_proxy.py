"""ServiceProxy: the proxy in front of one called workload, rendered from the plan and deployed by the target."""

from __future__ import annotations

import hashlib

import pulumi

from components.plan.ir import Proxy
from components.resources.network import ContainerNetwork
from components.targets.base import Target


class ServiceProxy(pulumi.ComponentResource):
    def __init__(self, proxy: Proxy, config: str, network: ContainerNetwork, target: Target, depends_on: list[pulumi.Resource],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("netopt:index:ServiceProxy", proxy.name, {"workload": proxy.workload, "protocol": proxy.protocol,
                                                                   "callers": [r.caller for r in proxy.routes]}, opts)
        self.config = config
        self.config_sha256 = hashlib.sha256(self.config.encode()).hexdigest()
        self.resources = target.service_proxy(self, proxy, self.config, network.handles, depends_on)
        self.register_outputs({"config_sha256": self.config_sha256})
