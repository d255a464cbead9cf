"""Read-only views of what the engine sends: the strategy report, containers of either target, the gateway config.

Nothing here computes a score or a capacity figure: those come, already computed by `components`, in the
AppNetwork component's `report` input (`components/plan/report.py`). These helpers only find values in resource
properties, whatever the target (Docker containers or Kubernetes Deployments).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

APP_NETWORK = "netopt:index:AppNetwork"
DOCKER_CONTAINER = "docker:index/container:Container"
DOCKER_NETWORK = "docker:index/network:Network"
K8S_DEPLOYMENT = "kubernetes:apps/v1:Deployment"
K8S_STATEFULSET = "kubernetes:apps/v1:StatefulSet"
K8S_WORKLOADS = (K8S_DEPLOYMENT, K8S_STATEFULSET)  # what runs pods: a stateful workload is a StatefulSet
K8S_SERVICE = "kubernetes:core/v1:Service"
K8S_CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
K8S_NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
K8S_PDB = "kubernetes:policy/v1:PodDisruptionBudget"
K8S_HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
K8S_NAMESPACE = "kubernetes:core/v1:Namespace"

GATEWAY_ROLE = "gateway"
SERVICE_PROXY_ROLE = "service-proxy"
PROXY_ROLES = frozenset({GATEWAY_ROLE, SERVICE_PROXY_ROLE})


def get(mapping: Any, *path: str | int, default: Any = None) -> Any:
    """mapping[path[0]][path[1]]... or default when a step is missing (None-valued keys are dropped on the wire)."""
    value = mapping
    for key in path:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return default
        if value is None:
            return default
    return value


def items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []


# -- labels and roles ---------------------------------------------------------------------------------------------

class _PerProps(threading.local):
    """Answers kept per resource properties object, per thread: several gates ask the same thing of one resource."""

    def __init__(self) -> None:
        # id(props) -> (props, key, answer): holding props keeps the id from being reused while cached.
        self.entries: dict[int, tuple[Any, Any, Any]] = {}

    def get(self, props: Any, key: Any) -> Any:
        """The answer kept for `props` under `key`, or None."""
        entry = self.entries.get(id(props))
        return entry[2] if entry is not None and entry[0] is props and entry[1] == key else None

    def put(self, props: Any, key: Any, answer: Any) -> None:
        if len(self.entries) > 20_000:
            self.entries.clear()
        self.entries[id(props)] = (props, key, answer)


_LABELS = _PerProps()


def docker_labels(props: Mapping[str, Any]) -> dict[str, str]:
    """A container's labels. The gates that find proxies, workloads and container views each ask: read once per
    resource (per thread), a copy returned."""
    labels: dict[str, str] | None = _LABELS.get(props, None)
    if labels is None:
        labels = {str(get(entry, "label")): str(get(entry, "value", default="")) for entry in items(get(props, "labels"))}
        _LABELS.put(props, None, labels)
    return dict(labels)


def k8s_labels(props: Mapping[str, Any], *path: str) -> dict[str, str]:
    labels = get(props, *path, "metadata", "labels", default={})
    return {str(k): str(labels[k]) for k in labels}


def is_gateway_labels(labels: Mapping[str, str]) -> bool:
    return labels.get("netopt.role") == GATEWAY_ROLE or labels.get("app.kubernetes.io/component") == GATEWAY_ROLE


def is_proxy_labels(labels: Mapping[str, str]) -> bool:
    """netopt's own nginx: the gateway or a service proxy (it runs a config netopt rendered, not a workload's image)."""
    return bool({labels.get("netopt.role"), labels.get("app.kubernetes.io/component")} & PROXY_ROLES)


# -- containers of either target ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ContainerView:
    """One container as a gate sees it, from a Docker Container or one container of a Kubernetes Deployment."""

    target: str  # "docker" | "kubernetes"
    resource: str  # the Pulumi resource name
    container: str  # the container's own name
    gateway: bool
    proxy: bool  # the gateway or a service proxy: netopt's own nginx
    workload: str | None
    image: str
    read_only: bool | None
    caps_dropped: tuple[str, ...]
    caps_added: tuple[str, ...]
    no_new_privileges: bool
    privileged: bool
    run_as_non_root: bool | None
    health: str | None  # a description of the health check, None when there is none
    memory: str | None
    cpu: str | None
    published: tuple[str, ...]  # host-reachable ports or host networking
    props: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)
    health_problem: str | None = None  # why the declared health check cannot work, None when it can (or there is none)

    @property
    def where(self) -> str:
        if self.target == "docker":
            return f"container '{self.resource}'"
        return f"Deployment '{self.resource}' container '{self.container}'"


_VIEWS = _PerProps()


def containers_of(resource_type: str, name: str, props: Mapping[str, Any]) -> list[ContainerView]:
    """The containers a resource declares. Several gates ask about the same resource: each answer is kept, per thread."""
    views: list[ContainerView] | None = _VIEWS.get(props, (resource_type, name))
    if views is None:
        if resource_type == DOCKER_CONTAINER:
            views = [_docker_container(name, props)]
        elif resource_type in K8S_WORKLOADS:
            views = _k8s_containers(name, props)
        else:
            return []
        _VIEWS.put(props, (resource_type, name), views)
    return list(views)


def _docker_container(name: str, props: Mapping[str, Any]) -> ContainerView:
    labels = docker_labels(props)
    tests = [str(t) for t in items(get(props, "healthcheck", "tests"))]
    health = None if not tests or tests[0].upper() == "NONE" else " ".join(tests)
    health_problem = _docker_health_problem(tests) if health else None
    opts = [str(o).replace("=", ":") for o in items(get(props, "securityOpts"))]
    published = [f"{get(p, 'ip', default='0.0.0.0')}:{int(float(get(p, 'external', default=0)))}->{int(float(get(p, 'internal', default=0)))}"
                 for p in items(get(props, "ports"))]
    if get(props, "networkMode") == "host":
        published.append("network_mode=host")
    memory = get(props, "memory")
    cpus = get(props, "cpus")
    return ContainerView(
        target="docker", resource=name, container=str(get(props, "name", default=name)),
        gateway=is_gateway_labels(labels), proxy=is_proxy_labels(labels), workload=labels.get("netopt.workload"),
        image=str(get(props, "image", default="")),
        read_only=bool(get(props, "readOnly", default=False)),
        caps_dropped=tuple(str(c).upper() for c in items(get(props, "capabilities", "drops"))),
        caps_added=tuple(str(c).upper() for c in items(get(props, "capabilities", "adds"))),
        no_new_privileges=any(o in ("no-new-privileges", "no-new-privileges:true") for o in opts),
        privileged=bool(get(props, "privileged", default=False)),
        run_as_non_root=None,
        health=health,
        memory=None if not memory or float(memory) <= 0 else f"{float(memory):g}MB",
        cpu=None if not cpus or float(cpus) <= 0 else str(cpus),
        published=tuple(published),
        props=props,
        health_problem=health_problem,
    )


def _docker_health_problem(tests: list[str]) -> str | None:
    """Docker runs a HEALTHCHECK only in exec form (`CMD`, argv...) or shell form (`CMD-SHELL`, one command)."""
    if tests[0] not in ("CMD", "CMD-SHELL"):
        return f"healthcheck test {tests!r} does not start with CMD or CMD-SHELL, so Docker runs no probe at all"
    if len(tests) < 2 or not all(t.strip() for t in tests[1:]):
        return f"healthcheck test {tests!r} names no command to run"
    return None


_PROBES = ("httpGet", "tcpSocket", "exec", "grpc")


def _k8s_probe_problem(container: Any) -> str | None:
    """A probe runs when it has exactly one handler and its port is one the container declares (or a number)."""
    port_names = {str(get(p, "name")) for p in items(get(container, "ports")) if get(p, "name") is not None}
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = get(container, kind)
        if probe is None:
            continue
        handlers = [k for k in _PROBES if get(probe, k) is not None]
        if len(handlers) != 1:
            return f"{kind} has {len(handlers)} handlers ({', '.join(handlers) or 'none'}); it needs exactly one"
        port = get(probe, handlers[0], "port")
        if isinstance(port, str) and port not in port_names:
            return f"{kind}.{handlers[0]}.port names '{port}', which is not a port of the container ({', '.join(sorted(port_names)) or 'none'})"
        if handlers[0] == "exec" and not items(get(probe, "exec", "command")):
            return f"{kind}.exec has no command"
    return None


def _k8s_containers(name: str, props: Mapping[str, Any]) -> list[ContainerView]:
    labels = k8s_labels(props, "spec", "template") or k8s_labels(props)
    pod = get(props, "spec", "template", "spec", default={})
    pod_non_root = get(pod, "securityContext", "runAsNonRoot")
    host_network = bool(get(pod, "hostNetwork", default=False))
    views = []
    for container in items(get(pod, "containers")):
        security = get(container, "securityContext", default={})
        probe = get(container, "readinessProbe")
        published = [f"hostPort {int(float(get(p, 'hostPort')))}->{int(float(get(p, 'containerPort', default=0)))}"
                     for p in items(get(container, "ports")) if get(p, "hostPort")]
        if host_network:
            published.append("hostNetwork=true")
        non_root = get(security, "runAsNonRoot")
        views.append(ContainerView(
            target="kubernetes", resource=name, container=str(get(container, "name", default="?")),
            gateway=is_gateway_labels(labels), proxy=is_proxy_labels(labels),
            workload=None if is_proxy_labels(labels) else labels.get("app.kubernetes.io/name"),
            image=str(get(container, "image", default="")),
            read_only=get(security, "readOnlyRootFilesystem"),
            caps_dropped=tuple(str(c).upper() for c in items(get(security, "capabilities", "drop"))),
            caps_added=tuple(str(c).upper() for c in items(get(security, "capabilities", "add"))),
            no_new_privileges=get(security, "allowPrivilegeEscalation") is False,
            privileged=bool(get(security, "privileged", default=False)),
            run_as_non_root=bool(non_root if non_root is not None else pod_non_root),
            health=None if probe is None else "readinessProbe " + ", ".join(k for k in _PROBES if get(probe, k) is not None),
            memory=get(container, "resources", "limits", "memory"),
            cpu=get(container, "resources", "limits", "cpu"),
            published=tuple(published),
            props=container,
            health_problem=_k8s_probe_problem(container),
        ))
    return views


# -- images -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageRef:
    repository: str
    tag: str | None
    digest: str | None


def parse_image(image: str) -> ImageRef:
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.partition(":")[2] or None
    repository = name[: len(name) - len(tag) - 1] if tag else name
    return ImageRef(repository, tag, digest or None)
