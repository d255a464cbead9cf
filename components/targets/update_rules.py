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
- pulumi-kubernetes: a Deployment whose pod template changes rolls its pods (the Deployment's strategy); other
  spec changes are server-side applied in place; a new `metadata.name` is a new object.
"""

from __future__ import annotations

from typing import Literal

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
        return "replace" if "metadata.name" in changed else "update"
    raise UnclassifiedInputError(f"{resource_type}: no update rules for this resource type (changed: {sorted(changed)})")


def _known(resource_type: str, unknown: set[str]) -> None:
    if unknown:
        raise UnclassifiedInputError(f"{resource_type}: cannot tell whether a change of {sorted(unknown)} updates in place "
                                     "or replaces (not in the provider schema table of components/targets/update_rules.py)")
