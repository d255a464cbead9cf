"""Stateful singletons: a workload the spec declares `singleton` holds its state in one instance (a database, a cache,
a broker), so the stack must run exactly one, and, where it declares persistent volumes, on storage that outlives it.
Read from what is deployed (containers, StatefulSets, autoscalers); the report only says which workloads were
declared singletons and which declare persistent volumes."""

from __future__ import annotations

from typing import Any

from pulumi_policy import Policy, StackValidationArgs

from policies.framework import Gate, StackReport, number, stack_policy
from policies.model import APP_NETWORK, DOCKER_CONTAINER, K8S_DEPLOYMENT, K8S_HPA, K8S_STATEFULSET, docker_labels, get, items

SINGLETONS = Gate(
    "stateful-singletons", "structure",
    "Every workload declared `singleton` runs exactly one instance: one Docker container, or a Kubernetes StatefulSet of 1 replica "
    "(never two pods at once, even in a rollout) with no autoscaler; one that declares persistent volumes keeps them (a named "
    "volume, a volumeClaimTemplate). A cache or broker with scratch storage is a singleton too.",
    {},
    "Keep the singleton at replicas: 1 with no autoscaling entry, deployed by the target (a StatefulSet on Kubernetes), with its "
    "persistent volumes if it declares any; if its replicas are interchangeable, drop singleton instead.",
)


def _singletons(args: StackValidationArgs) -> dict[str, bool]:
    """Workloads declared singleton -> whether they declare persistent volumes (an older report: assume they do)."""
    networks = [r for r in args.resources if r.resource_type == APP_NETWORK]
    workloads = get(networks[0].props, "report", "workloads", default={}) if networks else {}
    return {name: bool(get(w, "persistent", default=True)) for name, w in sorted(workloads.items()) if get(w, "singleton", default=False)}


def _docker_problem(name: str, persistent: bool, args: StackValidationArgs) -> tuple[str | None, Any]:
    containers = [r for r in args.resources if r.resource_type == DOCKER_CONTAINER and docker_labels(r.props).get("netopt.workload") == name]
    if len(containers) != 1:
        return f"{len(containers)} containers run it", containers[0] if containers else None
    if persistent and not any(get(v, "volumeName") for v in items(get(containers[0].props, "volumes"))):
        return "it declares persistent volumes but its container mounts no named volume, so its state dies with the container", containers[0]
    return None, containers[0]


def _kubernetes_problem(name: str, persistent: bool, args: StackValidationArgs) -> tuple[str | None, Any]:
    def named(kind: str) -> list[Any]:
        return [r for r in args.resources if r.resource_type == kind and get(r.props, "metadata", "name") == name]

    sets, deployments = named(K8S_STATEFULSET), named(K8S_DEPLOYMENT)
    if deployments or len(sets) != 1:
        return f"it runs as {len(deployments)} Deployment(s) and {len(sets)} StatefulSet(s), not one StatefulSet", (sets or deployments or [None])[0]
    props = sets[0].props
    replicas = int(number(get(props, "spec", "replicas", default=1)))
    if replicas != 1:
        return f"its StatefulSet has {replicas} replicas", sets[0]
    if persistent and not items(get(props, "spec", "volumeClaimTemplates")):
        return "it declares persistent volumes but its StatefulSet has no volumeClaimTemplates, so its state dies with the pod", sets[0]
    scaled = [h for h in args.resources if h.resource_type == K8S_HPA and get(h.props, "spec", "scaleTargetRef", "name") == name]
    if scaled:
        return "a HorizontalPodAutoscaler may add independent copies", scaled[0]
    return None, sets[0]


def _stateful_singletons(args: StackValidationArgs, config: dict[str, Any], report_violation: StackReport) -> None:
    singletons = _singletons(args)
    if not singletons:
        args.not_applicable("no workload is declared singleton")
        return
    docker = any(r.resource_type == DOCKER_CONTAINER for r in args.resources)
    for name, persistent in singletons.items():
        problem, resource = (_docker_problem if docker else _kubernetes_problem)(name, persistent, args)
        if problem:
            where = f"{'container' if docker else 'StatefulSet'} '{resource.name if resource else name}'"
            storage = " on persistent storage" if persistent else ""
            report_violation(f"{where}: workload '{name}' is declared singleton but {problem} (required: exactly one instance{storage}). "
                             f"Fix: {SINGLETONS.remediation}", resource.urn if resource else None)


def policies() -> list[Policy]:
    return [stack_policy(SINGLETONS, _stateful_singletons)]
