"""Docker target (pulumi-docker): one internal network per hop of the service graph, an edge network for the gateway.

Every hop (the gateway to a routed workload, a caller to its callee's service proxy, a service proxy to the
replicas it balances) is an internal network joined by its two ends only (components/plan/docker_links.py), so
workloads without a declared call between them share no network and a callee cannot reach its callers. Every
backend replica is one hardened container with fixed addresses and, on the links where it listens, its workload's
name as DNS alias; a workload on no link runs with no network at all. Each called workload has a service proxy
container (nginx, the gateway's image) that answers to the workload's name on its callers' links. The gateway is
the only container that publishes a port. Containers keep fixed names and addresses, so they are replaced
delete-first; a workload's replicas are chained (each waits for the previous one to be healthy and back in
rotation), so a change rolls them one at a time. The gateway and every service proxy are created with their
nginx.conf uploaded; later config changes do not touch the container: a pulumi-command Command delivers the new
config to the running proxy, checks it there with `nginx -t` and reloads gracefully
(components/targets/proxy_reload.sh).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_docker as docker

from components.plan.addressing import AddressMap, docker_address_map, docker_caller_addresses, docker_gateway_address, docker_serve_map
from components.plan.docker_links import Link, links
from components.plan.graph import GATEWAY, proxy_name
from components.plan.ir import Proxy
from components.plan.report import config_digest
from components.render.nginx import render_bootstrap
from components.render.runtime import NginxRuntime
from components.spec.runtime import uid_gid
from components.spec.schema import HealthCheck, Resources, Spec, Workload
from components.targets.nginx_image import stream_modules
from components.targets.privileges import listen_ports, port_sysctls
from components.targets.probes import docker_test

_HARDENING: dict[str, Any] = {
    "capabilities": docker.ContainerCapabilitiesArgs(drops=["ALL"]),
    "security_opts": ["no-new-privileges:true"],
    "restart": "unless-stopped",
    "tmpfs": {"/tmp": "rw,noexec,nosuid,size=64m"},
}


RELOAD_SCRIPT = (Path(__file__).with_name("proxy_reload.sh")).read_text()


def _duration(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms"


def _labels(spec: Spec, **extra: str) -> list[docker.ContainerLabelArgs]:
    values = {"netopt.environment": spec.environment, "netopt.network": spec.network.name, **extra}
    return [docker.ContainerLabelArgs(label=k, value=v) for k, v in sorted(values.items())]


def _start_period(health: HealthCheck) -> float:
    """Docker's grace before failed checks count: the initial delay plus a slow starter's start period (Kubernetes
    waits the one, then gives the startupProbe the other); one probe interval when neither is declared."""
    if health.initial_delay_s is None and health.start_period_s is None:
        return health.period
    return (health.initial_delay_s or 0) + (health.start_period_s or 0)


def _healthcheck(command: list[str], health: HealthCheck) -> docker.ContainerHealthcheckArgs:
    return docker.ContainerHealthcheckArgs(
        tests=command,
        interval=_duration(health.period),
        timeout=_duration(health.timeout_s),
        retries=health.failures,
        start_period=_duration(_start_period(health)),
    )


def _wait_timeout(health: HealthCheck) -> int:
    """How long `pulumi up` waits for a new container to turn healthy: Docker's first probe runs one interval
    after the start, a slow starter may use its whole start period, and a slow start may need every retry."""
    return int(_start_period(health) + health.period * (health.failures + 1) + health.timeout_s * health.failures) + 30


def _waiting(probe: object) -> dict[str, Any]:
    """`pulumi up` waits for a new container to turn healthy, which one without a probe (health kind none) never
    reports: the provider then waits for it to run only."""
    return {"wait": True, "wait_timeout": _wait_timeout(probe)} if isinstance(probe, HealthCheck) else {}


def _requests(resources: Resources) -> dict[str, Any]:
    """Declared requests as Docker states them: a CPU weight (1024 per CPU, as the kubelet derives its cgroup's) and a
    memory soft limit. Without requests Docker keeps its defaults (weight 1024, no reservation)."""
    requests: dict[str, Any] = {}
    if resources.requests.cpu is not None:
        requests["cpu_shares"] = max(2, round(resources.requests.cpu * 1024))  # the kernel's smallest weight is 2
    if resources.requests.memory_mb is not None:
        requests["memory_reservation"] = resources.requests.memory_mb
    return requests


def _capabilities(add: list[str]) -> docker.ContainerCapabilitiesArgs:
    """Drop ALL, then add back what the workload declares (for a non-root user Docker puts them in the bounding set)."""
    return docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=list(add) or None)


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
        # The links where each end (a workload, the gateway, a proxy) listens and where it connects, in link order: a
        # replica looks up its own instead of scanning every link, which made registration quadratic in workloads.
        self._listening: dict[str, list[Link]] = {}
        self._connecting: dict[str, list[Link]] = {}
        for link in self._links:
            self._listening.setdefault(link.server, []).append(link)
            self._connecting.setdefault(link.client, []).append(link)
        self._addresses = docker_address_map(spec)
        self._served = docker_serve_map(spec)

    def address_map(self, proxy: Proxy | None = None) -> AddressMap:
        """The gateway reaches replicas on their ingress links, a service proxy on their serve links."""
        return self._addresses if proxy is None or proxy.kind == "gateway" else self._served

    def nginx_runtime(self, proxy: Proxy) -> NginxRuntime:
        """The gateway listens on its edge address only, a service proxy on its addresses on its callers' links only,
        and both answer health checks on loopback (Docker runs them inside the container): no backend can open a
        connection to a proxy over a network where the proxy only connects."""
        if proxy.kind == "gateway":
            return NginxRuntime(listen_address=docker_gateway_address(self.spec), status_address="127.0.0.1")
        assert proxy.workload is not None
        return NginxRuntime(caller_addresses=docker_caller_addresses(self.spec, proxy.workload), status_address="127.0.0.1",
                            stream_modules=stream_modules(self.spec))

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
        return docker.Network(
            link.name,
            name=link.name,
            driver="bridge",
            internal=True,
            ipam_configs=_ipam(link.subnet),
            labels=[docker.NetworkLabelArgs(label=k, value=v) for k, v in
                    (("netopt.network", self.spec.network.name), ("netopt.kind", link.kind), ("netopt.source", link.client),
                     ("netopt.destination", link.server))],
            opts=opts,
        )

    def _endpoint_networks(self, end: str, member: int, network: dict[str, pulumi.Input[str]]) -> list[docker.ContainerNetworksAdvancedArgs]:
        """The links one member of `end` (a workload's replica, the gateway, a proxy) joins: those where it listens,
        with the link's alias, then those where it connects."""
        listens = [docker.ContainerNetworksAdvancedArgs(name=network[link.name], aliases=[link.alias], ipv4_address=link.server_ips[member])
                   for link in self._listening.get(end, [])]
        connects = [docker.ContainerNetworksAdvancedArgs(name=network[link.name], ipv4_address=link.client_ips[member])
                    for link in self._connecting.get(end, [])]
        return listens + connects

    def _replica_networks(self, workload: str, replica: int, network: dict[str, pulumi.Input[str]]) -> dict[str, Any]:
        joined = self._endpoint_networks(workload, replica, network)
        return {"networks_advanced": joined} if joined else {"network_mode": "none"}

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
            port = {"PORT": str(workload.port)} if workload.port is not None else {}
            env = {**workload.env, **port, "NETOPT_REPLICA": f"{workload.name}-{replica}"}
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
                **_waiting(timing),
                **self._replica_networks(workload.name, replica, network),
                **_process(workload),
                **_requests(workload.resources),
                volumes=volumes or None,
                sysctls=port_sysctls(listen_ports(workload)) or None,
                **{**_HARDENING, "tmpfs": {**_HARDENING["tmpfs"], **scratch}, "restart": workload.restart,
                   "capabilities": _capabilities(workload.capabilities.add)},
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

    def gateway(self, parent: pulumi.ComponentResource, proxy: Proxy, config: str, network: dict[str, pulumi.Input[str]],
                depends_on: list[pulumi.Resource]) -> dict[str, pulumi.Input[str]]:
        gw = self.spec.gateway
        edge = docker_gateway_address(self.spec)
        # Edge first: Docker publishes ports through a non-internal network.
        joined = [docker.ContainerNetworksAdvancedArgs(name=network["edge"], ipv4_address=edge), *self._endpoint_networks(GATEWAY, 0, network)]
        ports = [docker.ContainerPortArgs(internal=gw.listen_port, external=gw.publish.port, ip=str(gw.publish.address), protocol="tcp")]
        self._nginx(parent, f"{self.spec.network.name}-gateway", "gateway", {}, proxy, [gw.listen_port, gw.status_port], config,
                    joined, depends_on, ports)
        return {"endpoint": f"http://{gw.publish.address}:{gw.publish.port}", "config_sha256": config_digest(config)}

    def service_proxy(self, parent: pulumi.ComponentResource, proxy: Proxy, config: str, network: dict[str, pulumi.Input[str]],
                      depends_on: list[pulumi.Resource]) -> list[pulumi.Resource]:
        """The service proxy of a called workload: on its callers' links, where it answers to the workload's name, and on
        the serve links of the replicas it balances, where it only connects. It publishes nothing."""
        assert proxy.workload is not None
        name = f"{self.spec.network.name}-{proxy.name}"
        joined = self._endpoint_networks(proxy_name(proxy.workload), 0, network)
        labels = {"netopt.proxy": proxy.name, "netopt.fronts": proxy.workload}
        return self._nginx(parent, name, "service-proxy", labels, proxy, proxy.ports, config, joined, depends_on, [])

    def _nginx(self, parent: pulumi.ComponentResource, name: str, role: str, labels: dict[str, str], proxy: Proxy,
               listening: list[int], config: str, networks: list[docker.ContainerNetworksAdvancedArgs], depends_on: list[pulumi.Resource],
               ports: list[docker.ContainerPortArgs]) -> list[pulumi.Resource]:
        """One nginx container (the gateway's image, user and resources) started on its bootstrap config (the status
        server alone: `render_bootstrap`), and the Command that delivers and reloads its config — on creation and on
        every change; `listening`: the ports it binds (a port below 1024 gets the unprivileged-port sysctl)."""
        gw = self.spec.gateway
        probe = gw.health_command or ["CMD", "curl", "-fsS", "-o", "/dev/null", f"http://127.0.0.1:{proxy.status_port}/healthz"]
        container = docker.Container(
            name,
            name=name,
            image=gw.image,
            hostname=name,
            user=uid_gid(gw.run_as_user),
            command=["nginx", "-c", "/etc/nginx/nginx.conf", "-g", "daemon off;"],
            memory=gw.resources.memory_mb,
            cpus=f"{gw.resources.cpu:g}",
            # Docker refuses file uploads into a read-only root filesystem, so the proxy's stays writable;
            # it runs as a non-root user with no capabilities and writes only to its tmpfs.
            read_only=False,
            # What the container starts with: the same bootstrap whatever the routes, so a config change never touches
            # the container (no ignore_changes, which would show the policy pack a stale config); the Command below
            # delivers the config it runs.
            uploads=[docker.ContainerUploadArgs(file="/etc/nginx/nginx.conf", content=render_bootstrap(proxy, self.nginx_runtime(proxy)))],
            labels=_labels(self.spec, **{"netopt.role": role, **labels}),
            healthcheck=_healthcheck(probe, HealthCheck()),
            wait=True,
            wait_timeout=_wait_timeout(HealthCheck()),
            networks_advanced=networks,
            ports=ports or None,
            sysctls=port_sysctls(listening) or None,
            **_requests(gw.resources),
            **_HARDENING,
            opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=True, depends_on=depends_on),
        )
        # Runs again (in place) whenever the config changes, and anew on a new container (`triggers`).
        # After every backend, so a route never points at a replica that does not exist yet.
        reload = command.local.Command(
            f"{name}-config",
            create=RELOAD_SCRIPT,
            stdin=config,
            environment={"NETOPT_PROXY": name, **(_docker_host_env() or {})},
            triggers=[container.id],
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[container, *depends_on]),
        )
        return [container, reload]
