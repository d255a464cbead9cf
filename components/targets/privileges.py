"""What a non-root container needs from the kernel to serve its ports, stated the same way on both targets.

A process that is not root binds a port below `net.ipv4.ip_unprivileged_port_start` (1024 by default) only with
CAP_NET_BIND_SERVICE in its effective set, which a non-root process never gets from the runtime: Docker gives a
non-root container its added capabilities in the bounding set only, and neither Docker nor Kubernetes sets ambient
capabilities. So a container that serves a port below 1024 gets the sysctl lowered to that port instead: it is
namespaced (its own network namespace, its pod's on Kubernetes), one of the "safe" sysctls the kubelet allows and
the Pod Security Standards (baseline, hence restricted) admit.
"""

from __future__ import annotations

from collections.abc import Iterable

from components.spec.runtime import UNPRIVILEGED_PORT_START
from components.spec.schema import Workload
from components.targets.probes import probe_port

UNPRIVILEGED_PORT_SYSCTL = "net.ipv4.ip_unprivileged_port_start"


def listen_ports(workload: Workload) -> list[int]:
    """Every port the workload's process binds: its named ports and, if it has its own, the health probe's."""
    probe = probe_port(workload, workload.health_check())
    return sorted({*workload.named_ports().values(), *([probe] if probe else [])})


def port_sysctls(ports: Iterable[int]) -> dict[str, str]:
    """The sysctl that lets a non-root process bind the lowest of `ports`, when it is below 1024; else nothing."""
    lowest = min(ports, default=UNPRIVILEGED_PORT_START)
    return {UNPRIVILEGED_PORT_SYSCTL: str(lowest)} if lowest < UNPRIVILEGED_PORT_START else {}
