"""A generated, valid stack of N workloads for scale benchmarks (plan time, policy analysis time)."""

from __future__ import annotations

import json
from typing import Any


def generated_raw(workloads: int, replicas: int = 2) -> dict[str, Any]:
    """The `netopt` namespace of a stack with `workloads` services, one route each, and a few shared limits."""
    wl = [
        {
            "name": f"svc{i}",
            "image": f"registry.example.com/svc{i}@sha256:{i:064x}",
            "port": 8000 + i % 1000,
            "replicas": replicas,
            "response_time_ms": 5 + i % 50,
            "max_concurrency": 32,
            "resources": {"cpu": 0.25, "memory_mb": 64},
        }
        for i in range(workloads)
    ]
    routes: list[dict[str, Any]] = []
    for i in range(workloads):
        kind = ("prefix", "exact", "prefix", "regex")[i % 4] if i % 50 == 3 else ("prefix", "exact")[i % 2]
        path = f"^/v[0-9]+/svc{i}/" if kind == "regex" else f"/svc{i}/" if kind == "prefix" else f"/svc{i}"
        backends = [{"workload": f"svc{i}", "weight": 9}] + ([{"workload": f"svc{i + 1}", "weight": 1}] if i % 10 == 0 and i + 1 < workloads else [])
        routes.append({"name": f"r{i}", "match": {"path": path, "path_type": kind}, "backends": backends, "rate_limit": f"rl{i % 8}"})
    return {
        "environment": "scale",
        "target": "docker",
        "network": {"name": "scale", "subnet": "10.96.0.0/16", "edge_subnet": "10.97.0.0/24"},
        "gateway": {"image": "nginx:1.27.3@sha256:" + "ab" * 32, "algorithm": "least_conn"},
        "workloads": wl,
        "routes": routes,
        "rate_limits": [{"name": f"rl{k}", "rps": 100 * (k + 1), "burst": 50} for k in range(8)],
        "traffic": {f"r{i}": {"peak_rps": 20, "clients": 4} for i in range(workloads)},
    }


def generated_cli_config(workloads: int, replicas: int = 2) -> dict[str, str]:
    """The same stack in the form the Pulumi CLI hands to the program (`netopt:<key>` -> string)."""
    return {f"netopt:{key}": value if isinstance(value, str) else json.dumps(value) for key, value in generated_raw(workloads, replicas).items()}
