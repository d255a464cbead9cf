"""Gates on the calls between workloads, verified on what is deployed, not on the report: the service proxy configs
(`policies.calls_deployed`) or, for a declared call no proxy route serves, the resources of the service mesh that
carries it (`policies.calls_mesh`: the same facts, read from Linkerd's or Istio's resources; notes at the end).

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

Under a mesh (the caller's pods run Linkerd's proxy or Istio's sidecar) the same gates judge what the mesh applies:
- `call-timeouts-and-limits`: the request timeout of the callee's mesh route, explicit and within `maxTimeoutS`
  (Istio tcp: the DestinationRule's connect and idle timeouts), a rate bucket counting the caller at every version
  it reaches (Linkerd: in the version's pods; Istio: in the caller's sidecars) and, under Istio, a connection pool.
  Linkerd has no concurrency limit (a rate limit with a request timeout bounds the calls in flight to rate ×
  timeout) and nothing at all for a tcp call: that call fails closed;
- `call-limits-within-capacity`: per version, the distinct buckets that bind its callers against its deployed pods;
- `grpc-balanced-per-request`: the caller's pods run a per-request mesh proxy not skipped for the port, the
  callee's pods are in the mesh (its authorization admits meshed identities only, so no caller reaches them around
  a proxy), and the mesh's rule does not hash the source address or pass through to the ClusterIP;
- `grpc-replicas-per-call`: the mesh sees requests on the port (not opaque to Linkerd, not TCP to Istio).
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
from policies.calls_mesh import MeshCall, MeshVersion, mesh_calls
from policies.deployed_configs import Resource
from policies.framework import Gate, StackReport, fmt, number, stack_policy
from policies.mesh_index import ISTIO, LINKERD
from policies.model import APP_NETWORK, DOCKER_CONTAINER, K8S_SERVICE, docker_labels, get, items

_NUMBER = {"type": "number"}

CALL_TIMEOUTS_AND_LIMITS = Gate(
    "call-timeouts-and-limits", "structure",
    "Every call between workloads is timed out (explicit timeouts within the bounds) and counted against a rate limit (http, "
    "grpc) and a concurrency limit by its callee's service proxy, or by the service mesh that carries it (Linkerd: no "
    "concurrency limit), read from the deployed proxy configs or mesh resources.",
    {"maxTimeoutS": {**_NUMBER, "exclusiveMinimum": 0, "default": 60,
                     "description": "longest read or connect timeout of an http or grpc call, and connect timeout of a tcp call (s)"},
     "maxIdleTimeoutS": {**_NUMBER, "exclusiveMinimum": 0, "default": 3600,
                         "description": "longest idle timeout (proxy_timeout) of a tcp call's connection (s)"}},
    "Deploy the service proxy configs the program renders (every call gets `traffic_policy.timeout_s` and per-caller limits by "
    "default); set `timeout_s` on the callee within the bound; do not edit the rendered proxy configs by hand.",
)

CALL_LIMITS_WITHIN_CAPACITY = Gate(
    "call-limits-within-capacity", "capacity",
    "The callers' limits at each callee's service proxy (or, under a mesh, at each version of the callee) admit together no "
    "more than the callee's deployed replicas serve (rate limits against Σ max_concurrency / response time; a tcp callee's "
    "connection caps against Σ max_concurrency).",
    {"maxAdmittedUtilization": {**_NUMBER, "exclusiveMinimum": 0, "default": 1.0,
                                "description": "highest (Σ callers' limits) / (the callee's capacity) at any callee"}},
    "Lower the per-call `limit_rps` / `max_concurrency` overrides (or the callee's `traffic_policy` ones), or add replicas to the "
    "callee; without overrides each caller gets its share of the callee's capacity.",
)

GRPC_PER_REQUEST = Gate(
    "grpc-balanced-per-request", "structure",
    "Every gRPC call reaches its callee through the callee's service proxy, which balances each call with grpc_pass over HTTP/2, "
    "or through a mesh proxy in the caller's pods, with the callee's pods in the mesh: no caller holds a long-lived HTTP/2 "
    "connection straight to one replica (Docker DNS, a ClusterIP Service).",
    {},
    "Keep the callee behind its service proxy: deploy the program's resources (callers reach only the proxy, by the callee's name), "
    "use a balancing that is not a hash of the client address, and do not edit the proxy config or the Services by hand.",
)

GRPC_REPLICAS_PER_CALL = Gate(
    "grpc-replicas-per-call", "structure",
    "The gRPC service proxy's own hop picks a replica per call: its upstream members are the callee's replicas (or a headless "
    "Service's pods), not a ClusterIP Service whose pooled connections kube-proxy pins to one pod each; under a mesh, the "
    "mesh sees the requests on the callee's port (not opaque, not TCP).",
    {},
    "On Kubernetes run the calls through a mesh (`kubernetes.mesh: linkerd` or `istio`), or run the callee with one replica; "
    "netopt's proxies on Kubernetes reach the pods through their ClusterIP Service (README, Policy pack, for the options).",
)


def _report(args: StackValidationArgs, quiet: bool = False) -> tuple[PolicyResource, Mapping[str, Any]] | None:
    networks = [r for r in args.resources if r.resource_type == APP_NETWORK]
    report = get(networks[0].props, "report") if len(networks) == 1 else None
    if not isinstance(report, Mapping):
        if not quiet:
            args.not_applicable("no single AppNetwork with a report (app-network-report reports it)")
        return None
    return networks[0], report


def _edges(report: Mapping[str, Any]) -> list[tuple[str, str, str, int | None]]:
    """(caller, callee, protocol, port) of every call the report declares (port: None in a report without it)."""
    return [(str(get(e, "caller")), str(get(e, "callee")), str(get(e, "protocol", default="http")),
             None if get(e, "port") is None else int(float(get(e, "port")))) for e in items(get(report, "edges"))]


def _message(call: DeployedCall, text: str, gate: Gate) -> str:
    return f"{call.where} ({call.proxy}), call route '{call.route}': {text}. Fix: {gate.remediation}"


def _resources(args: StackValidationArgs) -> list[Resource]:
    return [Resource(r.resource_type, r.name, r.props, r.urn) for r in args.resources]


def _unserved(report: Mapping[str, Any], calls: Sequence[DeployedCall]) -> list[tuple[str, str, str, int | None]]:
    """The declared calls no deployed service proxy route serves: a mesh must carry them, if anything does."""
    served = {(c.caller, c.callee) for c in calls}
    return [e for e in _edges(report) if (e[0], e[1]) not in served and (UNKNOWN_CALLER, e[1]) not in served]


_MESH_FIX = {
    "call-timeouts-and-limits": "Deploy the mesh resources the program generates (`kubernetes.mesh`): each callee's route times its calls "
                                "out (`traffic_policy.timeout_s` within the bound) and each caller gets a rate limit (Linkerd: an "
                                "HTTPLocalRateLimitPolicy override for its ServiceAccount on every version's Server; Istio: a token "
                                "bucket in its sidecar and a DestinationRule connection pool); keep callers' and callees' pods "
                                "injected. Linkerd can neither time out nor limit a tcp call: for a tcp callee use "
                                "`kubernetes.mesh: istio`, or `none` (netopt's stream proxy).",
    "call-limits-within-capacity": "Lower the per-call `limit_rps` / `max_concurrency` overrides (or the callee's `traffic_policy` ones), or "
                                   "add replicas to the callee; do not raise the mesh's limits by hand (Linkerd overrides and totals, "
                                   "Istio token buckets and connection pools). Linkerd cannot limit a tcp call: use `kubernetes.mesh: "
                                   "istio` or `none` for a tcp callee.",
    "grpc-balanced-per-request": "Keep the callers' and the callee's pods in the mesh (the namespace's injection mark; no pod opting "
                                 "out, no port skipping the caller's proxy) with a per-request proxy (Istio ambient needs a waypoint), "
                                 "and a balancing that is not a hash of the source address.",
    "grpc-replicas-per-call": "Let the mesh see the gRPC requests: no `config.linkerd.io/opaque-ports` or opaque Server for the port; an "
                              "HTTP/2 appProtocol (grpc, kubernetes.io/h2c) or port name on the Service for Istio.",
}


def _mesh_message(network: PolicyResource, call: MeshCall, text: str, gate: Gate) -> tuple[str, str | None]:
    """A finding about a mesh call, attached to the callee's route (else its Service, else the AppNetwork)."""
    carried = f"carried by {call.mesh}" if call.mesh else "carried by no mesh proxy"
    where = call.where if call.resource is not None else f"AppNetwork '{network.name}'"
    return (f"{where}, the declared call {call.caller} -> {call.callee} ({call.protocol}, {carried}): {text}. Fix: {_MESH_FIX[gate.name]}",
            call.resource.urn if call.resource is not None else network.urn)


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
    for mesh in mesh_calls(_resources(args), _unserved(report, calls)):
        if mesh.mesh is None:  # neither a service proxy nor a mesh proxy: nothing deployed bounds it
            report_violation(
                f"AppNetwork '{network.name}': the declared call {mesh.caller} -> {mesh.callee} ({mesh.protocol}) has no timeout and no "
                f"limit the pack can verify: no deployed config of {mesh.callee}-proxy serves it, and the pods of {mesh.caller} run no mesh "
                f"proxy ({mesh.carried}) (required: a service proxy route '{mesh.route}' or '-.{mesh.callee}', or the call in a mesh). "
                f"Fix: {CALL_TIMEOUTS_AND_LIMITS.remediation}", network.urn)
            continue
        found = _mesh_timeout_and_limit_problems(mesh, bound, idle_bound)
        if found:
            report_violation(*_mesh_message(network, mesh, "; ".join(found), CALL_TIMEOUTS_AND_LIMITS))


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


