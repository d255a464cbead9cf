"""Gates on the calls between workloads, verified on what is deployed (`policies.calls_deployed`), not on the report.

- `call-timeouts-and-limits`: every call route of every deployed service proxy sets its timeouts explicitly and
  within bounds (http: `proxy_read_timeout`/`proxy_connect_timeout`, grpc: `grpc_*`, tcp: the stream `proxy_timeout`
  and `proxy_connect_timeout`; nginx's defaults are 60 s and 10 min) and counts the call against a limit (a
  `limit_req` zone for http and grpc, a `limit_conn` zone for every protocol), and every call the report declares is
  served by such a route — a call with no proxy has neither;
- `call-limits-within-capacity`: the callers' rate limits at a callee's proxy, added up over the distinct buckets
  that bind them, stay within what the callee serves (tcp: the connection caps within the connections its replicas
  hold). The callee's capacity is Σ over the replicas its proxy's upstream reaches of max_concurrency / response time
  (a split: the version that saturates first at the upstream's weights);
- `grpc-balanced-per-request`: every gRPC call reaches its callee through the callee's service proxy (or a mesh's
  per-request proxy): the proxy forwards each call with `grpc_pass` (HTTP/2, one balancing decision per call) over an
  upstream that does not hash the caller's address, and no caller can reach the callee's replicas around it (on
  Docker it shares no network with them; on Kubernetes the Service named after the callee, the name callers dial,
  selects the proxy's pods, not the callee's);
- `grpc-replicas-per-call`: the proxy's own hop reaches each replica per call: its members are the replicas
  themselves (Docker addresses, a headless Service's pods), or a ClusterIP Service without pooled connections, or
  the callee runs one replica. A ClusterIP Service with `keepalive` is balanced by kube-proxy per connection, and
  nginx reuses the most recently freed connection first: at low concurrency one pooled connection, so one pod,
  carries every call.

Inputs that are declarations, not deployed facts: each callee's per-replica response time and max_concurrency
(the report's `workloads`). No deployed artifact holds them — they are what the application is expected to do —
and they are the same inputs the capacity gates and the plan use, tied to this deployment by the report's config
digests. The replica counts, the limits, the upstream members and their weights are read from the deployed
resources; a capacity check therefore fails when a deployment runs fewer replicas than planned, or limits looser
than rendered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Policy, PolicyResource, StackValidationArgs

from policies.calls_deployed import (
    UNKNOWN_CALLER,
    VARIES,
    Bucket,
    DeployedCall,
    DeployedUpstream,
    Served,
    Workloads,
    deployed_calls,
    deployed_workloads,
)
from policies.framework import Gate, StackReport, fmt, number, stack_policy
from policies.model import APP_NETWORK, DOCKER_CONTAINER, K8S_NAMESPACE, K8S_SERVICE, K8S_WORKLOADS, docker_labels, get, items, k8s_labels

_NUMBER = {"type": "number"}

CALL_TIMEOUTS_AND_LIMITS = Gate(
    "call-timeouts-and-limits", "structure",
    "Every call between workloads goes through its callee's service proxy, which times it out (explicit timeouts within the "
    "bounds) and counts it against a rate limit (http, grpc) and a concurrency limit, read from the deployed proxy configs.",
    {"maxTimeoutS": {**_NUMBER, "exclusiveMinimum": 0, "default": 60,
                     "description": "longest read or connect timeout of an http or grpc call, and connect timeout of a tcp call (s)"},
     "maxIdleTimeoutS": {**_NUMBER, "exclusiveMinimum": 0, "default": 3600,
                         "description": "longest idle timeout (proxy_timeout) of a tcp call's connection (s)"}},
    "Deploy the service proxy configs the program renders (every call gets `traffic_policy.timeout_s` and per-caller limits by "
    "default); set `timeout_s` on the callee within the bound; do not edit the rendered proxy configs by hand.",
)

CALL_LIMITS_WITHIN_CAPACITY = Gate(
    "call-limits-within-capacity", "capacity",
    "The callers' limits at each callee's service proxy admit together no more than the callee's deployed replicas serve "
    "(rate limits against Σ max_concurrency / response time; a tcp callee's connection caps against Σ max_concurrency).",
    {"maxAdmittedUtilization": {**_NUMBER, "exclusiveMinimum": 0, "default": 1.0,
                                "description": "highest (Σ callers' limits) / (the callee's capacity) at any callee"}},
    "Lower the per-call `limit_rps` / `max_concurrency` overrides (or the callee's `traffic_policy` ones), or add replicas to the "
    "callee; without overrides each caller gets its share of the callee's capacity.",
)

GRPC_PER_REQUEST = Gate(
    "grpc-balanced-per-request", "structure",
    "Every gRPC call reaches its callee through the callee's service proxy (or a service mesh), which balances each call with "
    "grpc_pass over HTTP/2: no caller holds a long-lived HTTP/2 connection straight to one replica (Docker DNS, a ClusterIP Service).",
    {},
    "Keep the callee behind its service proxy: deploy the program's resources (callers reach only the proxy, by the callee's name), "
    "use a balancing that is not a hash of the client address, and do not edit the proxy config or the Services by hand.",
)

GRPC_REPLICAS_PER_CALL = Gate(
    "grpc-replicas-per-call", "structure",
    "The gRPC service proxy's own hop picks a replica per call: its upstream members are the callee's replicas (or a headless "
    "Service's pods), not a ClusterIP Service whose pooled connections kube-proxy pins to one pod each.",
    {},
    "On Kubernetes run the calls through a mesh (`kubernetes.mesh: linkerd` or `istio`), or run the callee with one replica; "
    "netopt's proxies on Kubernetes reach the pods through their ClusterIP Service (README, Policy pack, for the options).",
)


def _report(args: StackValidationArgs) -> tuple[PolicyResource, Mapping[str, Any]] | None:
    networks = [r for r in args.resources if r.resource_type == APP_NETWORK]
    report = get(networks[0].props, "report") if len(networks) == 1 else None
    if not isinstance(report, Mapping):
        args.not_applicable("no single AppNetwork with a report (app-network-report reports it)")
        return None
    return networks[0], report


def _edges(report: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(caller, callee, protocol) of every call the report declares."""
    return [(str(get(e, "caller")), str(get(e, "callee")), str(get(e, "protocol", default="http"))) for e in items(get(report, "edges"))]


