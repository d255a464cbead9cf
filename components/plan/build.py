"""The target-neutral plan: every proxy netopt runs (the IR, `components.plan.ir`) and the spec it was built from.

Built once from a validated `Spec`, pure and deterministic. The renderers turn its proxies into nginx configs;
the Docker and Kubernetes targets turn it into resources; the scores, the capacity model and the report read it.
The spec stays on the plan for that math (components/plan/*) only: renderers read the proxies, never the spec.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.plan.balancing import BalancingMode
from components.plan.gateway import gateway_proxy
from components.plan.ir import Proxy
from components.spec.schema import Spec


@dataclass(frozen=True)
class Plan:
    spec: Spec
    balancing: BalancingMode  # who spreads a workload over its replicas: the plan's input, not the spec's
    gateway: Proxy


def build_plan(spec: Spec, balancing: BalancingMode) -> Plan:
    """The plan of a validated spec under a balancing mode (`balancing.target_balancing` maps a target to its mode:
    the graph lives in the spec and the plan, a target only translates it)."""
    return Plan(spec=spec, balancing=balancing, gateway=gateway_proxy(spec, balancing))