def _mesh_timeout_and_limit_problems(call: MeshCall, bound: float, idle_bound: float) -> list[str]:
    """What keeps a mesh call from being timed out and limited in every pod it reaches (the bounds as for a proxy)."""
    found = list(call.problems[:3])
    if call.protocol == "tcp" and call.mesh == LINKERD:
        return [*found, "Linkerd has no timeout and no connection limit for a tcp (opaque) port, so nothing deployed bounds the call "
                        "(measured: no idle or connect timeout, unlimited connections)"]
    if call.protocol == "tcp":
        for name, value, limit, default in (("tcp.connectTimeout", call.connect_timeout_s, bound, "10s"),
                                            ("tcp.idleTimeout", call.idle_timeout_s, idle_bound, "1h")):
            if value is None:
                found.append(f"no {name} in the DestinationRule the caller's sidecar applies (Istio's default {default} applies; "
                             f"required: explicit, <= {fmt(limit)} s)")
            elif value > limit:
                found.append(f"{name} is {fmt(value)} s, above the maximum {fmt(limit)} s")
    elif call.timeout_s is None:
        found.append(f"no request timeout in force: {call.timeout_from} (a mesh times a request out only when told; required: explicit, "
                     f"<= {fmt(bound)} s)")
    elif call.timeout_s > bound:
        found.append(f"the request timeout is {fmt(call.timeout_s)} s ({call.timeout_from}), above the maximum {fmt(bound)} s")
    if not call.versions:
        found.append("it reaches no deployed pods")
    for version in call.versions:
        if call.protocol != "tcp" and not version.rates:
            found.append(f"no rate limit counts it at {version.workload} (measured: unlimited rate): {version.no_rate}")
        if call.mesh == ISTIO and not version.connections:
            held = "connections" if call.protocol == "tcp" else "calls in flight"
            found.append(f"no concurrency cap counts it at {version.workload} (measured: unlimited {held}): {version.no_connections}")
    return found