def _message(call: DeployedCall, text: str, gate: Gate) -> str:
    return f"{call.where} ({call.proxy}), call route '{call.route}': {text}. Fix: {gate.remediation}"


# -- call-timeouts-and-limits ----------------------------------------------------------------------------------------

def _timeouts_and_limits(args: StackValidationArgs, config: dict[str, Any], report_violation: StackReport) -> None:
    reported = _report(args)
    if reported is None:
        return
    network, report = reported
    calls = deployed_calls(args.resources)
    bound, idle_bound = number(config["maxTimeoutS"]), number(config["maxIdleTimeoutS"])
    for call in calls:
        found = _timeout_and_limit_problems(call, bound, idle_bound)
        if found:
            report_violation(_message(call, "; ".join(found), CALL_TIMEOUTS_AND_LIMITS), call.urn)
    served = {(c.caller, c.callee) for c in calls}
    for caller, callee, protocol in _edges(report):
        if (caller, callee) in served or (UNKNOWN_CALLER, callee) in served:
            continue
        how = ("the calls are carried by a service mesh, whose resources this pack does not read yet"
               if get(report, "callers") == "mesh" else f"no deployed config of {callee}-proxy serves it")
        report_violation(
            f"AppNetwork '{network.name}': the declared call {caller} -> {callee} ({protocol}) has no timeout and no limit the pack "
            f"can verify: {how} (required: a service proxy route '{caller}.{callee}' or '-.{callee}'). Fix: "
            f"{CALL_TIMEOUTS_AND_LIMITS.remediation}", network.urn)


def _timeout_and_limit_problems(call: DeployedCall, bound: float, idle_bound: float) -> list[str]:
    found = list(call.problems[:3])
    if not call.forward:
        return [*found, "the location or server forwards nowhere (no proxy_pass or grpc_pass)"]
    stream = call.forward == "stream"
    read_name = "proxy_timeout" if stream else f"{'grpc' if call.forward == 'grpc_pass' else 'proxy'}_read_timeout"
    connect_name = "proxy_connect_timeout" if stream else read_name.replace("read", "connect")
    default = "10m" if stream else "60s"
    for name, value, limit in ((read_name, call.read_timeout_s, idle_bound if stream else bound), (connect_name, call.connect_timeout_s, bound)):
        if value is None:
            found.append(f"no {name} in force (nginx's default {'60s' if 'connect' in name else default} applies; required: explicit, "
                         f"<= {fmt(limit)} s)")
        elif value > limit:
            found.append(f"{name} is {fmt(value)} s, above the maximum {fmt(limit)} s")
    if not stream and not call.rates:
        found.append("no limit_req zone in force counts it (measured: unlimited rate; required: a per-caller rate limit)")
    if not call.connections:
        found.append(f"no limit_conn zone in force counts it (measured: unlimited {'connections' if stream else 'calls in flight'}; "
                     "required: a per-caller concurrency limit)")
    return found


