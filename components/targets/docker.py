"""Docker target (pulumi-docker): an internal network for backends, an edge network for the gateway.

Every backend replica is one hardened container with a fixed address from the internal subnet and a DNS alias
per workload; the gateway is the only container that publishes a port. Containers keep fixed names and
addresses, so they are replaced delete-first, and a config change replaces the gateway (its uploaded
nginx.conf is part of its identity, and its hash is a label).
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

import pulumi
import pulumi_docker as docker

from components.addressing import AddressMap, docker_address_map, docker_replica_ips, gateway_address
from components.balancing import expected_shares
from components.nginx import NginxRuntime
from components.spec import HealthCheck, Spec, Workload

_HARDENING: dict[str, Any] = {
    "capabilities": docker.ContainerCapabilitiesArgs(drops=["ALL"]),
    "security_opts": ["no-new-privileges:true"],
    "restart": "unless-stopped",
    "tmpfs": {"/tmp": "rw,noexec,nosuid,size=64m"},
}


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


def _ipam(subnet: ipaddress.IPv4Network) -> list[docker.NetworkIpamConfigArgs]:
    return [docker.NetworkIpamConfigArgs(subnet=str(subnet), gateway=str(subnet.network_address + 1))]


class DockerTarget:
    balancing = "gateway"
    shares = staticmethod(expected_shares)

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self._ips = docker_replica_ips(spec)
        self._addresses = docker_address_map(spec)

    def address_map(self) -> AddressMap:
        return self._addresses

    def nginx_runtime(self) -> NginxRuntime:
        return NginxRuntime()

    def network(self, parent: pulumi.ComponentResource) -> dict[str, pulumi.Input[str]]:
        net = self.spec.network
        assert net.subnet is not None
        opts = pulumi.ResourceOptions(parent=parent)
        internal = docker.Network(
            f"{net.name}-internal",
            name=f"{net.name}-internal",
            driver="bridge",
            internal=True,
            ipam_configs=_ipam(net.subnet),
            opts=opts,
        )
        edge = docker.Network(
            f"{net.name}-edge",
            name=f"{net.name}-edge",
            driver="bridge",
            internal=False,
            ipam_configs=_ipam(net.edge_subnet) if net.edge_subnet else None,
            opts=opts,
        )
        return {"internal": internal.name, "edge": edge.name}

    def workload(self, parent: pulumi.ComponentResource, workload: Workload, network: dict[str, pulumi.Input[str]]) -> list[pulumi.Resource]:
        ips = self._ips[workload.name]
        probe = workload.health.command or ["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{workload.port}{workload.health.path}"]
        containers: list[pulumi.Resource] = []
        for replica, ip in enumerate(ips):
            name = f"{self.spec.network.name}-{workload.name}-{replica}"
            env = {**workload.env, "PORT": str(workload.port), "NETOPT_REPLICA": f"{workload.name}-{replica}"}
            containers.append(docker.Container(
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
                healthcheck=_healthcheck(probe, workload.health),
                networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=network["internal"], aliases=[workload.name], ipv4_address=ip)],
                **_HARDENING,
                opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=True),
            ))
        return containers

    def gateway(self, parent: pulumi.ComponentResource, config: str, network: dict[str, pulumi.Input[str]],
                depends_on: list[pulumi.Resource]) -> dict[str, pulumi.Input[str]]:
        gw = self.spec.gateway
        assert self.spec.network.subnet is not None
        digest = hashlib.sha256(config.encode()).hexdigest()
        name = f"{self.spec.network.name}-gateway"
        probe = gw.health_command or ["CMD", "curl", "-fsS", "-o", "/dev/null", f"http://127.0.0.1:{gw.status_port}/healthz"]
        docker.Container(
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
            uploads=[docker.ContainerUploadArgs(file="/etc/nginx/nginx.conf", content=config)],
            labels=_labels(self.spec, **{"netopt.role": "gateway", "netopt.config-sha256": digest}),
            healthcheck=_healthcheck(probe, HealthCheck()),
            networks_advanced=[  # edge first: Docker publishes ports through a non-internal network
                docker.ContainerNetworksAdvancedArgs(name=network["edge"]),
                docker.ContainerNetworksAdvancedArgs(name=network["internal"], ipv4_address=gateway_address(self.spec.network.subnet)),
            ],
            ports=[docker.ContainerPortArgs(internal=gw.listen_port, external=gw.publish.port, ip=str(gw.publish.address), protocol="tcp")],
            **_HARDENING,
            opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=True, depends_on=depends_on),
        )
        return {"endpoint": f"http://{gw.publish.address}:{gw.publish.port}", "config_sha256": digest}
