"""Specs for tests and benchmarks: the shipped stacks, and small synthetic ones."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from components.spec.schema import Spec

__all__ = ["STACKS", "load_stack", "make_spec"]

STACKS = ("dev", "staging", "prod")


def load_stack(name: str) -> Spec:
    """The validated Spec of ``stacks/Pulumi.<name>.yaml``, read the way the
    offline plan and the Pulumi program read it."""
    from components.resources.pulumi_config import namespace_values
    from components.spec.validation import parse_spec
    from offline.stack_config import cli_config, stack_file

    return parse_spec(namespace_values(cli_config(stack_file(name))))


def make_spec(workloads: dict[str, int | dict[str, Any]], routes: list[dict[str, Any]], *,
              rate_limits: list[dict[str, Any]] | None = None,
              concurrency_limits: list[dict[str, Any]] | None = None,
              gateway: dict[str, Any] | None = None, environment: str = "test",
              traffic: dict[str, Any] | None = None) -> Spec:
    """A validated Spec from a compact description.

    ``workloads``: ``{name: replicas}`` or ``{name: {field: value}}`` (defaults:
    1 replica, 5 ms, max_concurrency 256). ``routes``: Route dicts; a route
    without ``backends`` but with ``to: {workload: weight}`` is expanded.
    ``traffic``: ``{route: peak_rps | {peak_rps, clients}}`` (latency_optimal splits by it).
    """
    from components.spec.schema import Spec

    wl = []
    for name, v in workloads.items():
        d: dict[str, Any] = {"name": name, "image": f"example/{name}:1", "port": 8080,
                             "response_time_ms": 5, "max_concurrency": 256, "replicas": 1}
        if isinstance(v, int):
            d["replicas"] = v
        else:
            d.update(v)
        wl.append(d)
    rts = []
    for r in routes:
        r = dict(r)
        if "to" in r:
            r["backends"] = [{"workload": w, "weight": n} for w, n in r.pop("to").items()]
        rts.append(r)
    gw = {"image": "nginx:test", "keepalive": {"connections": 64, "timeout_s": 30}}
    gw.update(gateway or {})
    return Spec.model_validate({
        "environment": environment,
        # docker: the gateway balances every replica itself (one upstream server per
        # replica). The subnet is only spec data here; the renderer gets loopback
        # addresses from the test bed.
        "target": "docker",
        "network": {"name": "test", "subnet": "10.99.0.0/22"},
        "gateway": gw,
        "workloads": wl,
        "routes": rts,
        "rate_limits": rate_limits or [],
        "concurrency_limits": concurrency_limits or [],
        "traffic": traffic or {},
    })