# -- call-limits-within-capacity -------------------------------------------------------------------------------------

def _admitted(calls: Sequence[DeployedCall], kind: str) -> tuple[float | None, list[str]]:
    """What the callers' limits admit together: each call's binding bucket (the strictest that counts it), each bucket
    once however many calls share it; None (unbounded) when a call has none or a per-client one."""
    binding: dict[tuple[str, str], Bucket] = {}
    shown = []
    for call in calls:
        buckets = call.rates if kind == "rate" else call.connections
        if not buckets:
            return None, [f"'{call.route}' is not limited"]
        bucket = min(buckets, key=lambda b: b.value)
        if bucket.key == VARIES:
            return None, [f"'{call.route}' is limited per client (zone {bucket.zone}), so the clients' total is unbounded"]
        binding[(bucket.zone, bucket.key)] = bucket
        shown.append(f"{call.route} {fmt(bucket.value)}")
    return sum(b.value for b in binding.values()), shown


def _capacity(upstream: DeployedUpstream, workloads: Workloads, declared: Mapping[str, Any], kind: str) -> tuple[float | None, str]:
    """The callee's capacity behind `upstream` (calls/s, or connections for kind "connections") and how it was found."""
    per_version: dict[str, float] = {}
    weights: dict[str, float] = {}
    for member in upstream.members:
        served = workloads.serving(member.address)
        if served is None:
            return None, f"upstream member {member.address} is no deployed replica or Service of a workload"
        spec = get(declared, served.workload)
        if spec is None or get(spec, "max_concurrency") is None or not items(get(spec, "response_time_ms")):
            return None, f"the report declares no response_time_ms/max_concurrency for workload '{served.workload}'"
        per_version[served.workload] = per_version.get(served.workload, 0.0) + _served_capacity(served, spec, kind)
        if not member.backup:
            weights[served.workload] = weights.get(served.workload, 0.0) + member.weight
    total = sum(weights.values())
    if len(per_version) == 1 or not total:
        return sum(per_version.values()), ", ".join(f"{w} {fmt(c)}" for w, c in per_version.items())
    capacity = min(per_version[w] * total / weights[w] for w in weights if weights[w])
    return capacity, ", ".join(f"{w} {fmt(per_version[w])} at {fmt(100 * weights.get(w, 0) / total)}% of the calls" for w in per_version)


def _served_capacity(served: Served, spec: Mapping[str, Any], kind: str) -> float:
    concurrency = number(get(spec, "max_concurrency"))
    times = [number(t) / 1000.0 for t in items(get(spec, "response_time_ms"))]
    replicas = [served.replica] if served.replica is not None else list(range(served.count))
    if kind == "connections":
        return concurrency * len(replicas)
    return sum(concurrency / times[min(r, len(times) - 1)] for r in replicas)


def _within_capacity(args: StackValidationArgs, config: dict[str, Any], report_violation: StackReport) -> None:
    reported = _report(args)
    if reported is None:
        return
    _, report = reported
    maximum = number(config["maxAdmittedUtilization"])
    workloads = deployed_workloads(args.resources)
    declared = get(report, "workloads", default={})
    by_config: dict[tuple[str, str], list[DeployedCall]] = {}
    for call in deployed_calls(args.resources):
        by_config.setdefault((call.proxy, call.where), []).append(call)
    for calls in by_config.values():
        first = calls[0]
        kind = "connections" if first.forward == "stream" else "rate"
        unit = "connections" if kind == "connections" else "calls/s"
        upstreams = {c.upstream.name: c.upstream for c in calls if c.upstream is not None}
        if len(upstreams) != 1:
            report_violation(_message(first, f"its calls forward to {len(upstreams)} upstreams (required: one, the callee's)",
                                      CALL_LIMITS_WITHIN_CAPACITY), first.urn)
            continue
        (upstream,) = upstreams.values()
        admitted, limits = _admitted(calls, kind)
        capacity, basis = _capacity(upstream, workloads, declared, kind)
        what = f"the callers' {'connection caps' if kind == 'connections' else 'rate limits'} ({'; '.join(limits)})"
        if capacity is None:
            report_violation(f"{first.where} ({first.proxy}): the capacity of '{first.callee}' cannot be found: {basis}. "
                             f"Fix: {CALL_LIMITS_WITHIN_CAPACITY.remediation}", first.urn)
        elif admitted is None:
            report_violation(f"{first.where} ({first.proxy}): {what}: the {unit} admitted to '{first.callee}' are unbounded "
                             f"(measured: ∞; maximum {fmt(maximum)} x its capacity of {fmt(capacity)} {unit}). "
                             f"Fix: {CALL_LIMITS_WITHIN_CAPACITY.remediation}", first.urn)
        elif admitted > maximum * capacity * (1 + 1e-9):
            report_violation(f"{first.where} ({first.proxy}): {what} admit {fmt(admitted)} {unit} to '{first.callee}', "
                             f"{fmt(admitted / capacity)} x what its deployed replicas serve ({fmt(capacity)} {unit}: {basis}; "
                             f"maximum {fmt(maximum)} x): the callers together can overload it. Fix: {CALL_LIMITS_WITHIN_CAPACITY.remediation}",
                             first.urn)


