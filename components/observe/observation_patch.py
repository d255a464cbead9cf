"""The reviewed-by-a-human patch `observe --write-patch` writes: measured response times and observed peaks.

It is a fragment of a stack file: a `config:` mapping whose keys (`netopt:workloads`, `netopt:traffic`) replace
the same keys of `stacks/Pulumi.<s>.yaml` whole. Every other field of each workload stays as the stack file has
it; only `response_time_ms` (per replica, from the mean upstream time) and `traffic.<route>.peak_rps` (the observed
peak over the window) change, and only where the log had enough samples and they drift beyond the tolerance. Re-planning with it is an ordinary
`make plan`: latency_optimal and latency_weighted then recompute weights and backups from the measured times.
"""

from __future__ import annotations

from typing import Any

from components.observe.observation import FLOOR_MS, Measured
from components.spec.schema import Spec

WORKLOADS_KEY = "netopt:workloads"
TRAFFIC_KEY = "netopt:traffic"


def _drifts(measured: float, declared: float, tolerance: float) -> bool:
    return declared == 0 or abs(measured / declared - 1.0) > tolerance


def patch_document(stack_config: dict[str, Any], declared: Spec, measured: Measured,
                   tolerance: float) -> tuple[dict[str, Any], list[str]]:
    """(the patch, one line per change) from the stack file's own `config:` values (YAML-decoded).

    Only what drifts beyond `tolerance` changes, so a patch does not roll the gateway over measurement noise.
    """
    changes: list[str] = []
    workloads = []
    for raw, workload in zip(stack_config.get(WORKLOADS_KEY) or [], declared.workloads, strict=False):
        entry = dict(raw)
        before = [round(t * 1000.0, 3) for t in workload.replica_response_times_s()]
        after = list(before)
        for replica, declared_ms in enumerate(before):
            mean = measured.times_ms.get((workload.name, replica))
            if mean is not None and _drifts(mean, declared_ms, tolerance):
                after[replica] = round(mean, 1) or FLOOR_MS
        if after != before:
            entry["response_time_ms"] = after[0] if len(set(after)) == 1 else after
            changes.append(f"{workload.name}: response_time_ms {raw.get('response_time_ms')} -> {entry['response_time_ms']}")
        workloads.append(entry)
    traffic = dict(stack_config.get(TRAFFIC_KEY) or {})
    for route, peak in sorted(measured.peaks.items()):
        old = declared.peak(route)
        if not _drifts(peak, old.peak_rps, tolerance):
            continue
        entry = dict(traffic[route]) if isinstance(traffic.get(route), dict) else {"clients": old.clients}
        entry["peak_rps"] = peak
        changes.append(f"traffic.{route}.peak_rps {old.peak_rps:g} -> {peak:g}")
        traffic[route] = entry
    return {"config": {WORKLOADS_KEY: workloads, TRAFFIC_KEY: traffic}}, changes


def apply_patch(stack_document: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """The stack document with the patch's `config:` keys replacing its own (what a reviewer merges by hand)."""
    config = dict(stack_document.get("config") or {})
    config.update(patch.get("config") or {})
    return {**stack_document, "config": config}
