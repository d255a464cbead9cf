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
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s

from components.plan.addressing import AddressMap, kubernetes_address_map, kubernetes_namespace, kubernetes_service_host
from components.plan.graph import GATEWAY
from components.plan.report import config_digest
from components.render.nginx import NginxRuntime
from components.spec.schema import HealthCheck, Resources, Spec, Workload
from components.targets.network_policies import network_policies
from components.targets.probes import kubernetes_handler

CONFIG_KEY = "nginx.conf"
CONFIG_DIR = "/etc/netopt"
CONFIG_CHECKSUM = "netopt.io/config-sha256"
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_EVERYWHERE = {ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")}


def config_map_name(config: str) -> str:
    """Content-addressed: a new config is a new ConfigMap, so old pods keep the config they started with."""
    return f"{GATEWAY}-nginx-{config_digest(config)[:10]}"


def _image_version(image: str) -> str | None:
    tag = image.split("@", 1)[0].rsplit("/", 1)[-1].partition(":")[2]
    return tag if _LABEL_VALUE.match(tag) else None


def _ids(user: str) -> tuple[int, int]:
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


def _seconds(value: float) -> int:
    return max(1, math.ceil(value))


def _resources(resources: Resources) -> k8s.core.v1.ResourceRequirementsArgsDict:
    """requests = limits: Guaranteed QoS, and the capacity model's service rates hold on a busy node."""
    amount = {"cpu": f"{round(resources.cpu * 1000)}m", "memory": f"{resources.memory_mb}Mi"}
    return {"requests": amount, "limits": dict(amount)}


def _probes(handler: dict[str, Any], health: HealthCheck) -> tuple[k8s.core.v1.ProbeArgsDict, k8s.core.v1.ProbeArgsDict]:
    """Readiness takes a pod out of its Service after `retries` failed checks; liveness restarts it only after
    twice as many, so an overloaded pod is drained rather than killed."""
    readiness = cast(k8s.core.v1.ProbeArgsDict, {
        **handler,
        "period_seconds": _seconds(health.interval_s),
        "timeout_seconds": _seconds(health.timeout_s),
        "failure_threshold": health.retries,
        "success_threshold": 1,
    })
    liveness: k8s.core.v1.ProbeArgsDict = {**readiness, "failure_threshold": health.retries * 2, "initial_delay_seconds": _seconds(health.interval_s)}
    return readiness, liveness


def _workload_probes(workload: Workload) -> dict[str, k8s.core.v1.ProbeArgsDict]:
    """Readiness and liveness from the workload's health kind; none for kind none."""
    handler = kubernetes_handler(workload, workload.protocol)
    probe = workload.health_check()
    if handler is None or not isinstance(probe, HealthCheck):
        return {}
    readiness, liveness = _probes(handler, probe)
    return {"readiness_probe": readiness, "liveness_probe": liveness}


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


def _service_port(workload: Workload) -> k8s.core.v1.ServicePortArgsDict:
    port: k8s.core.v1.ServicePortArgsDict = {"name": workload.protocol, "port": workload.port, "target_port": workload.protocol, "protocol": "TCP"}
    if workload.protocol in _APP_PROTOCOL:
        port["app_protocol"] = _APP_PROTOCOL[workload.protocol]
    return port


def _pod_security(user: str) -> k8s.core.v1.PodSecurityContextArgsDict:
    uid, gid = _ids(user)
    return {"run_as_non_root": True, "run_as_user": uid, "run_as_group": gid, "fs_group": gid, "seccomp_profile": {"type": "RuntimeDefault"}}


def _container_security(read_only: bool) -> k8s.core.v1.SecurityContextArgsDict:
    return {
        "allow_privilege_escalation": False,
        "privileged": False,
        "read_only_root_filesystem": read_only,
        "run_as_non_root": True,
        "capabilities": {"drop": ["ALL"]},
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


class KubernetesTarget:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.namespace = kubernetes_namespace(spec)
        self._addresses = kubernetes_address_map(spec)
        self._provider: k8s.Provider | None = None
        self._policies = network_policies(spec, self.selector)

    def address_map(self) -> AddressMap:
        return self._addresses

    def nginx_runtime(self) -> NginxRuntime:
        return NginxRuntime()

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

    def _metadata(self, name: str, namespace: pulumi.Input[str], labels: dict[str, str]) -> k8s.meta.v1.ObjectMetaArgsDict:
        return {"name": name, "namespace": namespace, "labels": labels}

    def _opts(self, parent: pulumi.Resource, depends_on: list[pulumi.Resource] | None = None) -> pulumi.ResourceOptions:
        assert self._provider is not None, "network() creates the provider before any other resource"
        return pulumi.ResourceOptions(parent=parent, provider=self._provider, depends_on=depends_on)

    def _pod_template(self, name: str, labels: dict[str, str], user: str, container: k8s.core.v1.ContainerArgsDict,
                      volumes: list[k8s.core.v1.VolumeArgsDict], spread: bool,
                      annotations: dict[str, str] | None = None, finish_s: int = 30,
                      graceful_stop: str | None = None) -> k8s.core.v1.PodTemplateSpecArgsDict:
        """`finish_s`: how long a request in flight may still take once the pod stops; `graceful_stop`: a shell
        command that makes the process finish its requests and exit (run after the drain, before SIGTERM)."""
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
            "security_context": _pod_security(user),
            "termination_grace_period_seconds": drain + finish_s,
            "containers": [container],
            "volumes": volumes,
        }
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
        """Per-pod storage: one PersistentVolumeClaim per persistent volume and pod, kept when pods or the set go away."""
        spec: k8s.apps.v1.StatefulSetSpecArgsDict = {
            "selector": {"match_labels": self.selector(workload.name)},
            "service_name": workload.name,
            # One pod at a time, each Ready before the next: a stateful replica is never replaced alongside its peers.
            "update_strategy": {"type": "RollingUpdate", "rolling_update": {"max_unavailable": 1}},
            "revision_history_limit": 5,
            "persistent_volume_claim_retention_policy": {"when_deleted": "Retain", "when_scaled": "Retain"},
            "template": template,
            "volume_claim_templates": [{
                "metadata": {"name": v.name, "labels": self.selector(workload.name)},
                "spec": {"access_modes": ["ReadWriteOnce"], "resources": {"requests": {"storage": f"{v.size_mb}Mi"}}},
            } for v in workload.volumes if v.kind == "persistent"],
        }
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
        namespace = k8s.core.v1.Namespace(f"{net}-namespace", metadata={"name": self.namespace, "labels": labels}, opts=self._opts(parent))
        name = namespace.metadata.apply(lambda m: m.name or self.namespace)
        self._network_policies(parent, "", name)
        return {"namespace": name}

    def workload(self, parent: pulumi.ComponentResource, workload: Workload, network: dict[str, pulumi.Input[str]]) -> list[pulumi.Resource]:
        net = self.spec.network.name
        namespace = network["namespace"]
        labels = self.labels(workload.name, "backend", workload.image)
        scaling = self.spec.kubernetes.autoscaling.get(workload.name)
        env = {k: v for k, v in workload.env.items() if k != "NETOPT_REPLICA"} | {"PORT": str(workload.port)}
        env_vars: list[k8s.core.v1.EnvVarArgsDict] = [{"name": k, "value": v} for k, v in sorted(env.items())]
        env_vars.append({"name": "NETOPT_REPLICA", "value_from": {"field_ref": {"field_path": "metadata.name"}}})
        container: k8s.core.v1.ContainerArgsDict = {
            "name": workload.name,
            "image": workload.image,
            "ports": [{"name": workload.protocol, "container_port": workload.port, "protocol": "TCP"}],
            "env": env_vars,
            "resources": _resources(workload.resources),
            **_workload_probes(workload),  # type: ignore[typeddict-item]
            "security_context": _container_security(workload.read_only_root_fs),
            "volume_mounts": [{"name": "tmp", "mount_path": "/tmp"}, *({"name": v.name, "mount_path": v.path} for v in workload.volumes)],
            **_process(workload),
        }
        volumes: list[k8s.core.v1.VolumeArgsDict] = [{"name": "tmp", "empty_dir": {"size_limit": "64Mi"}}]
        volumes += [{"name": v.name, "empty_dir": {"size_limit": f"{v.size_mb}Mi"}} for v in workload.volumes if v.kind == "scratch"]
        template = self._pod_template(workload.name, labels, self.spec.workload_user(workload), container, volumes,
                                      spread=self.spec.max_replicas(workload.name) > 1)
        replicas = None if scaling else workload.replicas
        metadata = self._metadata(workload.name, namespace, labels)
        resources: list[pulumi.Resource] = [
            k8s.apps.v1.StatefulSet(f"{net}-{workload.name}", metadata=metadata, spec=self._stateful_set_spec(workload, replicas, template),
                                    opts=self._opts(parent))
            if workload.persistent() else
            k8s.apps.v1.Deployment(f"{net}-{workload.name}", metadata=metadata, spec=self._deployment_spec(workload.name, replicas, template),
                                   opts=self._opts(parent)),
            k8s.core.v1.Service(
                f"{net}-{workload.name}",
                metadata=self._metadata(workload.name, namespace, labels),
                spec={
                    "type": "ClusterIP",
                    "selector": self.selector(workload.name),
                    "ports": [_service_port(workload)],
                    "session_affinity": "None",
                },
                opts=self._opts(parent),
            ),
        ]
        resources += self._network_policies(parent, workload.name, namespace)
        if workload.replicas > 1:
            resources.append(self._disruption_budget(parent, workload.name, namespace, labels))
        if scaling:
            resources.append(k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{net}-{workload.name}",
                metadata=self._metadata(workload.name, namespace, labels),
                spec={
                    "scale_target_ref": {"api_version": "apps/v1", "kind": "StatefulSet" if workload.persistent() else "Deployment",
                                         "name": workload.name},
                    "min_replicas": workload.replicas,
                    "max_replicas": scaling.max_replicas,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                        "type": "Utilization", "average_utilization": scaling.cpu_utilization_percent}}}],
                },
                opts=self._opts(parent),
            ))
        return resources

    def gateway(self, parent: pulumi.ComponentResource, config: str, network: dict[str, pulumi.Input[str]],
                depends_on: list[pulumi.Resource]) -> dict[str, pulumi.Input[str]]:
        gw = self.spec.gateway
        net = self.spec.network.name
        namespace = network["namespace"]
        digest = config_digest(config)
        labels = self.labels(GATEWAY, "gateway", gw.image)
        config_map = k8s.core.v1.ConfigMap(
            f"{net}-gateway-nginx",
            metadata=self._metadata(config_map_name(config), namespace, labels),
            data={CONFIG_KEY: config},
            immutable=True,
            opts=self._opts(parent),
        )
        readiness, liveness = _probes({"http_get": {"path": "/healthz", "port": "status"}}, HealthCheck())
        container: k8s.core.v1.ContainerArgsDict = {
            "name": "nginx",
            "image": gw.image,
            # The image's entrypoint scripts rewrite /etc/nginx; the command bypasses them and runs our config.
            # `-e stderr`: the compiled-in error log is opened before the config is read, on a read-only root.
            "command": ["nginx", "-e", "stderr", "-c", f"{CONFIG_DIR}/{CONFIG_KEY}", "-g", "daemon off;"],
            "ports": [{"name": "http", "container_port": gw.listen_port, "protocol": "TCP"},
                      {"name": "status", "container_port": gw.status_port, "protocol": "TCP"}],
            "resources": _resources(gw.resources),
            "readiness_probe": readiness,
            "liveness_probe": liveness,
            "security_context": _container_security(read_only=True),
            "volume_mounts": [{"name": "config", "mount_path": CONFIG_DIR, "read_only": True}, {"name": "tmp", "mount_path": "/tmp"}],
        }
        volumes: list[k8s.core.v1.VolumeArgsDict] = [
            {"name": "config", "config_map": {"name": config_map.metadata.apply(lambda m: m.name or config_map_name(config)),
                                              "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}]}},
            {"name": "tmp", "empty_dir": {"size_limit": "256Mi"}},
        ]
        # The checksum in the pod template is what rolls the pods: a different config, a different template.
        template = self._pod_template(GATEWAY, labels, gw.run_as_user, container, volumes, spread=gw.replicas > 1,
                                      annotations={CONFIG_CHECKSUM: digest}, finish_s=math.ceil(gw.timeouts.read_s) + 5,
                                      graceful_stop="kill -QUIT 1; while kill -0 1 2>/dev/null; do sleep 1; done")
        k8s.apps.v1.Deployment(
            f"{net}-gateway",
            metadata=self._metadata(GATEWAY, namespace, labels),
            spec=self._deployment_spec(GATEWAY, gw.replicas, template),
            # nginx resolves every workload's Service name when it starts: the Services must exist first.
            opts=self._opts(parent, depends_on=depends_on),
        )
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
        if gw.replicas > 1:
            self._disruption_budget(parent, GATEWAY, namespace, labels)
        internal = f"http://{kubernetes_service_host(self.spec, GATEWAY)}:{gw.publish.port}"
        endpoint: pulumi.Input[str] = internal
        if gw.service_type == "LoadBalancer" and not self.spec.kubernetes.render_yaml_to_directory:  # render-only: no status ever
            endpoint = service.status.apply(lambda status: _load_balancer_url(status, gw.publish.port) or internal)
        return {"endpoint": endpoint, "config_sha256": digest}


def _load_balancer_url(status: k8s.core.v1.outputs.ServiceStatus | None, port: int) -> str | None:
    ingress = status.load_balancer.ingress if status and status.load_balancer else None
    if not ingress:
        return None
    host = ingress[0].ip or ingress[0].hostname
    return f"http://{host}:{port}" if host else None