# -- grpc-balanced-per-request ---------------------------------------------------------------------------------------

def _grpc_callees(report: Mapping[str, Any], calls: Sequence[DeployedCall]) -> dict[str, list[str]]:
    """grpc callee -> its declared callers; also every callee a deployed config reaches with grpc_pass."""
    callees: dict[str, list[str]] = {}
    for caller, callee, protocol in _edges(report):
        if protocol == "grpc":
            callees.setdefault(callee, []).append(caller)
    for call in calls:
        if call.forward == "grpc_pass":
            callees.setdefault(call.callee, [])
    return callees


def _per_request(args: StackValidationArgs, config: dict[str, Any], report_violation: StackReport) -> None:
    reported = _report(args)
    if reported is None:
        return
    network, report = reported
    calls = deployed_calls(args.resources)
    callees = _grpc_callees(report, calls)
    if not callees:
        args.not_applicable("no gRPC call in this stack")
        return
    workloads = deployed_workloads(args.resources)
    for callee, callers in callees.items():
        mine = [c for c in calls if c.callee == callee]
        if not mine:
            problem = _mesh_problem(args.resources, callee) if get(report, "callers") == "mesh" else \
                "no service proxy config for it is deployed, so its callers dial its replicas directly"
            if problem:
                report_violation(f"AppNetwork '{network.name}': gRPC calls to '{callee}' (from {', '.join(callers) or '?'}): {problem} "
                                 f"(required: every call balanced per request). Fix: {GRPC_PER_REQUEST.remediation}", network.urn)
            continue
        for call in mine:
            found = _proxy_problems(call)
            if found:
                report_violation(_message(call, "; ".join(found), GRPC_PER_REQUEST), call.urn)
        for resource, how in _bypass(args.resources, workloads, callee, callers, mine):
            report_violation(f"gRPC callers of '{callee}' can reach its replicas around its proxy: {how} (required: callers reach "
                             f"only the proxy). Fix: {GRPC_PER_REQUEST.remediation}", resource.urn)


def _proxy_problems(call: DeployedCall) -> list[str]:
    if call.forward == "stream":
        return ["it is forwarded by the stream module, one balancing decision per connection: an HTTP/2 client's every call "
                "goes to one replica"]
    if call.forward != "grpc_pass":
        return [f"it is forwarded with {call.forward or 'nothing'}, not grpc_pass (gRPC needs HTTP/2 to the replicas)"]
    method = call.upstream.method if call.upstream is not None else ()
    if method[:1] == ("ip_hash",) or (method[:1] == ("hash",) and len(method) > 1 and "remote_addr" in method[1]):
        return [f"its upstream balances by '{' '.join(method)}', a hash of the caller's address: each caller replica's calls all "
                "go to one callee replica"]
    return []


