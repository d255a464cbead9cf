"""Where each proxy's nginx.conf is deployed, read from the resources that deliver it — every copy, per target.

A proxy is an nginx the program deploys with a config it rendered: the gateway and every service proxy (one per called
workload, its config delivered the same way). A proxy is identified by its role label and its name, never by
assuming there is one gateway:

- Docker: a container labelled `netopt.role` (proxy name: `netopt.proxy`, else the role). Its config is the
  `stdin` of the pulumi-command Command that delivers it to that container on creation and on every update
  (`environment.NETOPT_PROXY` names the container; the Command's `create` must be the shipped delivery script,
  components/targets/proxy_reload.sh, or the stdin never reaches the container). The container's `uploads` entry
  for the file its nginx loads (`-c`, else nginx's default path) is what it starts with: a bootstrap that serves
  nothing (the status server alone; `serves_traffic`) is no copy of the config; an upload that serves traffic is
  one, and must be the reported config like the Command's. (An upload under `ignore_changes` would be read from the
  state, not from the program: netopt's containers need none, since their bootstrap never changes.)
- Kubernetes: a Deployment (or StatefulSet) whose pod template is labelled `app.kubernetes.io/component` with a
  proxy role (proxy name: `app.kubernetes.io/name`). Its config is the key of the ConfigMap that the volume
  mounted over the file its nginx loads (`-c`) names — only a ConfigMap some proxy mounts is deployed config;
  another ConfigMap with the same labels is not read.

What cannot be followed (a Command delivering to a container the stack does not run as a proxy, a mount of a
ConfigMap the stack does not deploy, a file no upload or volume provides) is a problem of that proxy: the integrity
gates report it rather than skip it.
"""

from __future__ import annotations

import itertools
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policies.model import (
    DOCKER_CONTAINER,
    K8S_CONFIG_MAP,
    K8S_WORKLOADS,
    docker_labels,
    get,
    items,
    k8s_labels,
)
from policies.nginx_config import parse_config, walk
from policies.per_stack import per_stack

COMMAND = "command:local:Command"
PROXY_ROLES = frozenset({"gateway", "service-proxy"})  # roles whose workloads are nginx proxies running a config the program rendered
DOCKER_ROLE_LABEL = "netopt.role"
DOCKER_PROXY_LABEL = "netopt.proxy"
K8S_ROLE_LABEL = "app.kubernetes.io/component"
K8S_NAME_LABEL = "app.kubernetes.io/name"
DELIVERY_TARGET_ENV = "NETOPT_PROXY"  # the container the delivery script writes its stdin into
NGINX_DEFAULT_CONFIG = "/etc/nginx/nginx.conf"
DELIVERY_SCRIPT = (Path(__file__).resolve().parent.parent / "components" / "targets" / "proxy_reload.sh").read_text()


@dataclass(frozen=True)
class DeployedCopy:
    """One deployed copy of a proxy's config: which resource carries it, described for a message, and its text."""

    urn: str | None
    where: str
    text: str


@dataclass
class DeployedProxy:
    role: str
    name: str
    target: str  # "docker" | "kubernetes"
    resource: str  # the container or workload resource name
    copies: list[DeployedCopy] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what keeps a copy from being read


@dataclass(frozen=True)
class Resource:
    """What the reader needs of a resource, from a stack policy's PolicyResource or a recorded resource alike."""

    type: str
    name: str
    props: Mapping[str, Any]
    urn: str | None = None


def nginx_config_path(command: Any) -> str:
    """The config file an nginx command line loads: the argument of `-c`, else nginx's compiled-in default."""
    argv = [str(a) for a in items(command)]
    for flag, value in itertools.pairwise(argv):
        if flag == "-c":
            return value
    return NGINX_DEFAULT_CONFIG


@per_stack
def stack_proxies(resources: Sequence[Any]) -> tuple[DeployedProxy, ...]:
    """`deployed_proxies` of a stack policy's resources (PolicyResources), read once per AnalyzeStack."""
    return tuple(deployed_proxies(Resource(r.resource_type, r.name, r.props, r.urn) for r in resources))


