"""What a target must provide: addresses and process settings for the renderer, and the resources. How replicas share
load and how a service proxy tells its callers apart are the plan's inputs (`deployment.deployment_of`), not a
target's attributes: a target only translates the plan."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import pulumi

from components.plan.addressing import AddressMap
from components.plan.calls import Edge
from components.plan.ir import Proxy
from components.render.runtime import NginxRuntime
from components.spec.schema import Spec, Workload


class Target(Protocol):
    spec: Spec

    def address_map(self, proxy: Proxy | None = None) -> AddressMap:
        """Where `proxy` (None: the gateway) reaches each workload's members."""

    def nginx_runtime(self, proxy: Proxy) -> NginxRuntime: ...

    def network(self, parent: pulumi.ComponentResource) -> dict[str, pulumi.Input[str]]: ...

    def workload(self, parent: pulumi.ComponentResource, workload: Workload, network: dict[str, pulumi.Input[str]]) -> list[pulumi.Resource]: ...

    def service_proxy(self, parent: pulumi.ComponentResource, proxy: Proxy, config: str, network: dict[str, pulumi.Input[str]],
                      depends_on: list[pulumi.Resource]) -> list[pulumi.Resource]: ...

    def gateway(self, parent: pulumi.ComponentResource, proxy: Proxy, config: str, network: dict[str, pulumi.Input[str]],
                depends_on: list[pulumi.Resource]) -> dict[str, pulumi.Input[str]]: ...


@runtime_checkable
class MeshTarget(Target, Protocol):
    """A target that can hand the calls to a service mesh (Kubernetes): the mesh's resources for the plan's edges."""

    def mesh(self, parent: pulumi.ComponentResource, edges: Sequence[Edge], network: dict[str, pulumi.Input[str]],
             depends_on: list[pulumi.Resource]) -> list[pulumi.Resource]: ...