# -- call-limits-within-capacity -------------------------------------------------------------------------------------

def _admitted(calls: Sequence[tuple[str, Sequence[Bucket]]]) -> tuple[float | None, list[str]]:
    """What the callers' limits admit together, from each call's (route, buckets that count it): its binding bucket
    (the strictest), each bucket once however many calls share it; None (unbounded) when a call has none or a
    per-client one."""
    binding: dict[tuple[str, str], Bucket] = {}
    shown = []
    for route, buckets in calls:
        if not buckets:
            return None, [f"'{route}' is not limited"]
        bucket = min(buckets, key=lambda b: b.value)
        if bucket.key == VARIES:
            return None, [f"'{route}' is limited per client ({bucket.zone}), so the clients' total is unbounded"]
        binding[(bucket.zone, bucket.key)] = bucket
        shown.append(f"{route} {fmt(bucket.value)}")
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
    network, report = reported
    maximum = number(config["maxAdmittedUtilization"])
    workloads = deployed_workloads(args.resources)
    declared = get(report, "workloads", default={})
    by_config: dict[tuple[str, str], list[DeployedCall]] = {}
    calls = deployed_calls(args.resources)
    for call in calls:
        by_config.setdefault((call.proxy, call.where), []).append(call)
    for found in by_config.values():
        first = found[0]
        kind = "connections" if first.forward == "stream" else "rate"
        upstreams = {c.upstream.name: c.upstream for c in found if c.upstream is not None}
        if len(upstreams) != 1:
            report_violation(_message(first, f"its calls forward to {len(upstreams)} upstreams (required: one, the callee's)",
                                      CALL_LIMITS_WITHIN_CAPACITY), first.urn)
            continue
        (upstream,) = upstreams.values()
        admitted = _admitted([(c.route, c.rates if kind == "rate" else c.connections) for c in found])
        capacity, basis = _capacity(upstream, workloads, declared, kind)
        verdict = _capacity_verdict(kind, admitted, capacity, basis, maximum, f"'{first.callee}'", "its deployed replicas")
        if verdict:
            report_violation(f"{first.where} ({first.proxy}): {verdict}. Fix: {CALL_LIMITS_WITHIN_CAPACITY.remediation}", first.urn)
    _mesh_within_capacity(network, mesh_calls(_resources(args), _unserved(report, calls)), declared, maximum, report_violation)


