"""What a target must provide: addresses for the renderer and the resources. How replicas share load is the plan's
input (`balancing.target_balancing`), not a target's attribute: a target only translates the plan."""

from __future__ import annotations

from typing import Protocol

import pulumi

from components.plan.addressing import AddressMap
from components.render.nginx import NginxRuntime
from components.spec.schema import Spec, Workload


class Target(Protocol):
    spec: Spec

    def address_map(self) -> AddressMap: ...

    def nginx_runtime(self) -> NginxRuntime: ...

    def network(self, parent: pulumi.ComponentResource) -> dict[str, pulumi.Input[str]]: ...

    def workload(self, parent: pulumi.ComponentResource, workload: Workload, network: dict[str, pulumi.Input[str]]) -> list[pulumi.Resource]: ...

    def gateway(self, parent: pulumi.ComponentResource, config: str, network: dict[str, pulumi.Input[str]],
                depends_on: list[pulumi.Resource]) -> dict[str, pulumi.Input[str]]: ...