def _bypass(resources: Sequence[Any], workloads: Workloads, callee: str, callers: list[str],
            calls: list[DeployedCall]) -> list[tuple[PolicyResource, str]]:
    """(resource, how) for each way a caller reaches the callee's replicas without the proxy: a caller's container on a
    network of the callee's replicas (Docker), or the Service callers dial selecting the callee's pods (Kubernetes)."""
    members = {s.workload for c in calls if c.upstream is not None for m in c.upstream.members if (s := workloads.serving(m.address))}
    served = members | {callee}
    networks: dict[str, set[str]] = {}
    containers: list[tuple[PolicyResource, str, set[str]]] = []
    for resource in resources:
        if resource.resource_type == DOCKER_CONTAINER:
            labels = docker_labels(resource.props)
            if labels.get("netopt.role"):
                continue
            names = {str(get(n, "name")) for n in items(get(resource.props, "networksAdvanced"))}
            networks.setdefault(labels.get("netopt.workload", ""), set()).update(names)
            containers.append((resource, labels.get("netopt.workload", ""), names))
    found = []
    for resource, workload, names in containers:
        if workload in callers:
            shared = sorted(name for version in served for name in names & networks.get(version, set()))
            if shared:
                found.append((resource, f"container '{resource.name}' of {workload} is on {', '.join(shared)}, a network of the replicas "
                                        f"of {', '.join(sorted(served))}"))
    for resource in resources:
        if resource.resource_type == K8S_SERVICE and str(get(resource.props, "metadata", "name", default="")) == callee:
            selector = {str(k): str(v) for k, v in (get(resource.props, "spec", "selector", default={}) or {}).items()}
            picked = sorted({w for labels, w, _ in workloads.pods if selector and all(labels.get(k) == v for k, v in selector.items())})
            if set(picked) & served:
                found.append((resource, f"the Service '{resource.name}' ({callee}, the name its callers dial) selects the pods of "
                                        f"{', '.join(picked)} themselves: kube-proxy pins each caller's HTTP/2 connection to one pod"))
    return found


_LINKERD = ("linkerd.io/inject", "enabled")
_ISTIO_SIDECAR = ("sidecar.istio.io/inject", "true")


def _mesh_problem(resources: Sequence[Any], callee: str) -> str:
    """Under a mesh, the callee's pods must carry a per-request proxy: Linkerd's or Istio's sidecar, or Istio ambient with
    a waypoint (ztunnel alone is L4: per connection). "" when they do."""
    namespace: dict[str, str] = {}
    pod: dict[str, str] = {}
    for resource in resources:
        if resource.resource_type == K8S_NAMESPACE:
            namespace.update(k8s_labels(resource.props))
            namespace.update({str(k): str(v) for k, v in (get(resource.props, "metadata", "annotations", default={}) or {}).items()})
        elif resource.resource_type in K8S_WORKLOADS and k8s_labels(resource.props, "spec", "template").get("app.kubernetes.io/name") == callee:
            pod.update(k8s_labels(resource.props, "spec", "template"))
            pod.update({str(k): str(v) for k, v in (get(resource.props, "spec", "template", "metadata", "annotations", default={}) or {}).items()})
    marks = {**namespace, **pod}
    if marks.get(_LINKERD[0]) == _LINKERD[1] or marks.get(_ISTIO_SIDECAR[0]) == _ISTIO_SIDECAR[1] or marks.get("istio-injection") == "enabled":
        return ""
    if marks.get("istio.io/dataplane-mode") == "ambient":
        return "" if marks.get("istio.io/use-waypoint") else "Istio ambient without a waypoint balances per connection (ztunnel is L4)"
    return "its pods carry no mesh proxy (no linkerd.io/inject, sidecar.istio.io/inject or istio-injection mark)"


# -- grpc-replicas-per-call ------------------------------------------------------------------------------------------

def _replicas_per_call(args: StackValidationArgs, config: dict[str, Any], report_violation: StackReport) -> None:
    calls = [c for c in deployed_calls(args.resources) if c.forward == "grpc_pass"]
    if not calls:
        args.not_applicable("no deployed gRPC service proxy")
        return
    workloads = deployed_workloads(args.resources)
    seen: set[tuple[str, str]] = set()
    for call in calls:
        if call.upstream is None or (call.where, call.upstream.name) in seen:
            continue
        seen.add((call.where, call.upstream.name))
        for member in call.upstream.members:
            served = workloads.serving(member.address)
            if served is None or served.service is None or served.count <= 1:
                continue  # a replica's own address, or one pod: every call reaches a chosen replica
            if get(served.service, "spec", "clusterIP") == "None" or not call.upstream.pooled:
                continue  # a headless Service (nginx resolves every pod), or a fresh connection per call
            report_violation(_message(call, f"upstream {call.upstream.name} reaches the {served.count} pods of '{served.workload}' "
                                            f"through the ClusterIP Service {member.address} with pooled connections (keepalive): "
                                            "kube-proxy picks a pod per connection, and nginx reuses the most recently freed connection "
                                            "first, so at low concurrency one pod carries every call", GRPC_REPLICAS_PER_CALL),
                             call.urn)


def policies() -> list[Policy]:
    return [
        stack_policy(CALL_TIMEOUTS_AND_LIMITS, _timeouts_and_limits),
        stack_policy(CALL_LIMITS_WITHIN_CAPACITY, _within_capacity),
        stack_policy(GRPC_PER_REQUEST, _per_request),
        stack_policy(GRPC_REPLICAS_PER_CALL, _replicas_per_call),
    ]
