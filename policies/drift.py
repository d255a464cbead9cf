"""The observed-drift gate: the proxies' measured traffic against what the stack declares.

Applies only when the plan was given an observation (`make plan OBSERVED=<observe json>`, or the config key
`netopt-observed:file`): the report's `observed` section names the file and its SHA-256. The gate does not take
the program's numbers for it: it re-reads the file, checks the digest (a file changed or swapped since the plan
is a violation), takes the measured response times and peaks from the file itself, and compares them with the
declared values of the report (`scores.inputs.t_seconds`, `capacity.routes[].peak_rps`, both from stack config)
under its own tolerance. Calls between workloads (an observation of the service proxies' logs too): per edge, the
calls the file counts against the declared `ratio` (report `edges`) times the requests the file counts for each
caller, and the measured mean upstream time against the plan's predicted latency of the callee (report
`capacity.workloads[].mean_latency_ms`, weighted by the edge's `versions`); a tcp edge's lines are connections, not
the calls `ratio` counts, so only its latency would be compared (it has none). Advisory in every shipped
environment: a drift is a prompt to re-plan with `make observe ... PATCH=`, not a reason to stop a deployment.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pulumi_policy import ResourceValidationArgs, ResourceValidationPolicy

from policies.framework import Gate, Report, fmt, number, resource_policy
from policies.model import APP_NETWORK, get, items

DRIFT = Gate(
    "observed-drift", "observed",
    "Measured response times, observed peaks and call ratios and latencies (an observation given to the plan) stay within the "
    "tolerance of the declared ones.",
    {"tolerance": {"type": "number", "exclusiveMinimum": 0, "default": 0.2,
                   "description": "largest relative difference |measured / declared - 1| that is not drift"}},
    "Re-plan from the observation: `make observe STACK=<s> LOG=<log> PATCH=<file>`, review the patch, merge it into the stack file.",
)


def _verified_measured(observed: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, str | None]:
    """(the measured inputs read from the observation file itself, or None with the reason it cannot be used)."""
    path = Path(str(get(observed, "file", default="")))
    try:
        data = path.read_bytes()
    except OSError as error:
        return None, f"the observation file {path} cannot be read ({error.strerror}), so the drift cannot be verified"
    digest = hashlib.sha256(data).hexdigest()
    if digest != get(observed, "sha256"):
        return None, (f"the observation file {path} has SHA-256 {digest[:12]}…, not the {str(get(observed, 'sha256'))[:12]}… the plan "
                      "read: it changed since; re-run the plan with it")
    try:
        measured = json.loads(data)["measured"]
    except (ValueError, KeyError, TypeError):
        return None, f"the observation file {path} has no `measured` section"
    return measured, None


def _compare(kind: str, unit: str, declared: dict[str, float], measured: list[Any], tolerance: float) -> list[str]:
    lines = []
    for entry in measured:
        item, value = str(get(entry, "item")), get(entry, "value")
        if item not in declared or value is None:
            continue
        before, after = declared[item], number(value)
        relative = None if before == 0 else after / before - 1.0
        if relative is None or abs(relative) > tolerance:
            change = "declared 0" if relative is None else f"{relative:+.0%}"
            lines.append(f"{kind} {item}: measured {fmt(after)}{unit}, declared {fmt(before)}{unit} ({change})")
    return lines


MIN_CALLS = 20  # calls made or expected before a ratio is judged (observe's MIN_SAMPLES: fewer is Poisson noise)


def _predicted_ms(report: Mapping[str, Any], edge: Mapping[str, Any]) -> float | None:
    latency = {str(get(w, "workload")): get(w, "mean_latency_ms") for w in items(get(report, "capacity", "workloads"))}
    versions = [(str(get(v, "workload")), number(get(v, "weight", default=1))) for v in items(get(edge, "versions"))]
    total = sum(weight for _, weight in versions)
    if not versions or not total or any(latency.get(v) is None for v, _ in versions):
        return None
    return sum(number(latency[v]) * weight for v, weight in versions) / total


def _compare_calls(report: Mapping[str, Any], measured: list[Any], tolerance: float) -> list[str]:
    """Per measured edge: calls against Σ declared ratio × the caller's measured requests, latency against the plan's."""
    declared = {(str(get(e, "caller")), str(get(e, "callee"))): e for e in items(get(report, "edges"))}
    lines = []
    for entry in measured:
        caller, callee = str(get(entry, "caller")), str(get(entry, "callee"))
        edges = [e for (c, target), e in declared.items() if target == callee and (caller == "-" or c == caller)]
        if not edges:
            continue
        requests = get(entry, "caller_requests", default={})
        calls = number(get(entry, "calls", default=0))
        expected = sum(number(get(e, "ratio", default=1)) * number(get(requests, str(get(e, "caller")), default=0)) for e in edges)
        if get(entry, "protocol") != "tcp" and expected > 0 and max(expected, calls) >= MIN_CALLS:
            relative = calls / expected - 1.0
            if abs(relative) > tolerance:
                lines.append(f"call {caller} -> {callee}: {fmt(calls)} calls measured, {fmt(expected)} declared (ratio x the callers' "
                             f"requests) ({relative:+.0%})")
        latency, predicted = get(entry, "latency_ms"), _predicted_ms(report, edges[0])
        if latency is not None and predicted:
            relative = number(latency) / predicted - 1.0
            if abs(relative) > tolerance:
                lines.append(f"call {caller} -> {callee}: measured {fmt(number(latency))} ms upstream, predicted {fmt(predicted)} ms "
                             f"({relative:+.0%})")
    return lines


def _drift(args: ResourceValidationArgs, config: dict[str, Any], report_violation: Report) -> None:
    report: Mapping[str, Any] = args.props["report"]
    observed = get(report, "observed")
    if observed is None:
        return  # no observation given: nothing to compare
    where = f"AppNetwork '{args.name}' (environment {get(report, 'environment', default='?')})"
    if not get(observed, "matches_environment", default=False):
        report_violation(f"{where}: the observation {get(observed, 'file')} was made on environment {get(observed, 'environment')!r}, "
                         f"not this one: its times say nothing about this stack. Fix: observe this environment's gateway log.")
        return
    measured, problem = _verified_measured(observed)
    if measured is None:
        report_violation(f"{where}: {problem}. Fix: {DRIFT.remediation}")
        return
    tolerance = config["tolerance"]
    declared_t = {str(get(i, "item")): number(get(i, "value")) * 1000.0 for i in items(get(report, "scores", "inputs", "t_seconds"))}
    declared_peak = {str(get(r, "route")): number(get(r, "peak_rps")) for r in items(get(report, "capacity", "routes"))}
    t_ms = [{"item": get(e, "item"), "value": number(get(e, "value")) * 1000.0} for e in items(get(measured, "t_seconds"))]
    lines = _compare("replica", " ms", declared_t, t_ms, tolerance)
    lines += _compare("route", " req/s", declared_peak, items(get(measured, "peak_rps")), tolerance)
    lines += _compare_calls(report, items(get(measured, "calls")), tolerance)
    if lines:
        requests = int(number(get(observed, "requests", default=0)))
        calls = int(number(get(observed, "calls", default=0)))
        report_violation(f"{where}: {len(lines)} measured value(s) drift beyond ±{fmt(100 * tolerance)}% of the declared ones "
                         f"(observation {get(observed, 'file')}, {requests} requests, {calls} calls): {'; '.join(lines[:8])}"
                         f"{f' (+{len(lines) - 8} more)' if len(lines) > 8 else ''}. Fix: {DRIFT.remediation}")


def policies() -> list[ResourceValidationPolicy]:
    return [resource_policy(DRIFT, _drift, reads=[APP_NETWORK])]
