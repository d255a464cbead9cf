"""Observed against declared: what the proxies' own traffic says about the stack's response times, peaks and calls.

Pure: takes the spec, its target's address map and the `LogStats` of one pass over the access log. The measured
inputs go through the same code as the declared ones: a copy of the spec with each replica's `response_time_ms`
set to its measured mean upstream time and each route's `traffic.peak_rps` to its observed peak is planned,
scored (`components.plan.scores`) and sized (`components.plan.capacity`) exactly as `make plan` does.

Mapping addresses back to replicas: on Docker every replica has a fixed address (`components.plan.addressing`), so
nginx's `$upstream_addr` names the replica. On Kubernetes an upstream member is a workload's Service; nginx logs
the ClusterIP it resolved the Service name to, so the Services' addresses are needed (`resolved`, host -> IP, from
`kubectl get services -o json`) and times and shares are per workload only: kube-proxy picks the pod, nginx never
sees it. Every replica of the workload is then given the workload's measured time. The service proxies' lines map
the same way (`proxy_address_map`): a replica's time is its time whoever called it, so a workload no route reaches
is measured too.

Per edge (one call of the graph, `caller` -> `callee`, as the callee's service proxy logged it): calls, rate, the
call's time at the proxy and the callee's upstream time, the proxy's refusals by kind, and the measured call ratio
against the declared `ratio`: calls per request the caller served, the caller's requests being what its replicas
answered in the same log — at the gateway for routes to it, at its own proxy when it is itself called. Where the
proxy cannot tell callers apart (Kubernetes without a mesh: `caller` "-"), one row per callee compares its calls
with Σ ratio × requests over its declared callers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from components.observe.log_stats import DEFAULT_WINDOW_S, CallStats, Histogram, LogReader, LogStats, MemberStats
from components.plan.addressing import AddressMap, docker_address_map, docker_serve_map, kubernetes_address_map
from components.plan.balancing import ShareFunction, share_function, target_balancing
from components.plan.build import Plan, build_plan
from components.plan.capacity import Capacity, compute_capacity
from components.plan.deployment import deployment_of
from components.plan.graph import GATEWAY
from components.plan.ir import Proxy
from components.plan.ir import Route as ProxyRoute
from components.plan.report import capacity_document, scores_document
from components.plan.scores import backend_replicas, compute_scores
from components.plan.service_proxy import UNKNOWN_CALLER
from components.spec.schema import Route, Spec, Traffic

DEFAULT_TOLERANCE = 0.2
MIN_SAMPLES = 20  # fewer successful tries than this: a replica's time is reported but drives no drift or patch
FLOOR_MS = 0.5  # nginx's resolution is 1 ms: a mean below half of it is reported as this, never as 0
OBSERVATION_SCHEMA = 1


def target_view(spec: Spec) -> tuple[AddressMap, ShareFunction]:
    """The address map and expected shares of the spec's target (as `components.targets` gives them), without
    importing the Pulumi SDK the targets need: a log reader starts in a third of the time. A test holds them equal."""
    addresses = kubernetes_address_map(spec) if spec.target == "kubernetes" else docker_address_map(spec)
    return addresses, share_function(target_balancing(spec.target))


def proxy_address_map(spec: Spec) -> AddressMap:
    """Where the service proxies reach the replicas of the workloads they serve, as the targets give it: a replica's
    address on its serve link (Docker), the Service of its pods (Kubernetes: the same as the gateway's)."""
    return kubernetes_address_map(spec) if spec.target == "kubernetes" else docker_serve_map(spec)


def log_reader(spec: Spec, plan: Plan, resolved: Mapping[str, str] | None = None, window_s: int = DEFAULT_WINDOW_S) -> LogReader:
    """A reader for every proxy's lines of this plan: the gateway's and the service proxies' addresses, upstream
    names and protocols."""
    gateway_map, _ = target_view(spec)
    members = member_addresses(gateway_map, resolved) | member_addresses(proxy_address_map(spec), resolved)
    upstreams = {u.name for proxy in plan.proxies for u in proxy.upstreams}
    protocols = {proxy.workload: proxy.protocol for proxy in plan.services if proxy.workload}
    return LogReader(members, upstreams, window_s, protocols)


def member_addresses(address_map: AddressMap, resolved: Mapping[str, str] | None = None) -> dict[str, tuple[str, int]]:
    """nginx's logged address -> (workload, member index); a Service host also under each address it resolves to."""
    out: dict[str, tuple[str, int]] = {}
    for workload, addresses in address_map.items():
        for index, address in enumerate(addresses):
            out[address] = (workload, index)
            host, _, port = address.rpartition(":")
            if resolved and host in resolved:
                out[f"{resolved[host]}:{port}"] = (workload, index)
    return out


@dataclass(frozen=True)
class Measured:
    """What one log says: the measured spec and the per-member numbers it was made from."""

    spec: Spec
    times_ms: dict[tuple[str, int], float]  # (workload, replica) -> measured mean, only with >= MIN_SAMPLES
    peaks: dict[str, float]  # route -> observed peak req/s, only routes seen in the log


def _member_mean(stats: LogStats, workload: str, member: int) -> float | None:
    member_stats = stats.members.get((workload, member))
    if member_stats is None or member_stats.times.total < MIN_SAMPLES:
        return None
    mean = member_stats.times.mean()
    return None if mean is None else max(FLOOR_MS, mean)


def measure(spec: Spec, stats: LogStats) -> Measured:
    """The spec with measured response times and observed peaks where the log has enough of them."""
    service = target_balancing(spec.target) == "service"
    times: dict[tuple[str, int], float] = {}
    workloads = []
    for workload in spec.workloads:
        declared = [t * 1000.0 for t in workload.replica_response_times_s()]
        values = list(declared)
        for replica in range(workload.replicas):
            mean = _member_mean(stats, workload.name, 0 if service else replica)
            if mean is not None:
                times[(workload.name, replica)] = mean
                values[replica] = round(mean, 1) or FLOOR_MS
        if values != declared:
            workload = workload.model_copy(update={"response_time_ms": values[0] if workload.replicas == 1 else values})
        workloads.append(workload)
    peaks = {name: round(route.rate.peak_rps(), 1) for name, route in stats.routes.items()
             if route.requests and any(r.name == name for r in spec.routes)}
    traffic = dict(spec.traffic)
    for name, peak in peaks.items():
        traffic[name] = Traffic(peak_rps=peak, clients=spec.peak(name).clients)
    return Measured(spec.model_copy(update={"workloads": workloads, "traffic": traffic}), times, peaks)


def _deployed_shares(declared: Spec, shares: ShareFunction) -> ShareFunction:
    """The split the running config sends (from the declared spec), applied to another spec's peaks and times."""
    routes = {route.name: route for route in declared.routes}

    def deployed(route: Route, _spec: Spec) -> list[tuple[str, int, Fraction]]:
        return shares(routes[route.name], declared)

    return deployed


def _member_row(spec: Spec, plan_service: bool, workload: str, member: int, stats: MemberStats, served_total: int) -> dict[str, Any]:
    declared = spec.workload(workload).replica_response_times_s()
    declared_ms = [t * 1000.0 for t in declared]
    return {
        "item": workload if plan_service else f"{workload}/{member}",
        "workload": workload,
        "member": member,
        "tries": stats.tries,
        "requests": stats.served,
        "share": stats.served / served_total if served_total else None,
        "errors": stats.errors,
        "mean_ms": stats.times.mean(),
        "p50_ms": stats.times.quantile(0.50),
        "p99_ms": stats.times.quantile(0.99),
        "declared_ms": sum(declared_ms) / len(declared_ms) if plan_service else declared_ms[member],
    }


def _split(route: Route, stats: LogStats) -> list[dict[str, Any]]:
    route_stats = stats.routes.get(route.name)
    served: dict[str, int] = {}
    for (workload, _), count in (route_stats.served_by.items() if route_stats else ()):
        served[workload] = served.get(workload, 0) + count
    total_served = sum(served.values())
    total_weight = sum(b.weight for b in route.backends)
    return [{"workload": b.workload, "declared": b.weight / total_weight,
             "observed": served.get(b.workload, 0) / total_served if total_served else None} for b in route.backends]


def _route_row(route: Route, spec: Spec, stats: LogStats) -> dict[str, Any]:
    route_stats = stats.routes.get(route.name)
    requests = route_stats.requests if route_stats else 0
    statuses = route_stats.statuses if route_stats else {}
    span = max(stats.span_s, 1.0)
    return {
        "route": route.name,
        "requests": requests,
        "mean_rps": requests / span,
        "peak_rps": route_stats.rate.peak_rps() if route_stats else 0.0,
        "declared_peak_rps": spec.peak(route.name).peak_rps,
        "rate_429": statuses.get("429", 0) / requests if requests else None,
        "rate_503": statuses.get("503", 0) / requests if requests else None,
        "rate_5xx": sum(n for s, n in statuses.items() if s[:1] == "5") / requests if requests else None,
        "no_server_left": route_stats.no_server_left if route_stats else 0,
        "split": _split(route, stats),
    }


def _quantiles(histogram: Histogram, prefix: str) -> dict[str, float | None]:
    return {f"{prefix}_mean_ms": histogram.mean(), f"{prefix}_p50_ms": histogram.quantile(0.50), f"{prefix}_p99_ms": histogram.quantile(0.99)}


def workload_requests(stats: LogStats) -> dict[str, int]:
    """Requests each workload's replicas answered, whoever sent them (the gateway or a service proxy)."""
    served: dict[str, int] = {}
    for (workload, _), member in stats.members.items():
        served[workload] = served.get(workload, 0) + member.served
    return served


def _declared_latency_ms(plan: Plan, capacity: Capacity, callee: str) -> float | None:
    """What the plan predicts a call to `callee` takes: its versions' mean latency at the declared peak (M/M/c, the
    capacity table's), weighted by the split; None when a version is overloaded at the declared peak."""
    policy = next(edge.policy for edge in plan.edges if edge.callee == callee)
    latency = {row.workload: row.mean_latency_ms for row in capacity.workloads}
    total = sum(weight for _, weight in policy.versions)
    parts = [(latency.get(version), weight) for version, weight in policy.versions]
    return None if any(ms is None for ms, _ in parts) else sum((ms or 0.0) * weight for ms, weight in parts) / total


def _sources(plan: Plan, workload: str) -> set[str]:
    """The proxies whose lines count the requests `workload` serves: the gateway if a route reaches it, the service
    proxy that serves calls to it."""
    return {proxy.name for proxy in plan.proxies for u in proxy.upstreams for s in u.servers if s.workload == workload}


def _seen(stats: LogStats) -> set[str]:
    """The proxies with a line in the log; a gateway line from before the `proxy` field counts as the gateway's."""
    return {name or GATEWAY for name in stats.proxies}


def _call_row(plan: Plan, proxy: Proxy, route: ProxyRoute, stats: LogStats, served: Mapping[str, int],
              declared_latency_ms: float | None) -> dict[str, Any]:
    """One call route of a service proxy: an edge, or every edge into the callee where callers share one address."""
    callee = proxy.workload or ""
    caller = route.caller or UNKNOWN_CALLER
    declared = [e for e in plan.edges if e.callee == callee and (caller == UNKNOWN_CALLER or e.caller == caller)]
    edge = stats.calls.get((caller, callee)) or CallStats(proxy=proxy.name, protocol=proxy.protocol)
    calls = edge.calls
    observed = proxy.name in stats.proxies  # without a line of this proxy, its calls were not measured, not absent
    callers = {e.caller: served.get(e.caller, 0) for e in declared}
    caller_requests = sum(callers.values())
    unread = sorted({source for e in declared for source in _sources(plan, e.caller)} - _seen(stats))
    expected = sum(e.ratio * callers[e.caller] for e in declared) if observed and not unread else 0.0
    rate = proxy.limit("rate", route.rate_limit).rps if route.rate_limit else None
    versions = declared[0].policy.versions if declared else ((callee, 1),)
    by_version: dict[str, int] = {}
    for (workload, _), count in edge.served_by.items():
        by_version[workload] = by_version.get(workload, 0) + count
    answered_total = sum(by_version.values())
    weights = sum(weight for _, weight in versions)
    outcomes = edge.outcomes
    return {
        "item": route.name,
        "caller": caller,
        "callee": callee,
        "callers": sorted(callers),
        "proxy": proxy.name,
        "protocol": proxy.protocol,
        "observed": observed,
        "calls": calls,
        "mean_rps": calls / max(stats.span_s, 1.0),
        "peak_rps": edge.rate.peak_rps(),
        "declared_rps": sum(e.declared_rps for e in declared),
        "limit_rps": rate,
        "timeout_s": proxy.timeouts.read_s,
        "outcomes": dict(sorted(outcomes.items())),
        "rate_429": outcomes.get("limited", 0) / calls if calls else None,
        "rate_503": outcomes.get("unavailable", 0) / calls if calls else None,
        "rate_5xx": (outcomes.get("unavailable", 0) + outcomes.get("failed", 0)) / calls if calls else None,
        "no_server_left": edge.no_server_left,
        **_quantiles(edge.latency, "latency"),
        **_quantiles(edge.upstream, "upstream"),
        "upstream_samples": edge.upstream.total,
        "declared_latency_ms": declared_latency_ms,
        "caller_requests": caller_requests,
        "caller_requests_by_caller": callers,
        "expected_calls": expected,
        "ratio_declared": declared[0].ratio if caller != UNKNOWN_CALLER and declared else None,
        "callers_unread": unread,
        "ratio_measured": calls / caller_requests if observed and not unread and caller != UNKNOWN_CALLER and caller_requests else None,
        "calls_vs_declared": calls / expected if expected else None,
        "split": [{"workload": v, "declared": w / weights, "observed": by_version.get(v, 0) / answered_total if answered_total else None}
                  for v, w in versions],
    }


def call_rows(plan: Plan, stats: LogStats, declared_capacity: Capacity) -> list[dict[str, Any]]:
    """Every call route of every service proxy in the plan, in proxy order, whether or not the log has its lines
    (`observed`: the log has a line of that proxy; without one nothing about its calls is measured, not even 0). The
    ratio needs the callers' requests too: every proxy that carries requests to a caller (`callers_unread` lists those
    with no line in the log; the ratio is then not measured)."""
    served = workload_requests(stats)
    rows = []
    for proxy in plan.services:
        latency = _declared_latency_ms(plan, declared_capacity, proxy.workload or "")
        rows += [_call_row(plan, proxy, route, stats, served, latency) for route in proxy.routes]
    return rows


def _relative(measured: float, declared: float) -> float | None:
    return None if declared == 0 else measured / declared - 1.0


def drift_lines(spec: Spec, measured: Measured, routes: list[dict[str, Any]], tolerance: float) -> list[dict[str, Any]]:
    """Where measured and declared differ by more than `tolerance` (relative): response times, peaks, splits."""
    lines = []
    service = target_balancing(spec.target) == "service"
    for (workload, replica), mean in measured.times_ms.items():
        if service and replica > 0:
            continue  # one measured time per workload
        declared = spec.workload(workload).replica_response_times_s()[replica] * 1000.0
        relative = _relative(mean, declared)
        if relative is not None and abs(relative) > tolerance:
            item = workload if service else f"{workload}/{replica}"
            lines.append({"kind": "response_time_ms", "item": item, "measured": mean, "declared": declared, "relative": relative,
                          "message": f"{item}: mean upstream time {mean:.1f} ms, declared {declared:g} ms ({relative:+.0%})"})
    for row in routes:
        observed, declared = row["peak_rps"], row["declared_peak_rps"]
        if not row["requests"]:
            continue
        relative = _relative(observed, declared)
        if relative is None or abs(relative) > tolerance:
            change = "no peak declared" if relative is None else f"{relative:+.0%}"
            lines.append({"kind": "peak_rps", "item": row["route"], "measured": observed, "declared": declared, "relative": relative,
                          "message": f"route {row['route']}: observed peak {observed:.1f} req/s, declared {declared:g} ({change})"})
        for part in row["split"]:
            if len(row["split"]) > 1 and part["observed"] is not None:
                relative = _relative(part["observed"], part["declared"])
                if relative is not None and abs(relative) > tolerance:
                    lines.append({"kind": "split", "item": f"{row['route']}->{part['workload']}", "measured": part["observed"],
                                  "declared": part["declared"], "relative": relative,
                                  "message": f"route {row['route']}: {part['workload']} served {part['observed']:.1%} of it, "
                                             f"declared {part['declared']:.1%} ({relative:+.0%})"})
    return lines


def call_drift_lines(calls: list[dict[str, Any]], tolerance: float) -> list[dict[str, Any]]:
    """Edges whose call ratio or latency differs from the declared one by more than `tolerance` (relative).

    The ratio needs MIN_SAMPLES calls expected or made; a tcp edge's lines are connections, not the calls `ratio`
    counts (a pooled connection carries many), so its ratio is shown but never drift. The latency is the callee's
    mean upstream time over MIN_SAMPLES answered calls against the plan's predicted latency of the callee."""
    lines = []
    for row in calls:
        name = f"{row['caller']} -> {row['callee']}"
        expected, calls_made = row["expected_calls"], row["calls"]
        if row["protocol"] != "tcp" and expected > 0 and max(expected, calls_made) >= MIN_SAMPLES:
            relative = calls_made / expected - 1.0
            if abs(relative) > tolerance:
                what = (f"{row['ratio_measured']:.2f} calls per request of {row['caller']}, declared {row['ratio_declared']:g}"
                        if row["ratio_declared"] is not None else
                        f"{calls_made} calls, declared ratios x the callers' requests give {expected:.0f}")
                lines.append({"kind": "call_ratio", "item": row["item"], "measured": calls_made / expected, "declared": 1.0,
                              "relative": relative, "message": f"call {name}: {what} ({relative:+.0%})"})
        declared_ms, mean = row["declared_latency_ms"], row["upstream_mean_ms"]
        if declared_ms and mean is not None and row["upstream_samples"] >= MIN_SAMPLES:
            relative = mean / declared_ms - 1.0
            if abs(relative) > tolerance:
                lines.append({"kind": "call_latency_ms", "item": row["item"], "measured": mean, "declared": declared_ms,
                              "relative": relative, "message": f"call {name}: mean upstream time {mean:.1f} ms, the plan predicts "
                                                               f"{declared_ms:.1f} ms ({relative:+.0%})"})
    return lines


def measured_inputs(spec: Spec, measured: Measured) -> dict[str, Any]:
    """What a plan given the observation (`make plan OBSERVED=`) compares with its declarations, item by item."""
    return {
        "t_seconds": [{"item": f"{w}/{r}", "value": measured.times_ms[(w, r)] / 1000.0}
                      for w, r, _ in backend_replicas(build_plan(spec, deployment_of(spec))) if (w, r) in measured.times_ms],
        "peak_rps": [{"item": name, "value": peak} for name, peak in sorted(measured.peaks.items())],
    }


def measured_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the drift gate compares per edge whose proxy's log was read: the calls and the requests of each declared
    caller (it takes the declared ratios from the report itself), and the mean upstream time where there are
    MIN_SAMPLES of it."""
    return [{"item": row["item"], "caller": row["caller"], "callee": row["callee"], "protocol": row["protocol"], "calls": row["calls"],
             "caller_requests": row["caller_requests_by_caller"],
             "latency_ms": row["upstream_mean_ms"] if row["upstream_samples"] >= MIN_SAMPLES else None}
            for row in calls if row["observed"]]


def observation_document(spec: Spec, stats: LogStats, shares: ShareFunction,
                         tolerance: float = DEFAULT_TOLERANCE, window_s: int = DEFAULT_WINDOW_S) -> dict[str, Any]:
    """The whole observation as JSON-ready data (keys only grow): log summary, members, routes, scores, drift."""
    balancing = target_balancing(spec.target)
    service = balancing == "service"
    declared_plan = build_plan(spec, deployment_of(spec))
    measured = measure(spec, stats)
    measured_plan = build_plan(measured.spec, deployment_of(measured.spec))
    reached = {w for w, _, _ in backend_replicas(declared_plan)}
    reached |= {server.workload for proxy in declared_plan.services for u in proxy.upstreams for server in u.servers}
    served_total = sum(m.served for m in stats.members.values())
    members = [_member_row(spec, service, w, i, m, served_total) for (w, i), m in stats.members.items() if w in reached]
    routes = [_route_row(route, spec, stats) for route in spec.routes]
    now: Capacity = compute_capacity(measured_plan, _deployed_shares(spec, shares))
    calls = call_rows(declared_plan, stats, compute_capacity(declared_plan))
    return {
        "schema": OBSERVATION_SCHEMA,
        "environment": spec.environment,
        "target": spec.target,
        "balancing": balancing,
        "algorithm": spec.gateway.algorithm,
        "tolerance": tolerance,
        "window_s": window_s,
        "log": _log_summary(spec, stats, calls),
        "members": members,
        "routes": routes,
        "calls": calls,
        "scores": {"declared": scores_document(compute_scores(declared_plan)), "measured": scores_document(compute_scores(measured_plan))},
        "capacity": {"observed": capacity_document(now), "replanned": capacity_document(compute_capacity(measured_plan, shares))},
        "drift": drift_lines(spec, measured, routes, tolerance) + call_drift_lines(calls, tolerance),
        "measured": measured_inputs(spec, measured) | {"calls": measured_calls(calls)},
    }


def _log_summary(spec: Spec, stats: LogStats, calls: list[dict[str, Any]]) -> dict[str, Any]:
    declared = {route.name for route in spec.routes}
    planned = {(row["caller"], row["callee"]) for row in calls}
    return {
        "lines": stats.lines,
        "requests": stats.requests,
        "calls": stats.call_lines,
        "proxies": dict(sorted(stats.proxies.items())),
        "empty": stats.requests == 0 and stats.call_lines == 0,
        "span_s": stats.span_s,
        "malformed": stats.malformed,
        "malformed_examples": [{"line": p.line, "problem": p.text} for p in stats.malformed_examples],
        "unmapped_tries": stats.unmapped_tries,
        "unmapped": dict(sorted(stats.unmapped.items())),
        "unmapped_examples": [{"line": p.line, "problem": p.text} for p in stats.unmapped_examples],
        "late_lines": sum(r.rate.late for r in stats.routes.values()),
        "unknown_routes": sorted(name for name in stats.routes if name and name not in declared),
        "unknown_calls": sorted(f"{caller}.{callee}" for caller, callee in stats.calls if (caller, callee) not in planned),
    }

