"""AppNetwork: the whole stack — network, workloads, gateway — plus the strategy report policies read."""

from __future__ import annotations

from typing import Any

import pulumi

from components.plan.build import Plan, build_plan
from components.plan.capacity import compute_capacity
from components.plan.deployment import deployment_of
from components.plan.report import strategy_report
from components.plan.scores import compute_scores
from components.resources.load_balancer import LoadBalancer, LoadBalancerArgs
from components.resources.network import ContainerNetwork
from components.resources.service_mesh import ServiceMesh
from components.resources.service_proxy import ServiceProxy
from components.resources.workload import Workload
from components.spec.schema import Spec
from components.targets import proxy_config, target_for
from components.targets.base import MeshTarget, Target


def analyse(spec: Spec, observed: dict[str, Any] | None = None) -> tuple[Target, Plan, dict[str, Any]]:
    """Target, plan and strategy report for a spec — pure, no resources (tests and benchmarks use it too)."""
    target, plan, _, report = _analysed(spec, observed)
    return target, plan, report


def _analysed(spec: Spec, observed: dict[str, Any] | None) -> tuple[Target, Plan, dict[str, str], dict[str, Any]]:
    """Target, plan, every proxy's config (by proxy name) and the strategy report.

    The report names the digest of each config rendered here, the configs the components deploy; the policy pack
    recomputes them from what is deployed. `observed`: the report's `observed` section
    (components.observe.observed), when the plan is given an observation.
    """
    target = target_for(spec)
    plan = build_plan(spec, deployment_of(spec))
    configs = {proxy.name: proxy_config(target, proxy) for proxy in plan.proxies}
    report = strategy_report(plan, compute_scores(plan), compute_capacity(plan), configs)
    if observed is not None:
        report["observed"] = observed
    return target, plan, configs, report


class AppNetwork(pulumi.ComponentResource):
    def __init__(self, name: str, spec: Spec, opts: pulumi.ResourceOptions | None = None,
                 observed: dict[str, Any] | None = None) -> None:
        self.analysis = target, plan, configs, self.report = _analysed(spec, observed)  # the offline plan shows it
        # (`report` becomes an Output once the component registers it as a property; `analysis` keeps the values)
        # The report is an input of this component so policies see it, as a known value, during preview.
        super().__init__("netopt:index:AppNetwork", name, {"report": self.report}, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.network = ContainerNetwork(f"{name}-network", target, child)
        self.workloads = [Workload(w, self.network, target, child) for w in spec.workloads]
        backends = [resource for workload in self.workloads for resource in workload.resources]
        self.proxies = [ServiceProxy(proxy, configs[proxy.name], self.network, target, backends, child) for proxy in plan.services]
        if plan.deployment.callers == "mesh":  # the mesh carries the calls: its resources instead of proxies
            assert isinstance(target, MeshTarget), f"{type(target).__name__} cannot hand calls to a service mesh"
            self.mesh = ServiceMesh(f"{name}-mesh", plan.edges, self.network, target, backends, child)
        self.gateway = LoadBalancer(f"{name}-gateway", LoadBalancerArgs(plan, configs[plan.gateway.name], self.network, self.workloads),
                                    target, child)
        self.endpoint = self.gateway.endpoint
        self.register_outputs({"report": self.report, "endpoint": self.endpoint, "config_sha256": self.gateway.config_sha256})
