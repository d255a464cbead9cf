"""Kubernetes target (pulumi-kubernetes): the same plan as Docker, for a stack that outgrows one machine.

One namespace (Pod Security "restricted"), per workload a Deployment and a ClusterIP Service, the nginx gateway as
an immutable content-named ConfigMap + Deployment + Service, NetworkPolicies (default-deny in both directions, then
exactly the service graph's flows: `network_policies.py`), a PodDisruptionBudget for every Deployment with
more than one replica and an optional HorizontalPodAutoscaler per workload.

Balancing is "service" (`balancing.target_balancing`). Pod IPs change on every restart, and nginx (1.22 here, 1.27 in the gateway image, without
the upstream `resolve` parameter) resolves upstream names once, when it loads its config. So the gateway's upstream
members are the workloads' ClusterIP Services, whose address is fixed for the Service's lifetime: nginx splits
each route between workloads by weight (with the chosen algorithm), and kube-proxy spreads a workload's
connections over its ready pods. No pod address ever reaches nginx, so none can go stale. The gateway Deployment
depends on every workload's resources, so each Service exists (and its name resolves) before nginx starts.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Sequence
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s

from components.plan.addressing import AddressMap, kubernetes_address_map, kubernetes_namespace, kubernetes_pods_services, kubernetes_service_host
from components.plan.calls import Edge
from components.plan.graph import GATEWAY, proxy_name, routed_workloads
from components.plan.ir import Proxy
from components.plan.report import config_digest
from components.render.runtime import NginxRuntime
from components.spec.runtime import user_ids
from components.spec.schema import HealthCheck, Resources, Spec, Workload
from components.targets.mesh import MeshInputs, MeshProfile, profile
from components.targets.network_policies import network_policies
from components.targets.nginx_image import stream_modules
from components.targets.privileges import listen_ports, port_sysctls
from components.targets.probes import kubernetes_handler

CONFIG_KEY = "nginx.conf"
CONFIG_DIR = "/etc/netopt"
CONFIG_CHECKSUM = "netopt.io/config-sha256"
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_EVERYWHERE = {ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")}


def config_map_name(config: str, proxy: str = GATEWAY) -> str:
    """Content-addressed: a new config is a new ConfigMap, so old pods keep the config they started with."""
    return f"{proxy}-nginx-{config_digest(config)[:10]}"


def _image_version(image: str) -> str | None:
    tag = image.split("@", 1)[0].rsplit("/", 1)[-1].partition(":")[2]
    return tag if _LABEL_VALUE.match(tag) else None


def _seconds(value: float) -> int:
    return max(1, math.ceil(value))


def _resources(resources: Resources) -> k8s.core.v1.ResourceRequirementsArgsDict:
    """Requests default to the limits: Guaranteed QoS, and the capacity model's service rates hold on a busy node."""
    def amount(cpu: float, memory_mb: int) -> dict[str, str]:
        return {"cpu": f"{round(cpu * 1000)}m", "memory": f"{memory_mb}Mi"}

    return {"requests": amount(resources.requests.cpu or resources.cpu, resources.requests.memory_mb or resources.memory_mb),
            "limits": amount(resources.cpu, resources.memory_mb)}


def _probes(handler: dict[str, Any], health: HealthCheck) -> dict[str, k8s.core.v1.ProbeArgsDict]:
    """Readiness takes a pod out of its Service after `failures` failed checks; liveness restarts it only after
    twice as many, so an overloaded pod is drained rather than killed. A slow starter (`start_period_s`) gets a
    startupProbe that holds both off for up to that long, so its start is never taken for a hang."""
    period = _seconds(health.period)
    delay: dict[str, Any] = {} if health.initial_delay_s is None else {"initial_delay_seconds": math.ceil(health.initial_delay_s)}
    readiness = cast(k8s.core.v1.ProbeArgsDict, {
        **handler,
        **delay,
        "period_seconds": period,
        "timeout_seconds": _seconds(health.timeout_s),
        "failure_threshold": health.failures,
        "success_threshold": 1,
    })
    liveness = cast(k8s.core.v1.ProbeArgsDict, {**readiness, "failure_threshold": health.failures * 2, "initial_delay_seconds": period, **delay})
    probes = {"readiness_probe": readiness, "liveness_probe": liveness}
    if health.start_period_s is not None:
        probes["startup_probe"] = {**readiness, "failure_threshold": math.ceil(health.start_period_s / period)}
    return probes