def deployed_proxies(resources: Iterable[Resource]) -> list[DeployedProxy]:
    """Every proxy of the stack with every deployed copy of its config (see the module docstring)."""
    listed = list(resources)
    proxies = _docker_proxies(listed) + _kubernetes_proxies(listed)
    return sorted(proxies, key=lambda p: (p.role, p.name, p.resource))


# -- docker -------------------------------------------------------------------------------------------------------

def _docker_proxies(resources: list[Resource]) -> list[DeployedProxy]:
    proxies: dict[str, DeployedProxy] = {}
    for resource in resources:
        if resource.type != DOCKER_CONTAINER:
            continue
        labels = docker_labels(resource.props)
        role = labels.get(DOCKER_ROLE_LABEL)
        if role not in PROXY_ROLES:
            continue
        proxy = DeployedProxy(role, labels.get(DOCKER_PROXY_LABEL, role), "docker", resource.name)
        path = nginx_config_path(get(resource.props, "command"))
        uploads = [u for u in items(get(resource.props, "uploads")) if str(get(u, "file", default="")) == path]
        if not uploads:
            proxy.problems.append(f"container '{resource.name}' runs nginx with {path}, which no upload provides")
        # A bootstrap (the status server alone, what netopt's containers start with) serves nothing until the Command
        # delivers the config: it is not a copy of the config. An upload that serves traffic is one, judged as such.
        proxy.copies += [DeployedCopy(resource.urn, f"container '{resource.name}' upload {path}", str(get(u, "content", default="")))
                         for u in uploads if serves_traffic(str(get(u, "content", default="")))]
        proxies[str(get(resource.props, "name", default=resource.name))] = proxy
    delivered_to: set[str] = set()
    for resource in resources:
        target = _delivery_target(resource)
        if target is None:
            continue
        delivered_to.add(target)
        delivered = proxies.get(target)
        if delivered is None:
            orphan = DeployedProxy("unknown", target, "docker", resource.name)
            orphan.problems.append(f"Command '{resource.name}' delivers a config to container '{target}', which this stack does not "
                                   "run as a proxy")
            proxies[f"command:{resource.name}"] = orphan
            continue
        if str(get(resource.props, "create", default="")) != DELIVERY_SCRIPT:
            delivered.problems.append(f"Command '{resource.name}' does not run the delivery script "
                                      "(components/targets/proxy_reload.sh), so its stdin may never reach the container")
        delivered.copies.append(DeployedCopy(resource.urn, f"Command '{resource.name}' stdin (delivered to '{target}')",
                                             str(get(resource.props, "stdin", default=""))))
    for container, proxy in proxies.items():
        if proxy.role in PROXY_ROLES and container not in delivered_to:
            proxy.problems.append(f"no Command delivers the config to container '{proxy.resource}': a later config change "
                                  "would never reach it")
    return list(proxies.values())


_PASSING = frozenset({"proxy_pass", "grpc_pass", "fastcgi_pass", "uwsgi_pass", "scgi_pass", "memcached_pass"})


def serves_traffic(text: str) -> bool:
    """Whether an nginx config passes any request or connection on (an unparsable one counts as serving: the
    integrity gates then judge it as a copy of the config)."""
    config = parse_config(text)
    return bool(config.errors) or any(d.name in _PASSING for d in walk(config.directives))


def _delivery_target(resource: Resource) -> str | None:
    if resource.type != COMMAND:
        return None
    target = get(resource.props, "environment", DELIVERY_TARGET_ENV)
    return None if target is None else str(target)


# -- kubernetes ---------------------------------------------------------------------------------------------------

def _kubernetes_proxies(resources: list[Resource]) -> list[DeployedProxy]:
    config_maps: dict[str, list[Resource]] = {}
    for resource in resources:
        if resource.type == K8S_CONFIG_MAP:
            config_maps.setdefault(str(get(resource.props, "metadata", "name", default="")), []).append(resource)
    proxies = []
    for resource in resources:
        if resource.type not in K8S_WORKLOADS:
            continue
        labels = k8s_labels(resource.props, "spec", "template")
        role = labels.get(K8S_ROLE_LABEL)
        if role not in PROXY_ROLES:
            continue
        proxy = DeployedProxy(role, labels.get(K8S_NAME_LABEL, role), "kubernetes", resource.name)
        pod = get(resource.props, "spec", "template", "spec", default={})
        volumes = {str(get(v, "name")): v for v in items(get(pod, "volumes"))}
        for container in items(get(pod, "containers")):
            _mounted_config(proxy, resource, container, volumes, config_maps)
        proxies.append(proxy)
    return proxies


