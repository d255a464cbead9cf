"""Which input changes a provider applies in place and which replace the resource, per resource type.

One table per provider, read off the provider's own schema, shared by the update plan (`make plan SINCE=`) and
the e2e harness that replays updates the way `pulumi up` would. An input a table does not know is an error,
never a guess.

- pulumi-docker 5.2.0 bridges kreuzwerker/terraform-provider-docker: a `ForceNew` attribute of
  `resource_docker_container.go` replaces the container; the others are applied by its Update (`docker update`
  for resources and the restart policy) or only stored. `healthcheck`, `tmpfs` and `init` lost `ForceNew` in
  later provider releases while Docker cannot change them on a running container: counted as replacing
  (the pessimistic reading), as is `memoryReservation` (a workload's memory request), which pulumi-docker 5.2.0 takes
  but the provider source read here does not list. Every `docker_network` attribute is `ForceNew`.
- pulumi-command 1.2.1 `local.Command`: a change of `triggers` replaces it when it has no `update` command
  (its create runs again on the new one); any other input change runs `update`, else `create`, in place.
- pulumi-kubernetes: the provider's `forceNewProperties` (provider/pkg/provider/diff.go) replaces an object whose
  `metadata.name` or `metadata.namespace` changes, and per kind: a ConfigMap's `data`/`binaryData`, a Secret's
  `type`/`data`/`stringData`, a Service's `spec.clusterIP`, a Deployment's or DaemonSet's `spec.selector`, a
  StatefulSet's `spec.podManagementPolicy`, `revisionHistoryLimit`, `selector`, `serviceName` and
  `volumeClaimTemplates`, a PersistentVolumeClaim's `spec`; every other change (NetworkPolicy, PodDisruptionBudget
  policy/v1, HorizontalPodAutoscaler, Namespace labels, a workload's replicas or pod template) is server-side
  applied in place. What the controllers then do with a new pod template is `kubernetes_rollout`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Change = Literal["update", "replace"]

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
COMMAND = "command:local:Command"


class UnclassifiedInputError(ValueError):
    """A changed input whose update behaviour the rules do not know."""


# docker_container attributes with ForceNew (plus the three version-dependent ones, see the module docstring).
CONTAINER_REPLACES = frozenset({
    "name", "readOnly", "image", "hostname", "domainname", "command", "entrypoints", "user", "dns", "dnsOpts",
    "dnsSearches", "publishAllPorts", "workingDir", "capabilities", "securityOpts", "runtime", "stopSignal",
    "stopTimeout", "mounts", "volumes", "ports", "hosts", "ulimits", "envs", "privileged", "devices", "labels",
    "shmSize", "logDriver", "logOpts", "networkMode", "networksAdvanced", "pidMode", "usernsMode", "uploads",
    "sysctls", "ipcMode", "groupAdds", "tty", "stdinOpen", "storageOpts", "gpus", "cpus", "cgroupnsMode",
    "healthcheck", "tmpfs", "init", "memoryReservation",
})
# Applied to the running container by the provider's Update (docker update).
CONTAINER_UPDATES_LIVE = frozenset({"memory", "memorySwap", "cpuShares", "cpuSet", "cpuPeriod", "cpuQuota",
                                    "restart", "maxRetryCount"})
# Only change what the provider does next time (waiting, stopping, removing); the container is untouched.
CONTAINER_UPDATES_STATE = frozenset({"start", "wait", "waitTimeout", "attach", "logs", "mustRun", "rm",
                                     "removeVolumes", "destroyGraceSeconds",
                                     "containerReadRefreshTimeoutMilliseconds"})

NETWORK_INPUTS = frozenset({"name", "driver", "internal", "attachable", "ipv6", "ipamDriver", "ipamOptions",
                            "ipamConfigs", "labels", "options", "ingress", "checkDuplicate"})
VOLUME_INPUTS = frozenset({"name", "driver", "driverOpts", "labels", "cluster"})
COMMAND_INPUTS = frozenset({"create", "update", "delete", "stdin", "environment", "dir", "interpreter",
                            "triggers", "logging", "assetPaths", "archivePaths", "addPreviousOutputInEnv"})


# pulumi-kubernetes forceNewProperties, per kind (the group/version of every kind the program registers).
KUBERNETES_REPLACES: dict[str, frozenset[str]] = {
    "ConfigMap": frozenset({"data", "binaryData"}),
    "Secret": frozenset({"type", "data", "stringData"}),
    "Service": frozenset({"spec.clusterIP"}),
    "Deployment": frozenset({"spec.selector"}),
    "DaemonSet": frozenset({"spec.selector"}),  # listed as "Daemonset" in the provider; the API refuses a new selector anyway
    "StatefulSet": frozenset({"spec.podManagementPolicy", "spec.revisionHistoryLimit", "spec.selector", "spec.serviceName",
                              "spec.volumeClaimTemplates"}),
    "PersistentVolumeClaim": frozenset({"spec"}),
}
KUBERNETES_METADATA_REPLACES = frozenset({"metadata.name", "metadata.namespace"})


def kubernetes_kind(resource_type: str) -> str:
    """`kubernetes:apps/v1:StatefulSet` -> `StatefulSet`."""
    return resource_type.rsplit(":", 1)[-1]


def classify(resource_type: str, changed: set[str], inputs: dict[str, object] | None = None) -> Change | None:
    """What the provider does about `changed` top-level inputs of one resource: None when nothing changed.

    `inputs` (the new inputs) is needed for a Command, whose reaction to `triggers` depends on `update`.
    """
    if not changed:
        return None
    if resource_type == CONTAINER:
        unknown = changed - CONTAINER_REPLACES - CONTAINER_UPDATES_LIVE - CONTAINER_UPDATES_STATE
        _known(resource_type, unknown)
        return "replace" if changed & CONTAINER_REPLACES else "update"
    if resource_type in (NETWORK, VOLUME):
        _known(resource_type, changed - (NETWORK_INPUTS if resource_type == NETWORK else VOLUME_INPUTS))
        return "replace"
    if resource_type == COMMAND:
        _known(resource_type, changed - COMMAND_INPUTS)
        return "replace" if "triggers" in changed and not (inputs or {}).get("update") else "update"
    if resource_type.startswith("kubernetes:"):
        replaces = KUBERNETES_METADATA_REPLACES | KUBERNETES_REPLACES.get(kubernetes_kind(resource_type), frozenset())
        return "replace" if changed & replaces else "update"
    raise UnclassifiedInputError(f"{resource_type}: no update rules for this resource type (changed: {sorted(changed)})")


def _known(resource_type: str, unknown: set[str]) -> None:
    if unknown:
        raise UnclassifiedInputError(f"{resource_type}: cannot tell whether a change of {sorted(unknown)} updates in place "
                                     "or replaces (not in the provider schema table of components/targets/update_rules.py)")


# -- what the workload controllers do with a new pod template -------------------------------------------------------

Rollout = Literal["rolled", "recreated", "staged"]


@dataclass(frozen=True)
class RolloutFacts:
    """What decides a workload's rollout, read from its new spec (the strategy in force during the update)."""

    kind: str  # Deployment | StatefulSet | DaemonSet
    replicas: int | None  # None: left to an autoscaler (the caller gives its minimum)
    strategy: str  # Deployment: RollingUpdate | Recreate; StatefulSet, DaemonSet: RollingUpdate | OnDelete
    max_surge: Any = None  # a number or a percentage, as the API takes it; None: the API default
    max_unavailable: Any = None
    partition: int = 0


