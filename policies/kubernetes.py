"""Kubernetes-only gates: a default-deny NetworkPolicy and a PodDisruptionBudget per multi-replica workload.

Both look at the whole stack. On a stack without Kubernetes Deployments (the Docker target) they report
not-applicable with the reason, rather than passing silently; the Docker equivalents are backends-internal-only
(isolation) and, for disruptions, the single Docker host (one replica set per host, nothing evicts it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pulumi_policy import Policy, StackValidationArgs

from policies.framework import Gate, StackReport, number, stack_policy
from policies.model import K8S_HPA, K8S_NAMESPACE, K8S_NETWORK_POLICY, K8S_PDB, K8S_WORKLOADS, get, items

DEFAULT_DENY = Gate(
    "k8s-default-deny-network-policy", "security",
    "Every namespace with workloads has a default-deny NetworkPolicy (empty podSelector, policyTypes Ingress, no ingress rules), "
    "so only explicitly allowed traffic (gateway -> workload) reaches a pod.",
    {"requireEgress": {"type": "boolean", "default": False, "description": "also require default-deny for egress"}},
    "Add a NetworkPolicy with podSelector: {} and policyTypes: [Ingress] (and Egress where required) and no rules; "
    "the kubernetes target creates one named default-deny (both directions).",
)

PDB = Gate(
    "k8s-pod-disruption-budget", "structure",
    "Every Deployment with more than one replica has a PodDisruptionBudget that selects its pods and lets at least one be evicted "
    "while keeping at least one available.",
    {},
    "Add a PodDisruptionBudget with the Deployment's selector and maxUnavailable: 1 (the kubernetes target does this for replicas > 1).",
)


def _namespace(props: Mapping[str, Any]) -> str:
    return str(get(props, "metadata", "namespace", default="default"))


def _deployments(args: StackValidationArgs) -> list[Any]:
    deployments = [r for r in args.resources if r.resource_type in K8S_WORKLOADS]
    if not deployments:
        args.not_applicable("no Kubernetes Deployments in this stack (docker target: see backends-internal-only)")
    return deployments


def _default_deny(args: StackValidationArgs, config: dict[str, Any], report_violation: StackReport) -> None:
    deployments = _deployments(args)
    needed = ["Ingress", "Egress"] if config["requireEgress"] else ["Ingress"]
    covered: dict[str, set[str]] = {}
    for policy in (r for r in args.resources if r.resource_type == K8S_NETWORK_POLICY):
        spec = get(policy.props, "spec", default={})
        selector = get(spec, "podSelector", default={})
        if get(selector, "matchLabels") or get(selector, "matchExpressions"):
            continue  # selects some pods only
        types = {str(t) for t in items(get(spec, "policyTypes"))} or {"Ingress"}
        denies = {t for t in types if not items(get(spec, t.lower()))}
        covered.setdefault(_namespace(policy.props), set()).update(denies)
    namespaces = {str(get(r.props, "metadata", "name", default="")): r for r in args.resources if r.resource_type == K8S_NAMESPACE}
    for namespace in sorted({_namespace(d.props) for d in deployments}):
        missing = [t for t in needed if t not in covered.get(namespace, set())]
        if missing:
            members = [d for d in deployments if _namespace(d.props) == namespace]
            owner = namespaces.get(namespace) or members[0]
            kind = "Namespace" if owner.resource_type == K8S_NAMESPACE else "Deployment"
            names = ", ".join(sorted(d.name for d in members))
            report_violation(f"{kind} '{owner.name}': namespace '{namespace}' (Deployments {names}) has no default-deny NetworkPolicy for "
                f"{', '.join(missing)} "
                             f"(measured: default-deny for {', '.join(sorted(covered.get(namespace, set()))) or 'nothing'}; required: "
                             f"{', '.join(needed)}): "
                             f"every pod accepts traffic from any pod in the cluster. Fix: {DEFAULT_DENY.remediation}", owner.urn)


def _amount(value: Any, replicas: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        share = float(value[:-1]) / 100 * replicas
        return math.ceil(share) if round_up else math.floor(share)
    return int(number(value))


def _show(value: Any) -> str:
    return value if isinstance(value, str) else f"{number(value):g}"


def _pdb(args: StackValidationArgs, config: dict[str, Any], report_violation: StackReport) -> None:
    deployments = _deployments(args)
    budgets = [r for r in args.resources if r.resource_type == K8S_PDB]
    autoscaled = {
        (_namespace(h.props), str(get(h.props, "spec", "scaleTargetRef", "name"))): int(number(get(h.props, "spec", "minReplicas", default=1)))
        for h in args.resources if h.resource_type == K8S_HPA and get(h.props, "spec", "scaleTargetRef", "kind") in ("Deployment", "StatefulSet")
    }
    for deployment in deployments:
        namespace = _namespace(deployment.props)
        name = str(get(deployment.props, "metadata", "name", default=deployment.name))
        declared = get(deployment.props, "spec", "replicas")
        replicas = int(number(declared)) if declared is not None else autoscaled.get((namespace, name), 1)
        counted = f"{replicas} replicas" if declared is not None else f"at least {replicas} replicas (HorizontalPodAutoscaler minReplicas)"
        if replicas < 2:
            continue
        labels = get(deployment.props, "spec", "template", "metadata", "labels", default={})
        matching = []
        for budget in budgets:
            selector = get(budget.props, "spec", "selector", "matchLabels", default={})
            if _namespace(budget.props) == namespace and selector and all(labels.get(k) == selector[k] for k in selector):
                matching.append(budget)
        if not matching:
            report_violation(f"Deployment '{deployment.name}' runs {counted} but no PodDisruptionBudget in namespace '{namespace}' selects its pods "
                             f"(required: one). A node drain may evict all of them at once. Fix: {PDB.remediation}", deployment.urn)
            continue
        for budget in matching:
            spec = get(budget.props, "spec", default={})
            if get(spec, "maxUnavailable") is not None:
                unavailable = _amount(spec["maxUnavailable"], replicas, round_up=True)
                ok = 1 <= unavailable < replicas
                measured = f"maxUnavailable {_show(spec['maxUnavailable'])} = {unavailable} of {replicas} pods unavailable"
            elif get(spec, "minAvailable") is not None:
                available = _amount(spec["minAvailable"], replicas, round_up=True)
                ok = 1 <= available < replicas
                measured = f"minAvailable {_show(spec['minAvailable'])} = {available} of {replicas} pods kept"
            else:
                ok, measured = False, "neither minAvailable nor maxUnavailable"
            if not ok:
                report_violation(f"PodDisruptionBudget '{budget.name}' for Deployment '{deployment.name}' allows {measured} (required: at "
                    f"least one pod "
                                 "evictable and at least one kept available; 0 evictable blocks every node drain). Fix: use "
                                 "maxUnavailable: 1.", budget.urn)


def policies() -> list[Policy]:
    return [stack_policy(DEFAULT_DENY, _default_deny), stack_policy(PDB, _pdb)]