def _capacity_verdict(kind: str, admitted: tuple[float | None, list[str]], capacity: float | None, basis: str, maximum: float,
                      callee: str, serving: str) -> str:
    """What is wrong with the callers' limits at `callee` against its capacity ("" when they fit)."""
    unit = "connections" if kind == "connections" else "calls/s"
    total, limits = admitted
    what = f"the callers' {'connection caps' if kind == 'connections' else 'rate limits'} ({'; '.join(limits)})"
    if capacity is None:
        return f"the capacity of {callee} cannot be found: {basis}"
    if total is None:
        return f"{what}: the {unit} admitted to {callee} are unbounded (measured: ∞; maximum {fmt(maximum)} x its capacity of {fmt(capacity)} {unit})"
    if total > maximum * capacity * (1 + 1e-9):
        return (f"{what} admit {fmt(total)} {unit} to {callee}, {fmt(total / capacity)} x what {serving} serve ({fmt(capacity)} {unit}: "
                f"{basis}; maximum {fmt(maximum)} x): the callers together can overload it")
    return ""


def _mesh_within_capacity(network: PolicyResource, meshes: Sequence[MeshCall], declared: Mapping[str, Any], maximum: float,
                          report_violation: StackReport) -> None:
    """Under a mesh, per version the calls reach: the buckets that count them (a Linkerd version's own, Istio's
    caller-side ones at the version's share) against the version's deployed pods. A call no mesh proxy carries is
    call-timeouts-and-limits' finding."""
    groups: dict[tuple[str, str], list[tuple[MeshCall, MeshVersion]]] = {}
    for call in meshes:
        for version in call.versions if call.mesh is not None else ():
            groups.setdefault((call.callee, version.workload), []).append((call, version))
    for (callee, workload), found in groups.items():
        first, version = found[0]
        kind = "connections" if first.protocol == "tcp" else "rate"
        admitted = _admitted([(c.route, v.connections if kind == "connections" else v.rates) for c, v in found])
        spec = get(declared, workload)
        capacity, basis = None, f"the report declares no response_time_ms/max_concurrency for workload '{workload}'"
        if spec is not None and get(spec, "max_concurrency") is not None and items(get(spec, "response_time_ms")):
            capacity, basis = _served_capacity(Served(workload, None, version.pods), spec, kind), f"{workload} × {version.pods}"
        name = f"'{workload}'" if workload == callee else f"'{workload}' (a version of '{callee}')"
        pods = f"its {version.pods} deployed pod{'s' if version.pods != 1 else ''}"
        verdict = _capacity_verdict(kind, admitted, capacity, basis, maximum, name, pods)
        if verdict:
            where = first.where if first.resource is not None else f"AppNetwork '{network.name}'"
            report_violation(f"{where}, calls carried by {first.mesh}: {verdict}. Fix: {_MESH_FIX[CALL_LIMITS_WITHIN_CAPACITY.name]}",
                             first.resource.urn if first.resource is not None else network.urn)


