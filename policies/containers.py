"""Structural and security gates on the containers themselves (Docker Containers, Kubernetes Deployments/Services).

Each gate reads the resource's own input properties (what the provider will be asked to create), through
`policies.model.ContainerView`, so one gate covers both targets. Kubernetes-only resources (Services) are
checked where they exist; on a Docker stack they simply do not occur.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Policy, ResourceValidationArgs, StackValidationArgs

from policies.framework import Gate, Report, StackReport, resource_policy, stack_policy
from policies.model import (
    APP_NETWORK,
    DOCKER_CONTAINER,
    DOCKER_NETWORK,
    K8S_SERVICE,
    K8S_WORKLOADS,
    ContainerView,
    containers_of,
    docker_labels,
    get,
    is_gateway_labels,
    items,
    k8s_labels,
    parse_image,
)

ONLY_GATEWAY_EXPOSED = Gate(
    "only-gateway-exposed", "security",
    "Only the gateway is reachable from outside: no backend publishes a port, uses host networking or has a NodePort/LoadBalancer Service.",
    {},
    "Remove the published port / hostPort / external Service from the backend; clients reach backends through the gateway's routes.",
)

BACKENDS_INTERNAL = Gate(
    "backends-internal-only", "security",
    "On Docker, every backend container is attached only to internal networks (no route out, not reachable from the host's networks).",
    {},
    "Attach backends only to the stack's internal links (one per flow of the service graph, carved from network.subnet) "
    "or to none; only the gateway joins the edge network.",
)

IMAGES_PINNED = Gate(
    "images-pinned", "security",
    "Every container image is pinned: an explicit tag that is not a moving one such as 'latest' (and a digest where required).",
    {"requireDigest": {"type": "boolean", "default": False, "description": "require image@sha256:<digest> on every container"},
     "forbiddenTags": {"type": "array", "items": {"type": "string"}, "default": ["latest"],
                       "description": "tags that move and so pin nothing"}},
    "Use an immutable version tag (e.g. :2.4.1), or repository:tag@sha256:<digest> where digests are required.",
)

HEALTH_CHECKS = Gate(
    "health-checks", "structure",
    "Every container has a health check (Docker HEALTHCHECK, Kubernetes readinessProbe), so unhealthy replicas leave the rotation.",
    {},
    "Give the workload a health check (`health: {kind: http|grpc|tcp|exec, ...}`, or leave `health` out for its protocol's "
    "default) instead of `health: {kind: none}`; the targets turn it into a Docker healthcheck or readiness/liveness probes.",
)

HEALTH_PROBES_VALID = Gate(
    "health-probes-valid", "structure",
    "Every health check that is declared can run: a Docker test in CMD or CMD-SHELL form with a command; a Kubernetes probe with "
    "exactly one handler whose port is one the container declares.",
    {},
    "Declare the check through the workload's `health` (kinds http, grpc, tcp, exec), which the targets render in a form that runs; "
    "for exec give the command's argv.",
)

RESOURCE_LIMITS = Gate(
    "resource-limits", "structure",
    "Every container has a memory and a CPU limit, so the capacity model's service rates hold and one replica cannot starve its neighbours.",
    {},
    "Declare `resources: {cpu, memory_mb}` on the workload (and the gateway).",
)

BASELINE_CAPABILITIES = ("AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP",
                         "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT")
"""The capabilities the Kubernetes Pod Security Standards' "baseline" profile lets a container add: the published line
between what a container may hold and what breaks isolation (the default of `allowedCapabilities`)."""

DANGER = {
    "SYS_ADMIN": "mount filesystems, create namespaces, use bpf and much of the kernel's admin interface: most container escapes start here",
    "NET_ADMIN": "reconfigure interfaces, routes and firewall rules of the network namespace: bypass the isolation the stack declares, "
                 "redirect or sniff traffic",
    "SYS_PTRACE": "trace other processes and read their memory (secrets) and, on older kernels, step around seccomp",
    "SYS_MODULE": "load kernel modules: code in the host's kernel",
    "SYS_RAWIO": "raw I/O ports and /dev/mem: the host's memory and devices",
    "NET_RAW": "raw sockets: forge packets and spoof ARP/DNS on the node's network",
    "DAC_READ_SEARCH": "open any file by handle, bypassing directory permissions (the \"Shocker\" escape reads the host's files)",
    "SYS_BOOT": "reboot the host",
    "SYS_TIME": "set the host's clock, for every container on it",
    "MAC_ADMIN": "change the AppArmor/SELinux policy that confines the container",
    "MAC_OVERRIDE": "bypass the AppArmor/SELinux policy that confines the container",
    "BPF": "load eBPF programs into the host's kernel",
    "PERFMON": "read kernel and other processes' performance data (and, with BPF, trace them)",
    "SYSLOG": "read the kernel log (kernel addresses) and clear it",
    "LINUX_IMMUTABLE": "set immutable/append-only file attributes that root cannot simply undo",
    "SYS_RESOURCE": "override resource limits and quotas meant to keep one container from starving the host",
    "IPC_OWNER": "bypass permission checks on other processes' System V IPC objects",
    "CHECKPOINT_RESTORE": "checkpoint and restore other processes, choosing their PIDs",
}
"""Why a capability beyond the baseline set is refused, for the message; any other is refused as outside the baseline."""

HARDENING = Gate(
    "container-hardening", "security",
    "Every container drops all Linux capabilities and adds back only allowed ones (the Pod Security Standards' baseline set by "
    "default: CHOWN, SETUID, NET_BIND_SERVICE ... pass, SYS_ADMIN, NET_ADMIN, SYS_PTRACE ... do not), cannot gain privileges "
    "(no-new-privileges / allowPrivilegeEscalation: false), is not privileged, and on Kubernetes runs as non-root.",
    {"allowedCapabilities": {"type": "array", "items": {"type": "string"}, "default": list(BASELINE_CAPABILITIES),
                             "description": "capabilities a container may add back after dropping ALL (default: the Pod Security "
                                            "Standards' baseline set)"}},
    "Let the target apply its hardening (cap drop ALL, no-new-privileges, runAsNonRoot), remove the refused capabilities from the "
    "workload's capabilities.add (a port below 1024 needs none: the targets set net.ipv4.ip_unprivileged_port_start), and use no "
    "privileged mode.",
)

READ_ONLY = Gate(
    "read-only-root-fs", "security",
    "Backends run with a read-only root filesystem where their workload declares it (read_only_root_fs, default true); "
    "declared-writable backends are accepted only where the environment allows it.",
    {"allowDeclaredWritable": {"type": "boolean", "default": True,
                               "description": "accept backends whose workload declares read_only_root_fs: false"}},
    "Keep read_only_root_fs: true (write to the /tmp tmpfs/emptyDir the targets mount), or, for an image that must write elsewhere, "
    "declare read_only_root_fs: false in an environment whose policy config sets allowDeclaredWritable.",
)


# -- resource gates over container views --------------------------------------------------------------------------

CONTAINER_TYPES = (DOCKER_CONTAINER, *K8S_WORKLOADS)  # the resources that declare containers


def _views(args: ResourceValidationArgs) -> list[ContainerView]:
    return containers_of(args.resource_type, args.name, args.props)


def _only_gateway_exposed(args: ResourceValidationArgs, config: dict[str, Any], report_violation: Report) -> None:
    for view in _views(args):
        if view.published and not view.gateway:
            report_violation(f"{view.where} (workload {view.workload or '?'}) is a backend but is reachable from outside: "
                f"{', '.join(view.published)} "
                             f"(allowed: none; only the gateway may publish). Fix: {ONLY_GATEWAY_EXPOSED.remediation}")
    if args.resource_type == K8S_SERVICE:
        spec = get(args.props, "spec", default={})
        kind = str(get(spec, "type", default="ClusterIP"))
        external = [str(ip) for ip in items(get(spec, "externalIPs"))]
        exposed = kind in ("NodePort", "LoadBalancer") or bool(external)
        if exposed and not is_gateway_labels(k8s_labels(args.props)):
            report_violation(f"Service '{args.name}' is of type {kind}{' with externalIPs ' + ', '.join(external) if external else ''} "
                f"but is not the gateway's "
                             "(allowed for backends: ClusterIP without externalIPs). "
                             "Fix: make it type ClusterIP; external clients reach it through the gateway Service and its routes.")


def _images_pinned(args: ResourceValidationArgs, config: dict[str, Any], report_violation: Report) -> None:
    forbidden = {str(t) for t in config["forbiddenTags"]}
    for view in _views(args):
        image = parse_image(view.image)
        problem = None
        if image.digest is None and image.tag is None:
            problem = "has no tag, so it means ':latest' and moves with every push"
        elif image.tag in forbidden and image.digest is None:
            problem = f"uses the moving tag ':{image.tag}'"
        elif config["requireDigest"] and image.digest is None:
            problem = "has no digest, and this environment requires image@sha256:<digest>"
        if problem:
            tags = ", ".join(sorted(forbidden)) or "none"
            required = "repository:tag@sha256:<digest>" if config["requireDigest"] else f"a tag other than {tags}, or a digest"
            report_violation(f"{view.where}: image '{view.image}' {problem} (required: {required}). Fix: {IMAGES_PINNED.remediation}")


def _health_checks(args: ResourceValidationArgs, config: dict[str, Any], report_violation: Report) -> None:
    for view in _views(args):
        if view.health is None:
            what = "no healthcheck (or `NONE`)" if view.target == "docker" else "no readinessProbe"
            report_violation(f"{view.where}: {what}, so an unhealthy replica keeps receiving traffic (required: a health check). "
                             f"Fix: {HEALTH_CHECKS.remediation}")


def _health_probes_valid(args: ResourceValidationArgs, config: dict[str, Any], report_violation: Report) -> None:
    for view in _views(args):
        if view.health_problem:
            report_violation(f"{view.where}: {view.health_problem} (required: a health check that runs). Fix: {HEALTH_PROBES_VALID.remediation}")


def _resource_limits(args: ResourceValidationArgs, config: dict[str, Any], report_violation: Report) -> None:
    for view in _views(args):
        missing = [name for name, value in (("memory", view.memory), ("cpu", view.cpu)) if value is None]
        if missing:
            report_violation(f"{view.where}: no {' and no '.join(missing)} limit (measured: memory={view.memory or 'unlimited'}, "
                             f"cpu={view.cpu or 'unlimited'}; required: both set). Fix: {RESOURCE_LIMITS.remediation}")


def _hardening(args: ResourceValidationArgs, config: dict[str, Any], report_violation: Report) -> None:
    allowed = {str(c).upper() for c in config["allowedCapabilities"]}
    for view in _views(args):
        problems = []
        if "ALL" not in view.caps_dropped:
            problems.append(f"capabilities dropped: {', '.join(view.caps_dropped) or 'none'} (required: ALL)")
        extra = sorted(set(view.caps_added) - allowed)
        if extra:
            why = "; ".join(f"{cap}: {DANGER.get(cap, 'outside the allowed set')}" for cap in extra)
            problems.append(f"capabilities added: {', '.join(extra)} ({why}) (allowed: {', '.join(sorted(allowed)) or 'none'})")
        if not view.no_new_privileges:
            problems.append("privilege escalation possible (required: " +
                            ("security_opts no-new-privileges:true)" if view.target == "docker" else "allowPrivilegeEscalation: false)"))
        if view.privileged:
            problems.append("privileged: true (required: false)")
        if view.target == "kubernetes" and not view.run_as_non_root:
            problems.append("runAsNonRoot is not true (required: true)")
        if problems:
            report_violation(f"{view.where}: {'; '.join(problems)}. Fix: {HARDENING.remediation}")


# -- stack gates --------------------------------------------------------------------------------------------------

def _declared_read_only(resources: list[Any]) -> dict[str, bool | None]:
    """Workload -> read_only_root_fs as the report declares it; None where the report does not carry it."""
    declared: dict[str, bool | None] = {}
    for resource in resources:
        if resource.resource_type == APP_NETWORK:
            workloads: Mapping[str, Any] = get(resource.props, "report", "workloads", default={})
            for name in workloads:
                value = get(workloads[name], "read_only_root_fs")
                declared[str(name)] = None if value is None else bool(value)
    return declared


def _read_only(args: StackValidationArgs, config: dict[str, Any], report_violation: StackReport) -> None:
    declared = _declared_read_only(args.resources)
    for resource in args.resources:
        for view in containers_of(resource.resource_type, resource.name, resource.props):
            if view.read_only:
                continue
            if view.proxy:
                if view.target == "docker":
                    continue  # Docker cannot upload nginx.conf into a read-only root fs: the proxies are writable by design
                report_violation(f"{view.where}: the proxy's root filesystem is writable (readOnlyRootFilesystem: {view.read_only}; "
                                 "required: true — its config is a read-only ConfigMap mount). Fix: set readOnlyRootFilesystem: true on "
                                 "the proxy container.", resource.urn)
                continue
            declaration = declared.get(view.workload or "")
            if declaration is None and not config["allowDeclaredWritable"]:
                # The report does not say what the workload declares: the container's own setting is all there is.
                report_violation(f"{view.where}: root filesystem is writable (read-only: {view.read_only}); this environment requires read-only "
                                 f"backends (allowDeclaredWritable: false) and the strategy report does not state workload '{view.workload}''s "
                                 f"read_only_root_fs. Fix: {READ_ONLY.remediation}", resource.urn)
            elif declaration is None or declaration:
                report_violation(f"{view.where}: root filesystem is writable (read-only: {view.read_only}) although workload '{view.workload}' "
                                 f"declares read_only_root_fs: "
                                 f"true{' (the spec default; the report does not state it)' if declaration is None else ''}. "
                                 "Fix: set the container read-only as declared (the target does this; a hand-made container must set "
                                 "read_only / readOnlyRootFilesystem).", resource.urn)
            elif not config["allowDeclaredWritable"]:
                report_violation(f"{view.where}: workload '{view.workload}' declares read_only_root_fs: false, and this environment requires "
                                 f"read-only backends (allowDeclaredWritable: false). Fix: {READ_ONLY.remediation}", resource.urn)


def _backends_internal(args: StackValidationArgs, config: dict[str, Any], report_violation: StackReport) -> None:
    networks = {str(get(r.props, "name", default=r.name)): bool(get(r.props, "internal", default=False))
                for r in args.resources if r.resource_type == DOCKER_NETWORK}
    containers = [r for r in args.resources if r.resource_type == DOCKER_CONTAINER]
    if not containers:
        args.not_applicable("no Docker containers in this stack (on Kubernetes, k8s-default-deny-network-policy isolates backends)")
    for resource in containers:
        labels = docker_labels(resource.props)  # (a container view would read far more than this gate needs)
        if is_gateway_labels(labels):
            continue
        attached = [str(get(n, "name", default="?")) for n in items(get(resource.props, "networksAdvanced"))]
        mode = get(resource.props, "networkMode")
        bad = [f"{name} ({'not declared in this stack, so not provably internal' if name not in networks else 'internal: false'})"
               for name in attached if not networks.get(name, False)]
        if mode not in (None, "none") and mode not in attached:  # "none": no network at all, the most internal there is
            bad.append(f"network_mode {mode}")
        if not attached and mode is None:
            bad.append("Docker's default bridge network (no networks_advanced)")
        if bad:
            report_violation(f"container '{resource.name}' (workload {labels.get('netopt.workload') or '?'}) is attached to non-internal "
                             f"network(s): {', '.join(bad)} "
                             f"(allowed: internal networks only; internal here: {', '.join(n for n, i in networks.items() if i) or 'none'}). "
                             f"Fix: {BACKENDS_INTERNAL.remediation}", resource.urn)


def policies() -> list[Policy]:
    return [
        resource_policy(ONLY_GATEWAY_EXPOSED, _only_gateway_exposed, reads=[*CONTAINER_TYPES, K8S_SERVICE]),
        stack_policy(BACKENDS_INTERNAL, _backends_internal),
        resource_policy(IMAGES_PINNED, _images_pinned, reads=CONTAINER_TYPES),
        resource_policy(HEALTH_CHECKS, _health_checks, reads=CONTAINER_TYPES),
        resource_policy(HEALTH_PROBES_VALID, _health_probes_valid, reads=CONTAINER_TYPES),
        resource_policy(RESOURCE_LIMITS, _resource_limits, reads=CONTAINER_TYPES),
        resource_policy(HARDENING, _hardening, reads=CONTAINER_TYPES),
        stack_policy(READ_ONLY, _read_only),
    ]
