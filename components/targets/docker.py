"""Docker target (pulumi-docker): one internal network per flow of the service graph, an edge network for the gateway.

Every flow (the gateway to a routed workload, a caller to its callee) is an internal network joined by its two
ends only (components/plan/docker_links.py), so workloads without a declared call between them share no network.
Every backend replica is one hardened container with fixed addresses and, on the links into it, its workload's
name as DNS alias; a workload on no link runs with no network at all. The gateway is the only container that
publishes a port. Containers keep fixed names and
addresses, so they are replaced delete-first; a workload's replicas are chained (each waits for the previous
one to be healthy and back in the gateway's rotation), so a change rolls them one at a time. The gateway is
created with its nginx.conf uploaded; later config changes do not touch the container: a pulumi-command
Command delivers the new config to the running gateway, checks it there with `nginx -t` and reloads gracefully
(components/targets/gateway_reload.sh).
"""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_docker as docker

from components.plan.addressing import AddressMap, docker_address_map
from components.plan.docker_links import Link, links
from components.plan.graph import GATEWAY
from components.render.nginx import NginxRuntime
from components.spec.schema import HealthCheck, Spec, Workload
from components.targets.probes import docker_test

_HARDENING: dict[str, Any] = {
    "capabilities": docker.ContainerCapabilitiesArgs(drops=["ALL"]),
    "security_opts": ["no-new-privileges:true"],
    "restart": "unless-stopped",
    "tmpfs": {"/tmp": "rw,noexec,nosuid,size=64m"},
}


RELOAD_SCRIPT = (Path(__file__).with_name("gateway_reload.sh")).read_text()


