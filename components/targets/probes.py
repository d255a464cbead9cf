"""Health probes per kind, as each target states them: a Docker HEALTHCHECK test and Kubernetes probes.

Docker runs the test inside the container, so each kind needs a tool in the image (README, "Health checks"):
http `wget` (busybox or GNU), grpc `grpc_health_probe`, tcp `nc`; exec runs the user's argv as given. Docker's
test is `["CMD", argv...]` (exec form) or `["NONE"]`; without the first element Docker runs nothing.
Kubernetes probes from the kubelet (`httpGet`, `grpc`, `tcpSocket`, `exec`) need nothing in the image.
"""

from __future__ import annotations

from typing import Any

from components.spec.schema import ExecHealth, GrpcHealth, HttpHealth, NoHealth, TcpHealth, Workload

Probe = HttpHealth | GrpcHealth | TcpHealth | ExecHealth | NoHealth


def probe_port(workload: Workload, probe: Probe) -> int | None:
    """The port a network probe connects to: its own, else the workload's main port. None for exec and none."""
    if isinstance(probe, HttpHealth | GrpcHealth | TcpHealth):
        return probe.port or workload.port
    return None


def docker_test(workload: Workload) -> list[str]:
    """The container's HEALTHCHECK test for the workload's probe kind."""
    probe = workload.health_check()
    port = probe_port(workload, probe)
    if isinstance(probe, HttpHealth):
        headers = [arg for name, value in sorted(probe.headers.items()) for arg in ("--header", f"{name}: {value}")]
        return ["CMD", "wget", "-q", "-O", "/dev/null", *headers, f"http://127.0.0.1:{port}{probe.path}"]
    if isinstance(probe, GrpcHealth):
        service = [f"-service={probe.service}"] if probe.service else []
        return ["CMD", "grpc_health_probe", f"-addr=127.0.0.1:{port}", *service]
    if isinstance(probe, TcpHealth):
        return ["CMD", "nc", "-z", "127.0.0.1", str(port)]
    if isinstance(probe, ExecHealth):
        return ["CMD", *probe.command]
    return ["NONE"]


def kubernetes_handler(workload: Workload, port_name: str) -> dict[str, Any] | None:
    """The probe handler (snake_case, as pulumi-kubernetes takes it); None for kind none.

    A probe on the workload's own port names it (`port_name`), so the probe follows the container port.
    """
    probe = workload.health_check()
    port = probe_port(workload, probe)
    named: int | str = port_name if port == workload.port else port or 0
    if isinstance(probe, HttpHealth):
        handler: dict[str, Any] = {"path": probe.path, "port": named}
        if probe.headers:
            handler["http_headers"] = [{"name": k, "value": v} for k, v in sorted(probe.headers.items())]
        return {"http_get": handler}
    if isinstance(probe, GrpcHealth):  # the kubelet's grpc probe takes a number, not a port name
        return {"grpc": {"port": port, **({"service": probe.service} if probe.service else {})}}
    if isinstance(probe, TcpHealth):
        return {"tcp_socket": {"port": named}}
    if isinstance(probe, ExecHealth):
        return {"exec": {"command": list(probe.command)}}
    return None
