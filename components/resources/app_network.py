"""AppNetwork: the whole stack — network, workloads, gateway — plus the strategy report policies read."""

from __future__ import annotations

from typing import Any

import pulumi

from components.plan.balancing import target_balancing
from components.plan.build import Plan, build_plan
from components.plan.capacity import compute_capacity
from components.plan.report import strategy_report
from components.plan.scores import compute_scores
from components.render.nginx import render_nginx
from components.resources.load_balancer import LoadBalancer, LoadBalancerArgs
from components.resources.network import ContainerNetwork
from components.resources.workload import Workload
from components.spec.schema import Spec
from components.targets import target_for
from components.targets.base import Target


def analyse(spec: Spec, observed: dict[str, Any] | None = None) -> tuple[Target, Plan, dict[str, Any]]:
    """Target, plan and strategy report for a spec — pure, no resources (tests and benchmarks use it too).

    `observed`: the report's `observed` section (components.observe.observed), when the plan is given an observation.
    """
    target, plan, report, _config = analyse_rendered(spec, observed)
    return target, plan, report


def analyse_rendered(spec: Spec, observed: dict[str, Any] | None = None) -> tuple[Target, Plan, dict[str, Any], str]:
    """`analyse`, plus the gateway's nginx.conf the report's digest names: rendered once, and the same text is what
    the LoadBalancer deploys (the policy pack recomputes the digest from the deployed config)."""
    target = target_for(spec)
    plan = build_plan(spec, target_balancing(spec.target))
    config = render_nginx(plan, target.address_map(), target.nginx_runtime())
    report = strategy_report(plan, compute_scores(plan), compute_capacity(plan), config)
    if observed is not None:
        report["observed"] = observed
    return target, plan, report, config


class AppNetwork(pulumi.ComponentResource):
    def __init__(self, name: str, spec: Spec, opts: pulumi.ResourceOptions | None = None,
                 observed: dict[str, Any] | None = None) -> None:
        target, plan, self.report, config = analyse_rendered(spec, observed)
        # The report is an input of this component so policies see it, as a known value, during preview.
        super().__init__("netopt:index:AppNetwork", name, {"report": self.report}, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.network = ContainerNetwork(f"{name}-network", target, child)
        self.workloads = [Workload(w, self.network, target, child) for w in spec.workloads]
        self.gateway = LoadBalancer(f"{name}-gateway", LoadBalancerArgs(plan, config, self.network, self.workloads), target, child)
        self.endpoint = self.gateway.endpoint
        self.register_outputs({"report": self.report, "endpoint": self.endpoint, "config_sha256": self.gateway.config_sha256})