def _duration(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms"


def _labels(spec: Spec, **extra: str) -> list[docker.ContainerLabelArgs]:
    values = {"netopt.environment": spec.environment, "netopt.network": spec.network.name, **extra}
    return [docker.ContainerLabelArgs(label=k, value=v) for k, v in sorted(values.items())]


def _healthcheck(command: list[str], health: HealthCheck) -> docker.ContainerHealthcheckArgs:
    return docker.ContainerHealthcheckArgs(
        tests=command,
        interval=_duration(health.interval_s),
        timeout=_duration(health.timeout_s),
        retries=health.retries,
        start_period=_duration(health.interval_s),
    )


def _wait_timeout(health: HealthCheck) -> int:
    """How long `pulumi up` waits for a new container to turn healthy: Docker's first probe runs one interval
    after the start, and a slow start may need every retry."""
    return int(health.interval_s * (health.retries + 2) + health.timeout_s * health.retries) + 30


def _docker_host_env() -> dict[str, str] | None:
    """The Docker host the docker provider talks to (provider config `docker:host`, else DOCKER_HOST as the
    provider itself falls back to), so the gateway's reload command reaches the same daemon."""
    host = pulumi.Config("docker").get("host")
    return {"DOCKER_HOST": host} if host else None


def _process(workload: Workload) -> dict[str, Any]:
    """`command` replaces the image's ENTRYPOINT, `args` its CMD (Docker's names: entrypoints, command)."""
    process: dict[str, Any] = {}
    if workload.command is not None:
        process["entrypoints"] = list(workload.command)
    if workload.args is not None:
        process["command"] = list(workload.args)
    return process


def _ipam(subnet: ipaddress.IPv4Network) -> list[docker.NetworkIpamConfigArgs]:
    return [docker.NetworkIpamConfigArgs(subnet=str(subnet), gateway=str(subnet.network_address + 1))]


class DockerTarget:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self._links = links(spec)
        # The links into and out of each workload (and the gateway), in link order: a replica looks up its own
        # instead of scanning every link, which made a stack's registration quadratic in its workloads.
        self._into: dict[str, list[Link]] = {}
        self._out: dict[str, list[Link]] = {}
        for link in self._links:
            self._into.setdefault(link.flow.destination, []).append(link)
            self._out.setdefault(link.flow.source, []).append(link)
        self._addresses = docker_address_map(spec)

    def address_map(self) -> AddressMap:
        return self._addresses

    def nginx_runtime(self) -> NginxRuntime:
        return NginxRuntime()

    def network(self, parent: pulumi.ComponentResource) -> dict[str, pulumi.Input[str]]:
        """The edge network (key "edge") and every link, keyed by its name."""
        net = self.spec.network
        opts = pulumi.ResourceOptions(parent=parent)
        names: dict[str, pulumi.Input[str]] = {link.name: self._link_network(link, opts).name for link in self._links}
        edge = docker.Network(
            f"{net.name}-edge",
            name=f"{net.name}-edge",
            driver="bridge",
            internal=False,
            ipam_configs=_ipam(net.edge_subnet) if net.edge_subnet else None,
            opts=opts,
        )
        return {**names, "edge": edge.name}

    def _link_network(self, link: Link, opts: pulumi.ResourceOptions) -> docker.Network:
        flow = link.flow
        return docker.Network(
            link.name,
            name=link.name,
            driver="bridge",
            internal=True,
            ipam_configs=_ipam(link.subnet),
            labels=[docker.NetworkLabelArgs(label=k, value=v) for k, v in
                    (("netopt.network", self.spec.network.name), ("netopt.source", flow.source), ("netopt.destination", flow.destination))],
            opts=opts,
        )

    def _replica_networks(self, workload: str, replica: int, network: dict[str, pulumi.Input[str]]) -> dict[str, Any]:
        """The links a replica joins: those into its workload (as the alias callers resolve), then those out of it."""
        into = [docker.ContainerNetworksAdvancedArgs(name=network[link.name], aliases=[workload], ipv4_address=link.server_ips[replica])
                for link in self._into.get(workload, [])]
        out = [docker.ContainerNetworksAdvancedArgs(name=network[link.name], ipv4_address=link.client_ips[replica])
               for link in self._out.get(workload, [])]
        return {"networks_advanced": into + out} if into or out else {"network_mode": "none"}

    def workload(self, parent: pulumi.ComponentResource, workload: Workload, network: dict[str, pulumi.Input[str]]) -> list[pulumi.Resource]:
        probe = docker_test(workload)
        timing = workload.health_check()
        health = timing if isinstance(timing, HealthCheck) else HealthCheck()
        containers: list[pulumi.Resource] = []
        previous: pulumi.Resource | None = None
        scratch = {v.path: f"rw,noexec,nosuid,size={v.size_mb}m" for v in workload.volumes if v.kind == "scratch"}
        for replica in range(workload.replicas):
            name = f"{self.spec.network.name}-{workload.name}-{replica}"
            volumes = [docker.ContainerVolumeArgs(container_path=v.path, volume_name=docker.Volume(
                f"{name}-{v.name}", name=f"{name}-{v.name}", labels=[docker.VolumeLabelArgs(label="netopt.workload", value=workload.name)],
                opts=pulumi.ResourceOptions(parent=parent, retain_on_delete=True)).name) for v in workload.volumes if v.kind == "persistent"]
            env = {**workload.env, "PORT": str(workload.port), "NETOPT_REPLICA": f"{workload.name}-{replica}"}
            container = docker.Container(
                name,
                name=name,
                image=workload.image,
                hostname=name,
                memory=workload.resources.memory_mb,
                cpus=f"{workload.resources.cpu:g}",
                read_only=workload.read_only_root_fs,
                user=self.spec.workload_user(workload),  # never the image's own user (possibly root), as on kubernetes
                envs=[f"{k}={v}" for k, v in sorted(env.items())],
                labels=_labels(self.spec, **{"netopt.workload": workload.name, "netopt.replica": str(replica)}),
                healthcheck=_healthcheck(probe, health),
                wait=True,
                wait_timeout=_wait_timeout(health),
                **self._replica_networks(workload.name, replica, network),
                **_process(workload),
                volumes=volumes or None,
                **{**_HARDENING, "tmpfs": {**_HARDENING["tmpfs"], **scratch}},
                opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=True, depends_on=[previous] if previous else None),
            )
            containers.append(container)
            previous = container
            if replica < workload.replicas - 1:
                previous = self._settle(parent, name, container)
                containers.append(previous)
        return containers

    def _settle(self, parent: pulumi.ComponentResource, name: str, container: docker.Container) -> command.local.Command:
        """The pause after a replica is (re)created and healthy, before the next one may go: the gateway marked
        the replica down while it was away (passive health) and sends it requests again only after
        `fail_timeout_s`. Replaced with its replica (`triggers`), so it runs on every roll."""
        pause = self.spec.gateway.passive_health.fail_timeout_s
        return command.local.Command(
            f"{name}-settle",
            create=f"sleep {pause:g}",
            triggers=[container.id],
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[container]),
        )

    def gateway(self, parent: pulumi.ComponentResource, config: str, network: dict[str, pulumi.Input[str]],
                depends_on: list[pulumi.Resource]) -> dict[str, pulumi.Input[str]]:
        gw = self.spec.gateway
        digest = hashlib.sha256(config.encode()).hexdigest()
        name = f"{self.spec.network.name}-gateway"
        probe = gw.health_command or ["CMD", "curl", "-fsS", "-o", "/dev/null", f"http://127.0.0.1:{gw.status_port}/healthz"]
        container = docker.Container(
            name,
            name=name,
            image=gw.image,
            hostname=name,
            user=gw.run_as_user,
            command=["nginx", "-c", "/etc/nginx/nginx.conf", "-g", "daemon off;"],
            memory=gw.resources.memory_mb,
            cpus=f"{gw.resources.cpu:g}",
            # Docker refuses file uploads into a read-only root filesystem, so the gateway's stays writable;
            # it runs as a non-root user with no capabilities and writes only to its tmpfs.
            read_only=False,
            # The config the container starts with; later configs are reloaded in place (below), so a config
            # change never replaces the container.
            uploads=[docker.ContainerUploadArgs(file="/etc/nginx/nginx.conf", content=config)],
            labels=_labels(self.spec, **{"netopt.role": "gateway"}),
            healthcheck=_healthcheck(probe, HealthCheck()),
            wait=True,
            wait_timeout=_wait_timeout(HealthCheck()),
            networks_advanced=[  # edge first: Docker publishes ports through a non-internal network
                docker.ContainerNetworksAdvancedArgs(name=network["edge"]),
                *(docker.ContainerNetworksAdvancedArgs(name=network[link.name], ipv4_address=link.client_ips[0])
                  for link in self._out.get(GATEWAY, [])),
            ],
            ports=[docker.ContainerPortArgs(internal=gw.listen_port, external=gw.publish.port, ip=str(gw.publish.address), protocol="tcp")],
            **_HARDENING,
            opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=True, depends_on=depends_on, ignore_changes=["uploads"]),
        )
        # Runs again (in place) whenever the config changes, and anew on a new gateway container (`triggers`).
        # After every backend, so a route never points at a replica that does not exist yet.
        command.local.Command(
            f"{name}-config",
            create=RELOAD_SCRIPT,
            stdin=config,
            environment={"NETOPT_GATEWAY": name, **(_docker_host_env() or {})},
            triggers=[container.id],
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[container, *depends_on]),
        )
        return {"endpoint": f"http://{gw.publish.address}:{gw.publish.port}", "config_sha256": digest}