def _workload_probes(workload: Workload) -> dict[str, k8s.core.v1.ProbeArgsDict]:
    """Readiness, liveness (and a startup probe) from the workload's health kind; none for kind none."""
    handler = kubernetes_handler(workload, workload.protocol)
    probe = workload.health_check()
    if handler is None or not isinstance(probe, HealthCheck):
        return {}
    return _probes(handler, probe)


def _process(workload: Workload) -> dict[str, list[str]]:
    """`command` replaces the image's ENTRYPOINT, `args` its CMD (Kubernetes' names, too)."""
    process = {}
    if workload.command is not None:
        process["command"] = list(workload.command)
    if workload.args is not None:
        process["args"] = list(workload.args)
    return process


_APP_PROTOCOL = {"http": "http", "grpc": "kubernetes.io/h2c"}
"""Service appProtocol per workload protocol (plain gRPC is HTTP/2 without TLS); plain tcp states none."""


def _protocols(workload: Workload) -> dict[str, str]:
    """Each named port's protocol: the main port's is the workload's (and its name)."""
    return {workload.protocol: workload.protocol} | {p.name: p.protocol for p in workload.ports}


def _service_ports(workload: Workload) -> list[k8s.core.v1.ServicePortArgsDict]:
    """One Service port per named port, the main one first, each targeting the container port of its name."""
    protocols = _protocols(workload)
    ports: list[k8s.core.v1.ServicePortArgsDict] = []
    for name, number in workload.named_ports().items():
        port: k8s.core.v1.ServicePortArgsDict = {"name": name, "port": number, "target_port": name, "protocol": "TCP"}
        if protocols[name] in _APP_PROTOCOL:
            port["app_protocol"] = _APP_PROTOCOL[protocols[name]]
        ports.append(port)
    return ports


def _pod_security(user: str, sysctls: dict[str, str]) -> k8s.core.v1.PodSecurityContextArgsDict:
    """`sysctls`: pod-level kernel settings (a port below 1024: `privileges.port_sysctls`)."""
    uid, gid = user_ids(user)
    security: k8s.core.v1.PodSecurityContextArgsDict = {"run_as_non_root": True, "run_as_user": uid, "run_as_group": gid, "fs_group": gid,
                                                        "seccomp_profile": {"type": "RuntimeDefault"}}
    if sysctls:
        security["sysctls"] = [{"name": name, "value": value} for name, value in sorted(sysctls.items())]
    return security