def _mounted_config(proxy: DeployedProxy, workload: Resource, container: Any, volumes: Mapping[str, Any],
                    config_maps: Mapping[str, list[Resource]]) -> None:
    """The ConfigMap key mounted over the file this container's nginx loads, as one copy (or the problem why not)."""
    path = nginx_config_path(get(container, "command"))
    where = f"{workload.name} container '{get(container, 'name', default='?')}'"
    mounts = [m for m in items(get(container, "volumeMounts"))
              if path.startswith(str(get(m, "mountPath", default="")).rstrip("/") + "/")]
    if not mounts:
        proxy.problems.append(f"{where} runs nginx with {path}, which no volume mount provides")
        return
    mount = max(mounts, key=lambda m: len(str(get(m, "mountPath"))))  # the innermost mount shadows the others
    relative = posixpath.relpath(path, str(get(mount, "mountPath")))
    volume = volumes.get(str(get(mount, "name")))
    name = get(volume, "configMap", "name")
    if name is None:
        proxy.problems.append(f"{where} loads {path} from volume '{get(mount, 'name')}', which is not a ConfigMap")
        return
    keys = {str(get(i, "path")): str(get(i, "key")) for i in items(get(volume, "configMap", "items"))}
    key = keys.get(relative) if keys else relative
    config_map = _same_namespace(workload, config_maps.get(str(name), []))
    data = get(config_map.props, "data", default={}) if config_map else {}
    if config_map is None or key is None or key not in data:
        missing = f"ConfigMap '{name}'" if config_map is None else f"key {key or relative!r} of ConfigMap '{name}'"
        proxy.problems.append(f"{where} loads {path} from {missing}, which this stack does not deploy")
        return
    proxy.copies.append(DeployedCopy(config_map.urn, f"ConfigMap '{config_map.name}' key {key} (mounted by {where} at {path})",
                                     str(data[key])))


def _same_namespace(workload: Resource, candidates: list[Resource]) -> Resource | None:
    """The ConfigMap of that name in the workload's namespace (namespaces are read only when the name is ambiguous:
    a namespace wired from another resource may be unknown in preview)."""
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    namespace = get(workload.props, "metadata", "namespace")
    return next((c for c in candidates if get(c.props, "metadata", "namespace") == namespace), None)


# -- per resource (resource policies) ------------------------------------------------------------------------------

CONFIG_CARRIERS = (DOCKER_CONTAINER, COMMAND, K8S_CONFIG_MAP)  # the resources `carried_configs` reads


def carried_configs(resource_type: str, name: str, props: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(where, nginx.conf text) this one resource carries for a proxy: a proxy container's upload, a delivering
    Command's stdin, a proxy ConfigMap's data. For resource policies, which see one resource at a time; the stack
    gates use `deployed_proxies`, which also checks that each copy is the one nginx loads."""
    if resource_type == DOCKER_CONTAINER:
        uploads = items(get(props, "uploads"))  # read first: thousands of backends upload nothing, and labels cost more
        if not uploads or docker_labels(props).get(DOCKER_ROLE_LABEL) not in PROXY_ROLES:
            return []
        path = nginx_config_path(get(props, "command"))
        return [(f"container '{name}' upload {path}", str(get(u, "content", default=""))) for u in uploads if str(get(u, "file", default="")) == path]
    if resource_type == COMMAND:
        target = _delivery_target(Resource(resource_type, name, props))
        return [] if target is None else [(f"Command '{name}' stdin (delivered to '{target}')", str(get(props, "stdin", default="")))]
    if resource_type == K8S_CONFIG_MAP and k8s_labels(props).get(K8S_ROLE_LABEL) in PROXY_ROLES:
        data = get(props, "data", default={})
        return [(f"ConfigMap '{name}' key {key}", str(data[key])) for key in data if str(key).endswith("nginx.conf")]
    return []
