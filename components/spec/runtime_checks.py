"""Consistency checks of how workloads run (components/spec/runtime.py): what cannot work is refused, with the reason.

Run by `validation._consistency_issues` on a typed spec whose references resolve. Each problem is one `Issue` at the
user's key path.
"""

from __future__ import annotations

from collections.abc import Iterable

from components.spec.runtime import RESTRICTED_CAPABILITIES
from components.spec.schema import ExecHealth, NoHealth, Spec, Workload


def runtime_issues(spec: Spec) -> list[tuple[list[str | int], str]]:
    """(key path, message) of every problem; `validation` turns them into issues."""
    problems: list[tuple[list[str | int], str]] = []
    for i, workload in enumerate(spec.workloads):
        problems += [(["workloads", i, *path], message) for path, message in _port_issues(workload)]
        problems += [(["workloads", i, *path], message) for path, message in _portless_issues(workload)]
        if spec.target == "kubernetes":
            problems += [(["workloads", i, *path], message) for path, message in _kubernetes_issues(workload)]
    problems += _call_port_issues(spec)
    problems += _routed_portless_issues(spec)
    return problems


def _port_issues(workload: Workload) -> Iterable[tuple[list[str | int], str]]:
    """Extra ports have names and numbers of their own: the main port is named after its protocol."""
    names: dict[str, str] = {workload.protocol: "the main port (named after its protocol)"} if workload.port is not None else {}
    numbers: dict[int, str] = {workload.port: "the main port"} if workload.port is not None else {}
    for j, extra in enumerate(workload.ports):
        if extra.name in names:
            yield ["ports", j, "name"], f"'{extra.name}' already names {names[extra.name]}; give this port another name"
        if extra.port in numbers:
            yield ["ports", j, "port"], f"{extra.port} is already {numbers[extra.port]}; a port is declared once"
        names.setdefault(extra.name, f"ports[{j}]")
        numbers.setdefault(extra.port, f"ports[{j}]")


def _portless_issues(workload: Workload) -> Iterable[tuple[list[str | int], str]]:
    """A workload without a main port has no protocol probe to default to: its check must be said."""
    if workload.port is not None:
        return
    health = workload.health
    if health is None:
        yield ["health"], ("the workload has no port, so its protocol's default probe has nothing to connect to; declare "
                           "health: {kind: exec, command: [...]} (a command that fails when it is stuck), or {kind: none}")
    elif not isinstance(health, ExecHealth | NoHealth) and health.port is None:
        yield ["health", "port"], (f"the workload has no port, so a {health.kind} probe needs its own; give health.port, or use "
                                   "kind exec")


def _kubernetes_issues(workload: Workload) -> Iterable[tuple[list[str | int], str]]:
    refused = [c for c in workload.capabilities.add if c not in RESTRICTED_CAPABILITIES]
    if refused:
        yield ["capabilities", "add"], (f"{', '.join(refused)} cannot be added on the kubernetes target: the namespace enforces the "
                                        "\"restricted\" Pod Security Standard, whose admission refuses any pod adding a capability "
                                        "but NET_BIND_SERVICE; remove them: a port below 1024 needs none (the target sets the "
                                        "net.ipv4.ip_unprivileged_port_start sysctl), and an entrypoint that needed CHOWN/SETUID/SETGID "
                                        "to prepare its files as root and drop to its user runs as that user instead (run_as_user, "
                                        "e.g. 999 for the official database images)")
    if workload.restart not in ("always", "unless-stopped"):
        yield ["restart"], (f"'{workload.restart}' cannot hold on the kubernetes target: the pods of a Deployment or StatefulSet are "
                            "always restarted (restartPolicy Always); remove restart, a Docker setting")


def _call_port_issues(spec: Spec) -> Iterable[tuple[list[str | int], str]]:
    """A call names a port of its callee, or reaches its main port, which it then needs."""
    for i, workload in enumerate(spec.workloads):
        for j, call in enumerate(workload.calls):
            callee = spec.workload(call.workload)
            known = ", ".join(callee.named_ports()) or "none"
            if call.port is not None and call.port not in callee.named_ports():
                yield (["workloads", i, "calls", j, "port"], f"'{call.workload}' has no port named '{call.port}' (its ports: {known}); "
                       f"use one of them or declare it under its ports")
            elif call.port is None and callee.port is None:
                yield (["workloads", i, "calls", j], f"'{call.workload}' has no main port; name the port this call reaches "
                       f"(port: one of {known})")


def _routed_portless_issues(spec: Spec) -> Iterable[tuple[list[str | int], str]]:
    for i, route in enumerate(spec.routes):
        for j, backend in enumerate(route.backends):
            if spec.workload(backend.workload).port is None:
                yield (["routes", i, "backends", j, "workload"], f"workload '{backend.workload}' has no port for the gateway to "
                       "proxy to; give it a port, or route to another workload")