# -- grpc-balanced-per-request ---------------------------------------------------------------------------------------

def _grpc_callees(report: Mapping[str, Any], calls: Sequence[DeployedCall]) -> dict[str, list[str]]:
    """grpc callee -> its declared callers; also every callee a deployed config reaches with grpc_pass."""
    callees: dict[str, list[str]] = {}
    for caller, callee, protocol, _ in _edges(report):
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
    meshes = mesh_calls(_resources(args), [e for e in _unserved(report, calls) if e[2] == "grpc"])
    for callee, callers in callees.items():
        mine = [c for c in calls if c.callee == callee]
        for mesh in (m for m in meshes if m.callee == callee and not mine):
            found = _mesh_per_request_problems(mesh)
            if found:
                report_violation(*_mesh_message(network, mesh, "; ".join(found), GRPC_PER_REQUEST))
        for call in mine:
            found = _proxy_problems(call)
            if found:
                report_violation(_message(call, "; ".join(found), GRPC_PER_REQUEST), call.urn)
        for resource, how in _bypass(args.resources, workloads, callee, callers, mine) if mine else ():
            report_violation(f"gRPC callers of '{callee}' can reach its replicas around its proxy: {how} (required: callers reach "
                             f"only the proxy). Fix: {GRPC_PER_REQUEST.remediation}", resource.urn)


def _mesh_per_request_problems(call: MeshCall) -> list[str]:
    """A mesh balances a gRPC call per request when the caller's own proxy handles each request (it picks a pod per
    request) and nothing reaches the callee around such a proxy: the callee's pods are in the mesh (its authorization
    admits meshed identities only) and the caller's proxy is not skipped for the port; and the mesh's rule does not
    pin a caller to one pod (a hash of the source address, PASSTHROUGH)."""
    if call.mesh is None:
        return [f"no service proxy serves it and the pods of {call.caller} run no mesh proxy ({call.carried}): each caller pod holds one "
                "HTTP/2 connection through the callee's ClusterIP, which kube-proxy pins to one pod"]
    found = [] if call.mesh in (LINKERD, ISTIO) or not call.versions else [f"the caller's pods are captured per connection ({call.carried})"]
    if call.bypass:
        found.append(f"the caller's pods send port {call.port} around their proxy ({call.bypass}): their HTTP/2 connection goes to the "
                     "ClusterIP, one pod per connection")
    for version in call.versions:
        if version.outside:
            found.append(f"the pods of {version.workload} are not in the mesh ({version.outside}): nothing holds their callers to a mesh "
                         "proxy — one without it (or skipping it) holds an HTTP/2 connection to one pod — and the mesh's per-caller "
                         "authorization is not enforced there")
    return [*found, *call.balancing]


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


# -- grpc-replicas-per-call ------------------------------------------------------------------------------------------

def _replicas_per_call(args: StackValidationArgs, config: dict[str, Any], report_violation: StackReport) -> None:
    deployed = deployed_calls(args.resources)
    calls = [c for c in deployed if c.forward == "grpc_pass"]
    reported = _report(args, quiet=True)
    grpc = [e for e in _unserved(reported[1], deployed) if e[2] == "grpc"] if reported is not None else []
    meshes = [m for m in mesh_calls(_resources(args), grpc) if m.mesh]
    if not calls and not meshes:
        args.not_applicable("no deployed gRPC service proxy and no gRPC call carried by a mesh")
        return
    for mesh in meshes:
        if mesh.opaque and reported is not None:
            text = (f"the mesh carries port {mesh.port} as a byte stream ({mesh.opaque}): it balances connections, so each caller pod's "
                    "HTTP/2 connection, and every call on it, goes to one pod")
            report_violation(*_mesh_message(reported[0], mesh, text, GRPC_REPLICAS_PER_CALL))
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