def _container_security(read_only: bool, add: list[str] | None = None) -> k8s.core.v1.SecurityContextArgsDict:
    """Drop ALL; `add` is what the workload declares (the restricted Pod Security Standard admits NET_BIND_SERVICE only)."""
    return {
        "allow_privilege_escalation": False,
        "privileged": False,
        "read_only_root_filesystem": read_only,
        "run_as_non_root": True,
        "capabilities": {"drop": ["ALL"], **({"add": list(add)} if add else {})},
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def _container(workload: Workload) -> k8s.core.v1.ContainerArgsDict:
    """The workload's one container: its named ports, env (PORT = its main port), limits, probes and hardening."""
    port = {"PORT": str(workload.port)} if workload.port is not None else {}
    env = {k: v for k, v in workload.env.items() if k != "NETOPT_REPLICA"} | port
    env_vars: list[k8s.core.v1.EnvVarArgsDict] = [{"name": k, "value": v} for k, v in sorted(env.items())]
    env_vars.append({"name": "NETOPT_REPLICA", "value_from": {"field_ref": {"field_path": "metadata.name"}}})
    return {
        "name": workload.name,
        "image": workload.image,
        "ports": [{"name": name, "container_port": number, "protocol": "TCP"} for name, number in workload.named_ports().items()],
        "env": env_vars,
        "resources": _resources(workload.resources),
        **_workload_probes(workload),  # type: ignore[typeddict-item]
        "security_context": _container_security(workload.read_only_root_fs, workload.capabilities.add),
        "volume_mounts": [{"name": "tmp", "mount_path": "/tmp"}, *({"name": v.name, "mount_path": v.path} for v in workload.volumes)],
        **_process(workload),
    }


def _stateful(workload: Workload) -> bool:
    """A StatefulSet: per-pod persistent storage, or a singleton (never two pods at once, even during a rollout)."""
    return workload.persistent() or workload.singleton


class KubernetesTarget:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.namespace = kubernetes_namespace(spec)
        self._addresses = kubernetes_address_map(spec)
        self._pods_services = kubernetes_pods_services(spec)
        self._provider: k8s.Provider | None = None
        self._policies = network_policies(spec, self.selector)
        self._mesh: MeshProfile | None = None if spec.kubernetes.mesh == "none" else profile(spec.kubernetes.mesh)

    def address_map(self, proxy: Proxy | None = None) -> AddressMap:
        """Every proxy reaches a workload through the Service of its pods (`addressing.kubernetes_pods_services`)."""
        return self._addresses

    def nginx_runtime(self, proxy: Proxy) -> NginxRuntime:
        return NginxRuntime(stream_modules=stream_modules(self.spec))

    # -- naming -------------------------------------------------------------------------------------------------

    def selector(self, name: str) -> dict[str, str]:
        return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": self.namespace}

    def labels(self, name: str, component: str, image: str | None = None) -> dict[str, str]:
        labels = {
            **self.selector(name),
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": self.spec.network.name,
            "app.kubernetes.io/managed-by": "pulumi",
            "netopt.io/environment": self.spec.environment,
        }
        version = _image_version(image) if image else None
        if version:
            labels["app.kubernetes.io/version"] = version
        return labels

    def _metadata(self, name: str, namespace: pulumi.Input[str], labels: dict[str, str],
                  annotations: dict[str, str] | None = None) -> k8s.meta.v1.ObjectMetaArgsDict:
        metadata: k8s.meta.v1.ObjectMetaArgsDict = {"name": name, "namespace": namespace, "labels": labels}
        if annotations:
            metadata["annotations"] = annotations
        return metadata

    def _opts(self, parent: pulumi.Resource, depends_on: list[pulumi.Resource] | None = None) -> pulumi.ResourceOptions:
        assert self._provider is not None, "network() creates the provider before any other resource"
        return pulumi.ResourceOptions(parent=parent, provider=self._provider, depends_on=depends_on)

    def _pod_template(self, name: str, labels: dict[str, str], user: str, container: k8s.core.v1.ContainerArgsDict,
                      volumes: list[k8s.core.v1.VolumeArgsDict], spread: bool,
                      annotations: dict[str, str] | None = None, finish_s: int = 30,
                      graceful_stop: str | None = None, sysctls: dict[str, str] | None = None) -> k8s.core.v1.PodTemplateSpecArgsDict:
        """`finish_s`: how long a request in flight may still take once the pod stops; `graceful_stop`: a shell
        command that makes the process finish its requests and exit (run after the drain, before SIGTERM). Under a
        mesh every pod runs as its own ServiceAccount (`name`): its mesh identity, which authorization names."""
        drain = self.spec.kubernetes.drain_s
        if graceful_stop is not None:
            # nginx exits at once on SIGTERM, dropping requests in flight: after the drain the preStop hook asks
            # it to finish them (SIGQUIT) and waits until it has, within the grace period.
            quit_after_drain: k8s.core.v1.ExecActionArgsDict = {"command": ["/bin/sh", "-c", f"sleep {drain}; {graceful_stop}"]}
            stop: k8s.core.v1.LifecycleArgsDict = {"pre_stop": {"exec_": quit_after_drain}}
            container = {**container, "lifecycle": stop}
        elif drain:
            # Endpoint removal reaches kube-proxy and the gateway's load balancer a moment after the pod is told
            # to stop: the pod keeps serving meanwhile, so pods coming and going cost no failed requests.
            container = {**container, "lifecycle": {"pre_stop": {"sleep": {"seconds": drain}}}}
        pod: k8s.core.v1.PodSpecArgsDict = {
            "automount_service_account_token": False,
            "enable_service_links": False,
            "security_context": _pod_security(user, sysctls or {}),
            "termination_grace_period_seconds": drain + finish_s,
            "containers": [container],
            "volumes": volumes,
        }
        if self._mesh is not None:
            pod["service_account_name"] = name
        if spread:
            pod["topology_spread_constraints"] = [{
                "max_skew": 1,
                "topology_key": "kubernetes.io/hostname",
                "when_unsatisfiable": "ScheduleAnyway",
                "label_selector": {"match_labels": self.selector(name)},
            }]
        metadata: k8s.meta.v1.ObjectMetaArgsDict = {"labels": labels}
        if annotations:
            metadata["annotations"] = annotations
        return {"metadata": metadata, "spec": pod}

    def _deployment_spec(self, name: str, replicas: int | None, template: k8s.core.v1.PodTemplateSpecArgsDict) -> k8s.apps.v1.DeploymentSpecArgsDict:
        spec: k8s.apps.v1.DeploymentSpecArgsDict = {
            "selector": {"match_labels": self.selector(name)},
            # Surge first: a rollout never drops below the replicas the capacity model counts.
            "strategy": {"type": "RollingUpdate", "rolling_update": {"max_surge": 1, "max_unavailable": 0}},
            "revision_history_limit": 5,
            "template": template,
        }
        if replicas is not None:  # an autoscaled Deployment leaves replicas to its HorizontalPodAutoscaler
            spec["replicas"] = replicas
        return spec

    def _stateful_set_spec(self, workload: Workload, replicas: int | None,
                           template: k8s.core.v1.PodTemplateSpecArgsDict) -> k8s.apps.v1.StatefulSetSpecArgsDict:
        """Per-pod storage: one PersistentVolumeClaim per persistent volume and pod, kept when pods or the set go away (a
        singleton with scratch storage only has none)."""
        spec: k8s.apps.v1.StatefulSetSpecArgsDict = {
            "selector": {"match_labels": self.selector(workload.name)},
            "service_name": self._pods_services[workload.name],  # the Service of its own pods, not its proxy's
            # One pod at a time, each Ready before the next: a stateful replica is never replaced alongside its peers.
            "update_strategy": {"type": "RollingUpdate", "rolling_update": {"max_unavailable": 1}},
            "revision_history_limit": 5,
            "template": template,
        }
        claims: list[k8s.core.v1.PersistentVolumeClaimArgsDict] = [{
            "metadata": {"name": v.name, "labels": self.selector(workload.name)},
            "spec": {"access_modes": ["ReadWriteOnce"], "resources": {"requests": {"storage": f"{v.size_mb}Mi"}}},
        } for v in workload.volumes if v.kind == "persistent"]
        if claims:
            spec["persistent_volume_claim_retention_policy"] = {"when_deleted": "Retain", "when_scaled": "Retain"}
            spec["volume_claim_templates"] = claims
        if replicas is not None:
            spec["replicas"] = replicas
        return spec

    def _disruption_budget(self, parent: pulumi.Resource, name: str, namespace: pulumi.Input[str],
                           labels: dict[str, str]) -> k8s.policy.v1.PodDisruptionBudget:
        return k8s.policy.v1.PodDisruptionBudget(
            f"{self.spec.network.name}-{name}",
            metadata=self._metadata(name, namespace, labels),
            spec={"max_unavailable": 1, "selector": {"match_labels": self.selector(name)}},
            opts=self._opts(parent),
        )

    def _network_policies(self, parent: pulumi.Resource, owner: str, namespace: pulumi.Input[str]) -> list[pulumi.Resource]:
        """The NetworkPolicies of one owner (a workload, the gateway, or "" for the namespace-wide ones)."""
        return [
            k8s.networking.v1.NetworkPolicy(
                f"{self.spec.network.name}-{doc.name}",
                metadata=self._metadata(doc.name, namespace, self.labels(owner or doc.name, "network-policy")),
                spec=cast(k8s.networking.v1.NetworkPolicySpecArgsDict, doc.spec),  # plain dicts in the provider's snake_case form
                opts=self._opts(parent),
            )
            for doc in self._policies if doc.owner == owner
        ]

    # -- the Target protocol ------------------------------------------------------------------------------------

    def network(self, parent: pulumi.ComponentResource) -> dict[str, pulumi.Input[str]]:
        settings = self.spec.kubernetes
        net = self.spec.network.name
        self._provider = k8s.Provider(
            f"{net}-kubernetes",
            context=settings.context,
            render_yaml_to_directory=settings.render_yaml_to_directory,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        labels = {
            "app.kubernetes.io/part-of": net,
            "app.kubernetes.io/managed-by": "pulumi",
            "netopt.io/environment": self.spec.environment,
            # Every pod here meets the "restricted" Pod Security Standard; admission refuses any that does not.
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/audit": "restricted",
        }
        metadata: k8s.meta.v1.ObjectMetaArgsDict = {"name": self.namespace, "labels": labels}
        if self._mesh is not None:  # every pod of the namespace joins the mesh
            labels |= self._mesh.namespace_labels
            if self._mesh.namespace_annotations:
                metadata["annotations"] = dict(self._mesh.namespace_annotations)
        namespace = k8s.core.v1.Namespace(f"{net}-namespace", metadata=metadata, opts=self._opts(parent))
        name = namespace.metadata.apply(lambda m: m.name or self.namespace)
        self._network_policies(parent, "", name)
        return {"namespace": name}

    def workload(self, parent: pulumi.ComponentResource, workload: Workload, network: dict[str, pulumi.Input[str]]) -> list[pulumi.Resource]:
        net = self.spec.network.name
        namespace = network["namespace"]
        labels = self.labels(workload.name, "backend", workload.image)
        scaling = self.spec.kubernetes.autoscaling.get(workload.name)
        volumes: list[k8s.core.v1.VolumeArgsDict] = [{"name": "tmp", "empty_dir": {"size_limit": "64Mi"}}]
        volumes += [{"name": v.name, "empty_dir": {"size_limit": f"{v.size_mb}Mi"}} for v in workload.volumes if v.kind == "scratch"]
        template = self._pod_template(workload.name, labels, self.spec.workload_user(workload), _container(workload), volumes,
                                      spread=self.spec.max_replicas(workload.name) > 1, sysctls=port_sysctls(listen_ports(workload)))
        replicas = None if scaling else workload.replicas
        metadata = self._metadata(workload.name, namespace, labels)
        resources: list[pulumi.Resource] = [
            k8s.apps.v1.StatefulSet(f"{net}-{workload.name}", metadata=metadata, spec=self._stateful_set_spec(workload, replicas, template),
                                    opts=self._opts(parent))
            if _stateful(workload) else
            k8s.apps.v1.Deployment(f"{net}-{workload.name}", metadata=metadata, spec=self._deployment_spec(workload.name, replicas, template),
                                   opts=self._opts(parent)),
        ]
        if workload.named_ports():  # a workload that listens nowhere (a queue consumer) has nothing to reach
            resources.append(k8s.core.v1.Service(
                f"{net}-{workload.name}",
                metadata=self._metadata(self._pods_services[workload.name], namespace, labels,
                                        self._mesh.service_annotations(self.spec, workload.name) if self._mesh else None),
                spec={
                    "type": "ClusterIP",
                    "selector": self.selector(workload.name),
                    "ports": _service_ports(workload),
                    "session_affinity": "None",
                },
                opts=self._opts(parent),
            ))
        resources += self._network_policies(parent, workload.name, namespace)
        resources += self._service_account(parent, workload.name, namespace, labels)
        if workload.replicas > 1:
            resources.append(self._disruption_budget(parent, workload.name, namespace, labels))
        if scaling:
            resources.append(k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{net}-{workload.name}",
                metadata=self._metadata(workload.name, namespace, labels),
                spec={
                    "scale_target_ref": {"api_version": "apps/v1", "kind": "StatefulSet" if _stateful(workload) else "Deployment",
                                         "name": workload.name},
                    "min_replicas": workload.replicas,
                    "max_replicas": scaling.max_replicas,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                        "type": "Utilization", "average_utilization": scaling.cpu_utilization_percent}}}],
                },
                opts=self._opts(parent),
            ))
        return resources

    def service_proxy(self, parent: pulumi.ComponentResource, proxy: Proxy, config: str, network: dict[str, pulumi.Input[str]],
                      depends_on: list[pulumi.Resource]) -> list[pulumi.Resource]:
        """The service proxy of a called workload: a Deployment of nginx (the gateway's image) with at least two replicas
        and a PodDisruptionBudget, behind a Service with the workload's name and port, which its callers dial; the
        workload's own pods are `<workload>-backend`. NetworkPolicies let its callers in and it out to the workload."""
        assert proxy.workload is not None
        name = proxy_name(proxy.workload)
        namespace = network["namespace"]
        labels = self.labels(name, "service-proxy", self.spec.gateway.image)
        # The ports its callers call: the workload's main one (named after its protocol) and the others it passes through.
        names = {number: port_name for port_name, number in self.spec.workload(proxy.workload).named_ports().items()}
        listened = sorted({proxy.listen_port if s.port is None else s.port for s in proxy.servers})
        ports = [{"name": names[number], "container_port": number, "protocol": "TCP"} for number in listened]
        replicas = max(2, self.spec.gateway.replicas)
        resources = self._nginx(parent, name, labels, config, namespace, ports, replicas, proxy.status_port, depends_on,
                                finish_s=math.ceil(proxy.timeouts.read_s) + 5)
        service_ports: list[k8s.core.v1.ServicePortArgsDict] = []
        for number in listened:
            service_port: k8s.core.v1.ServicePortArgsDict = {"name": names[number], "port": number, "target_port": names[number], "protocol": "TCP"}
            if number == proxy.listen_port and proxy.protocol in _APP_PROTOCOL:
                service_port["app_protocol"] = _APP_PROTOCOL[proxy.protocol]
            service_ports.append(service_port)
        resources.append(k8s.core.v1.Service(
            f"{self.spec.network.name}-{name}",
            metadata=self._metadata(proxy.workload, namespace, labels),
            spec={"type": "ClusterIP", "selector": self.selector(name), "ports": service_ports, "session_affinity": "None"},
            opts=self._opts(parent),
        ))
        resources += self._network_policies(parent, name, namespace)
        return resources

    def gateway(self, parent: pulumi.ComponentResource, proxy: Proxy, config: str, network: dict[str, pulumi.Input[str]],
                depends_on: list[pulumi.Resource]) -> dict[str, pulumi.Input[str]]:
        gw = self.spec.gateway
        net = self.spec.network.name
        namespace = network["namespace"]
        digest = config_digest(config)
        labels = self.labels(GATEWAY, "gateway", gw.image)
        ports = [{"name": "http", "container_port": gw.listen_port, "protocol": "TCP"}]
        self._nginx(parent, GATEWAY, labels, config, namespace, ports, gw.replicas, gw.status_port, depends_on,
                    finish_s=math.ceil(gw.timeouts.read_s) + 5,
                    annotations=self._mesh.gateway_pod_annotations(gw.listen_port) if self._mesh else None)
        self._service_account(parent, GATEWAY, namespace, labels)
        service_spec: k8s.core.v1.ServiceSpecArgsDict = {
            "type": gw.service_type,
            "selector": self.selector(GATEWAY),
            "ports": [{"name": "http", "port": gw.publish.port, "target_port": "http", "protocol": "TCP"}],
        }
        if gw.service_type != "ClusterIP":
            # Keep the client's address: nginx's allow list, per-client rate limits and the NetworkPolicy's
            # source CIDRs all key on it, and a node-level SNAT would replace it with a node address.
            service_spec["external_traffic_policy"] = "Local"
        if gw.service_type == "LoadBalancer" and not _EVERYWHERE.issuperset(gw.allowed_sources):
            service_spec["load_balancer_source_ranges"] = [str(cidr) for cidr in gw.allowed_sources]
        service = k8s.core.v1.Service(f"{net}-gateway", metadata=self._metadata(GATEWAY, namespace, labels), spec=service_spec,
                                      opts=self._opts(parent))
        self._network_policies(parent, GATEWAY, namespace)
        internal = f"http://{kubernetes_service_host(self.spec, GATEWAY)}:{gw.publish.port}"
        endpoint: pulumi.Input[str] = internal
        if gw.service_type == "LoadBalancer" and not self.spec.kubernetes.render_yaml_to_directory:  # render-only: no status ever
            endpoint = service.status.apply(lambda status: _load_balancer_url(status, gw.publish.port) or internal)
        return {"endpoint": endpoint, "config_sha256": digest}

    def _service_account(self, parent: pulumi.Resource, name: str, namespace: pulumi.Input[str], labels: dict[str, str]) -> list[pulumi.Resource]:
        """Under a mesh, a workload's own ServiceAccount: its identity. No API token is mounted from it (the mesh
        projects its own token into its proxy)."""
        if self._mesh is None:
            return []
        return [k8s.core.v1.ServiceAccount(f"{self.spec.network.name}-{name}", metadata=self._metadata(name, namespace, labels),
                                           automount_service_account_token=False, opts=self._opts(parent))]

    def mesh(self, parent: pulumi.ComponentResource, edges: Sequence[Edge], network: dict[str, pulumi.Input[str]],
             depends_on: list[pulumi.Resource]) -> list[pulumi.Resource]:
        """The mesh's resources for the calls (`components/targets/mesh`), in the stack's namespace."""
        assert self._mesh is not None, "mesh() is only called under kubernetes.mesh linkerd or istio"
        inputs = MeshInputs(spec=self.spec, edges=edges, namespace=self.namespace, routed=routed_workloads(self.spec), gateway=GATEWAY,
                            host=lambda w: kubernetes_service_host(self.spec, w), selector=self.selector,
                            labels=lambda owner, component: self.labels(owner or self.spec.network.name, component))
        return [
            k8s.apiextensions.CustomResource(
                f"{self.spec.network.name}-{manifest['kind'].lower()}-{manifest['metadata']['name']}",
                api_version=manifest["apiVersion"],
                kind=manifest["kind"],
                metadata={**manifest["metadata"], "namespace": network["namespace"]},
                spec=manifest["spec"],
                opts=self._opts(parent, depends_on=depends_on),
            )
            for manifest in self._mesh.resources(inputs)
        ]

    def _nginx(self, parent: pulumi.ComponentResource, name: str, labels: dict[str, str], config: str, namespace: pulumi.Input[str],
               ports: list[Any], replicas: int, status_port: int, depends_on: list[pulumi.Resource], finish_s: int,
               annotations: dict[str, str] | None = None) -> list[pulumi.Resource]:
        """An nginx Deployment (the gateway's image, user and resources) running `config` from an immutable
        content-named ConfigMap, and its PodDisruptionBudget when it has more than one replica. `finish_s`: how long
        a request in flight may still take (its proxy's read timeout, and a margin)."""
        gw = self.spec.gateway
        net = self.spec.network.name
        digest = config_digest(config)
        config_map = k8s.core.v1.ConfigMap(
            f"{net}-{name}-nginx",
            metadata=self._metadata(config_map_name(config, name), namespace, labels),
            data={CONFIG_KEY: config},
            immutable=True,
            opts=self._opts(parent),
        )
        container: k8s.core.v1.ContainerArgsDict = {
            "name": "nginx",
            "image": gw.image,
            # The image's entrypoint scripts rewrite /etc/nginx; the command bypasses them and runs our config.
            # `-e stderr`: the compiled-in error log is opened before the config is read, on a read-only root.
            "command": ["nginx", "-e", "stderr", "-c", f"{CONFIG_DIR}/{CONFIG_KEY}", "-g", "daemon off;"],
            "ports": [*ports, {"name": "status", "container_port": status_port, "protocol": "TCP"}],
            "resources": _resources(gw.resources),
            **_probes({"http_get": {"path": "/healthz", "port": "status"}}, HealthCheck()),  # type: ignore[typeddict-item]
            "security_context": _container_security(read_only=True),
            "volume_mounts": [{"name": "config", "mount_path": CONFIG_DIR, "read_only": True}, {"name": "tmp", "mount_path": "/tmp"}],
        }
        volumes: list[k8s.core.v1.VolumeArgsDict] = [
            {"name": "config", "config_map": {"name": config_map.metadata.apply(lambda m: m.name or config_map_name(config, name)),
                                              "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}]}},
            {"name": "tmp", "empty_dir": {"size_limit": "256Mi"}},
        ]
        # The checksum in the pod template is what rolls the pods: a different config, a different template.
        template = self._pod_template(name, labels, gw.run_as_user, container, volumes, spread=replicas > 1,
                                      sysctls=port_sysctls([*(port["container_port"] for port in ports), status_port]),
                                      annotations={CONFIG_CHECKSUM: digest, **(annotations or {})}, finish_s=finish_s,
                                      graceful_stop="kill -QUIT 1; while kill -0 1 2>/dev/null; do sleep 1; done")
        resources: list[pulumi.Resource] = [config_map, k8s.apps.v1.Deployment(
            f"{net}-{name}",
            metadata=self._metadata(name, namespace, labels),
            spec=self._deployment_spec(name, replicas, template),
            # nginx resolves every upstream Service name when it starts: the Services must exist first.
            opts=self._opts(parent, depends_on=depends_on),
        )]
        if replicas > 1:
            resources.append(self._disruption_budget(parent, name, namespace, labels))
        return resources


def _load_balancer_url(status: k8s.core.v1.outputs.ServiceStatus | None, port: int) -> str | None:
    ingress = status.load_balancer.ingress if status and status.load_balancer else None
    if not ingress:
        return None
    host = ingress[0].ip or ingress[0].hostname
    return f"http://{host}:{port}" if host else None
