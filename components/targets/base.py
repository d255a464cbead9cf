"""What a target must provide: addresses for the renderer, how replicas share load, and the resources."""

from __future__ import annotations

from typing import Protocol

import pulumi

from components.addressing import AddressMap
from components.capacity import ShareFunction
from components.nginx import NginxRuntime
from components.spec import Spec, Workload


class Target(Protocol):
    spec: Spec
    balancing: str  # "gateway": nginx picks each replica; "service": the platform spreads a workload's replicas

    @property
    def shares(self) -> ShareFunction:
        """How the capacity model spreads a route's load over replicas on this target (read-only, so a plain
        function or staticmethod with named parameters satisfies the protocol)."""
        ...

    def address_map(self) -> AddressMap: ...

    def nginx_runtime(self) -> NginxRuntime: ...

    def network(self, parent: pulumi.ComponentResource) -> dict[str, pulumi.Input[str]]: ...

    def workload(self, parent: pulumi.ComponentResource, workload: Workload, network: dict[str, pulumi.Input[str]]) -> list[pulumi.Resource]: ...

    def gateway(self, parent: pulumi.ComponentResource, config: str, network: dict[str, pulumi.Input[str]],
                depends_on: list[pulumi.Resource]) -> dict[str, pulumi.Input[str]]: ...