@dataclass(frozen=True)
class RolloutStep:
    action: Rollout
    drops: str | None  # why the rollout leaves no pod serving for a while, None when some pod always serves
    how: str


def _count(value: Any, replicas: int, default: Any, round_up: bool) -> int:
    """An IntOrString of a rolling update: a count, or a percentage of the replicas (surge rounds up, unavailable down)."""
    value = default if value is None else value
    if isinstance(value, str) and value.endswith("%"):
        exact = replicas * int(value[:-1]) / 100
        return int(-(-exact // 1)) if round_up else int(exact // 1)
    return int(value)


def kubernetes_rollout(facts: RolloutFacts) -> RolloutStep:
    """How the controller replaces the pods of a workload whose pod template changed (Kubernetes documentation):

    - Deployment (concepts/workloads/controllers/deployment, "Strategy"): `Recreate` — "All existing Pods are killed
      before new ones are created", a gap for every replica count; `RollingUpdate` — new pods are added up to
      `maxSurge` (default 25 %, rounded up) above the replicas while at most `maxUnavailable` (default 25 %, rounded
      down) are unavailable: the controller keeps replicas − maxUnavailable pods available, so with maxUnavailable ≥
      replicas every old pod may go before a new one is ready, surge or not.
    - StatefulSet (concepts/workloads/controllers/statefulset, "Rolling Updates"): `RollingUpdate` — "the StatefulSet
      controller will delete and recreate each Pod ... from the largest ordinal to the smallest, updating each Pod
      one at a time ... waits until an updated Pod is Running and Ready prior to updating its predecessor". There is
      no surge: the old pod is terminated before its successor starts, so a single replica is down from its
      termination until the new pod is Ready; several replicas roll one at a time (`maxUnavailable`, default 1, a
      percentage rounded up, lets that many go at once), the others serving. Only ordinals ≥ `partition` are updated.
      `OnDelete` — "the StatefulSet controller will not automatically update the Pods":
      each takes the new template when it is deleted.
    - DaemonSet (tasks/manage-daemon/update-daemon-set): `RollingUpdate` replaces one node's pod at a time
      (`maxUnavailable` 1, `maxSurge` 0 by default: the node's old pod is killed before its new one starts); `OnDelete`
      as for StatefulSets.
    """
    replicas = 1 if facts.replicas is None else facts.replicas
    if facts.strategy == "OnDelete":
        return RolloutStep("staged", None, "OnDelete: each pod takes the new template only when it is deleted")
    if facts.kind == "Deployment":
        if facts.strategy == "Recreate":
            return RolloutStep("recreated", "Recreate strategy: every pod is killed before the new ones are created",
                               "all pods killed, then the new ones created")
        surge = _count(facts.max_surge, replicas, "25%", round_up=True)
        unavailable = _count(facts.max_unavailable, replicas, "25%", round_up=False)
        # the controller keeps at least replicas − maxUnavailable pods available: none at all once that is ≤ 0
        drops = (f"maxUnavailable {facts.max_unavailable} lets all {replicas} pod(s) stop before a new one is ready"
                 if unavailable >= replicas else None)
        return RolloutStep("rolled", drops, f"surge {surge}, at most {unavailable} unavailable")
    if facts.kind == "StatefulSet":
        updated = max(0, replicas - facts.partition)
        if updated == 0:
            return RolloutStep("staged", None, f"partition {facts.partition} ≥ replicas: no pod is updated")
        if replicas == 1:
            return RolloutStep("recreated", "a single-replica StatefulSet: its pod is terminated before the new one starts, "
                               "nothing serves until the new pod is Ready", "pod deleted, then recreated")
        unavailable = _count(facts.max_unavailable, replicas, 1, round_up=True)  # a StatefulSet's rounds up (API reference)
        all_at_once = facts.partition == 0 and unavailable >= replicas
        drops = f"maxUnavailable {facts.max_unavailable} lets all {replicas} pods stop at once" if all_at_once else None
        return RolloutStep("rolled", drops, f"{unavailable} pod(s) at a time from ordinal {replicas - 1} down to {facts.partition}, "
                                            "each Ready before the next")
    if facts.kind == "DaemonSet":
        return RolloutStep("rolled", None, "one node at a time, the node's old pod killed before its new one starts")
    raise UnclassifiedInputError(f"{facts.kind}: no rollout rules for this kind")
