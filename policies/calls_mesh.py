"""What a service mesh applies to each declared call, read from its deployed resources — nothing from `components`.

Under `kubernetes.mesh: linkerd | istio` no netopt proxy carries the calls: the mesh's proxies in the pods do, as
its resources configure them. Per declared call (`report.edges`: caller, callee, protocol, port — declarations,
as on the nginx path), this module reads the facts `policies.calls` judges, as `DeployedCall` carries them for a
service proxy, following each mesh's documented behaviour:

- **Who carries it**: the mesh proxy of the caller's pods (`mesh_index.Membership`): it picks a pod per request,
  times the request out and (Istio) limits it. A caller without one dials the callee's ClusterIP itself.
- **Where it goes**: the mesh routes attached to the callee's Service (Gateway API HTTPRoute/GRPCRoute with a
  parentRef of kind Service, the callee's name and no port or the called one); each rule's backendRefs are
  Services whose pods are a version, its share the largest weight fraction a rule gives it. No route: the callee
  Service's own pods.
- **The timeout in force** (http, grpc), per rule: Linkerd's `timeout.linkerd.io/request` on the route, else the
  rule's `timeouts.request`, else — only when the route carries no timeout annotation at all — the one on the
  callee's Service (linkerd.io/2/reference/timeouts; a ServiceProfile for the Service overrides them all and is not
  read here). Istio reads only `timeouts.request`. The call's timeout is its loosest rule's (none if one has none);
  a zero duration disables it (Gateway API).
- **The rate buckets that count it**, per version, in requests/s over all the pods that keep them:
  - Linkerd, in the version's pods: the HTTPLocalRateLimitPolicy of the one Server selecting them on the called
    port, when that Server's proxyProtocol carries limits (unknown, HTTP/1, HTTP/2: the policy controller sends a
    gRPC, opaque or TLS Server's proxy none) and the pods run Linkerd's proxy. `total` counts every client; then the
    override whose clientRefs name the caller's ServiceAccount (one bucket shared by the override's clients; the
    last such override wins; a 0 rps override is dropped), else `identity` (a bucket per client identity; clients
    without one share a bucket) — linkerd2-proxy `LocalRateLimit::check`. Value: rps × the version's pods.
  - Istio, in the caller's sidecars: a token bucket on the callee's outbound virtual host (`<callee>.<namespace>.
    svc.<domain>:<port>`) from an EnvoyFilter selecting the caller — counted only if an EnvoyFilter selecting it
    also inserts the `envoy.filters.http.local_ratelimit` HTTP filter (the route's config alone is inert), enables
    and enforces it for 100 % of requests (Envoy's default is 0 %) and keeps it per Envoy, not per downstream
    connection. Value: tokens_per_fill / fill_interval × the virtual host's Envoy routes (a per-route config keeps a
    bucket per route: one per match of the callee's route rules) × the caller's most pods × the version's share.
- **The concurrency caps** (Istio): the connectionPool of the DestinationRule that applies to the caller's sidecar for
  the version's host — one whose workloadSelector selects the caller, else one without a selector; its
  portLevelSettings for the port replace it — `http.http2MaxRequests` (http, grpc) or `tcp.maxConnections` (tcp),
  × the caller's most pods. Linkerd has no concurrency limit.
- **tcp timeouts** (Istio): that rule's `tcp.connectTimeout` and `tcp.idleTimeout`. Linkerd has none for an opaque
  port, nor any limit: a tcp call under Linkerd cannot be bounded.
- **How the mesh balances** (Istio): that rule's loadBalancer; `consistentHash.useSourceIp` pins each caller pod to
  one callee pod, PASSTHROUGH sends to the address dialed (the ClusterIP: one pod per connection).
- **Whether it sees requests on the port**: not opaque to Linkerd (`config.linkerd.io/opaque-ports` on the Service,
  the pods or their namespace; a Server saying `opaque`), not TCP to Istio (the Service port's appProtocol, else its
  name's prefix; neither: Istio detects HTTP/1.1 and HTTP/2); and the caller's pods do not send the port around
  their proxy (`config.linkerd.io/skip-outbound-ports`, `traffic.sidecar.istio.io/excludeOutboundPorts`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from policies.calls_deployed import VARIES, Bucket
from policies.deployed_configs import Resource
from policies.mesh_index import AMBIENT, ISTIO, LINKERD, Found, Membership, MeshIndex, Pods, label_selected, ports_of
from policies.model import get, items

LINKERD_POLICY = "policy.linkerd.io"
ISTIO_NETWORKING = "networking.istio.io"
GATEWAY_API = "gateway.networking.k8s.io"
LOCAL_RATE_LIMIT = "envoy.filters.http.local_ratelimit"
_LIMITING_PROTOCOLS = ("unknown", "HTTP/1", "HTTP/2")  # Server proxyProtocols whose proxies get the rate limit
_STREAM_PROTOCOLS = ("tcp", "tls", "https", "mongo", "mysql", "redis", "udp")  # a Service port Istio carries as bytes
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DENOMINATOR = {"HUNDRED": 100, "TEN_THOUSAND": 10_000, "MILLION": 1_000_000}


def seconds(text: Any) -> float | None:
    """A Gateway API, Go or protobuf duration (`2s`, `1500ms`, `1m30s`, `0.5s`) in seconds; None when it is not one."""
    value = str(text).strip() if text is not None else ""
    parts = _DURATION.findall(value)
    if not value or "".join(n + u for n, u in parts) != value:
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


@dataclass(frozen=True)
class MeshVersion:
    """One version the call reaches: its deployed pods, its share of the call, and the buckets that count the call."""

    workload: str
    share: float
    pods: int
    rates: tuple[Bucket, ...]
    connections: tuple[Bucket, ...]
    no_rate: str  # why no rate bucket counts the call here ("" when one does)
    no_connections: str
    outside: str = ""  # why its pods are not in the mesh with a per-request proxy ("" when they are)


@dataclass(frozen=True)
class MeshCall:
    """One declared call as the mesh's deployed resources carry it."""

    caller: str
    callee: str
    protocol: str
    port: int | None
    mesh: str | None  # the caller's mesh proxy: LINKERD, ISTIO, AMBIENT; None: it dials the callee itself
    carried: str  # why (the injection mark that decides)
    resource: Found | None  # the callee's mesh route, else its Service: where a finding is attached
    timeout_s: float | None
    timeout_from: str  # which resource and field set it, or why there is none
    connect_timeout_s: float | None
    idle_timeout_s: float | None
    versions: tuple[MeshVersion, ...]
    balancing: tuple[str, ...]  # what keeps the mesh from balancing each request
    opaque: str  # why the mesh sees connections rather than requests on the port ("" when it sees requests)
    problems: tuple[str, ...]
    bypass: str = ""  # the caller's mark that sends its calls to the port around its own proxy

    @property
    def route(self) -> str:
        return f"{self.caller}.{self.callee}"

    @property
    def where(self) -> str:
        return self.resource.where if self.resource is not None else f"the call {self.route}"


def mesh_calls(resources: Iterable[Resource], edges: Sequence[tuple[str, str, str, int | None]]) -> list[MeshCall]:
    """The mesh's view of each declared call (caller, callee, protocol, port)."""
    if not edges:  # every call is a service proxy's (or none is declared): no index to build
        return []
    index = MeshIndex(resources)
    return [_call(index, caller, callee, protocol, None if port is None else int(float(port))) for caller, callee, protocol, port in edges]


# -- one call -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Route:
    resource: Found
    rules: tuple[Mapping[str, Any], ...]


def _call(index: MeshIndex, caller: str, callee: str, protocol: str, port: int | None) -> MeshCall:
    callers = index.workload(caller)
    carried = index.memberships(callers)
    namespace = callers[0].namespace if callers else next((p.namespace for p in index.workload(callee)), "default")
    service = index.service(callee, namespace)
    problems: list[str] = [] if callers else [f"no Deployment or StatefulSet runs the caller '{caller}'"]
    if service is None:
        return MeshCall(caller, callee, protocol, port, carried.mesh, carried.why, None, None, "no Service", None, None, (), (), "",
                        (*problems, f"no Service '{callee}' in namespace {namespace}: the name its callers dial resolves to nothing"))
    if port is None:
        port = next((int(float(get(p, "port"))) for p in items(get(service.props, "spec", "ports")) if get(p, "port") is not None), None)
    routes = _routes(index, service, port)
    backends = _versions(index, service, port, routes, problems)
    timeout, timeout_from = (None, "") if protocol == "tcp" else _timeout(index, carried, service, routes)
    bucket = istio_bucket(index, callers, service, port, sum(map(_envoy_routes, routes)) or 1) \
        if carried.mesh == ISTIO and protocol != "tcp" else (None, "", "")
    found = [_version(index, carried, callers, protocol, b, bucket) for b in backends]
    found = [replace(f, version=replace(f.version, outside=_outside(index, b.pods))) for f, b in zip(found, backends, strict=True)]
    opaque = _opaque(index, carried.mesh, service, port, [p for b in backends for p in b.pods])
    if opaque and protocol != "tcp":  # requests the mesh does not see are neither timed out nor limited as requests
        timeout, timeout_from = None, f"the mesh carries port {port} as a byte stream ({opaque}): no route timeout applies"
        why = f"the mesh carries port {port} as a byte stream: no request limit or request pool applies"
        found = [replace(f, version=replace(f.version, rates=(), connections=(), no_rate=why, no_connections=why)) for f in found]
    istio_tcp = protocol == "tcp" and carried.mesh == ISTIO
    return MeshCall(
        caller, callee, protocol, port, carried.mesh, carried.why, routes[0].resource if routes else service, timeout, timeout_from,
        _loosest([f.connect for f in found]) if istio_tcp else None, _loosest([f.idle for f in found]) if istio_tcp else None,
        tuple(f.version for f in found), tuple(dict.fromkeys(b for f in found for b in f.balancing)), opaque, tuple(problems),
        next((f"{p.resource.where}: {mark}" for p in callers if (mark := index.skipped(p, port))), ""))


def _routes(index: MeshIndex, service: Found, port: int | None) -> list[_Route]:
    """The mesh routes attached to the Service (a parentRef of kind Service, its name, its namespace, its port or none)."""
    found = []
    for kind in ("HTTPRoute", "GRPCRoute"):
        for route in index.of_kind(kind, GATEWAY_API):
            for parent in items(get(route.props, "spec", "parentRefs")):
                same = (get(parent, "kind") == "Service" and str(get(parent, "group", default="")) in ("", "core")
                        and get(parent, "name") == service.object_name
                        and str(get(parent, "namespace", default=route.namespace)) == service.namespace
                        and (get(parent, "port") is None or port is None or int(float(get(parent, "port"))) == port))
                if same:
                    found.append(_Route(route, tuple(items(get(route.props, "spec", "rules")))))
                    break
    return found


@dataclass(frozen=True)
class _Backend:
    workload: str
    pods: list[Pods]
    share: float
    service: Found  # the Service the mesh sends to (its host is the version's in Istio's rules)
    port: int | None


def _versions(index: MeshIndex, service: Found, port: int | None, routes: list[_Route], problems: list[str]) -> list[_Backend]:
    """Each version the call reaches: the routes' backends (the largest share any rule gives each), else the
    Service's own pods."""
    found: dict[str, _Backend] = {}
    targets: list[tuple[Found, int | None, float, str]] = [(service, port, 1.0, "")] if not routes else []
    for route in routes:
        for rule in route.rules:
            backends = [b for b in items(get(rule, "backendRefs"))
                        if get(b, "kind", default="Service") == "Service" and str(get(b, "group", default="")) in ("", "core")]
            total = sum(float(get(b, "weight", default=1)) for b in backends)
            for b in backends:
                backend = index.service(str(get(b, "name")), str(get(b, "namespace", default=route.resource.namespace)))
                share = float(get(b, "weight", default=1)) / total if total else 0.0
                if backend is None:
                    problems.append(f"{route.resource.where} sends to the Service '{get(b, 'name')}', which is not deployed")
                elif share > 0:
                    number = get(b, "port")
                    targets.append((backend, int(float(number)) if number is not None else port, share, route.resource.where))
    for backend, backend_port, share, where in targets:
        selected = index.service_pods(backend)
        if not selected:
            problems.append(f"{where or 'the callee'}: the Service '{backend.object_name}' selects no deployed pods")
        for workload in dict.fromkeys(p.workload for p in selected):
            pods = [p for p in selected if p.workload == workload]
            known = found.get(workload)
            if known is None or share > known.share:
                found[workload] = _Backend(workload, pods, share, backend, backend_port)
    return list(found.values())


def _outside(index: MeshIndex, pods: Sequence[Pods]) -> str:
    membership = index.memberships(pods)
    return "" if membership.mesh is not None and membership.per_request else membership.why


def _loosest(values: Sequence[float | None]) -> float | None:
    """The loosest of several bounds: None (unbounded) if one is."""
    return None if not values or any(v is None for v in values) else max(v for v in values if v is not None)


# -- timeouts -----------------------------------------------------------------------------------------------------

def _timeout(index: MeshIndex, carried: Membership, service: Found, routes: list[_Route]) -> tuple[float | None, str]:
    """The request timeout the caller's mesh proxy applies and where it comes from (the loosest rule's)."""
    if carried.mesh not in (LINKERD, ISTIO) and not (carried.mesh == AMBIENT and carried.per_request):
        return None, f"no mesh proxy applies a route's timeout to the caller's requests ({carried.why})"
    linkerd = carried.mesh == LINKERD
    if linkerd and _service_profile(index, service):
        return None, f"the ServiceProfile {_service_profile(index, service)} overrides every timeout of the Service (not read here)"
    service_timeout = service.marks().get("timeout.linkerd.io/request") if linkerd else None
    service_source = f"Service '{service.name}' annotation timeout.linkerd.io/request"
    found: list[tuple[float | None, str]] = []
    for route in routes:
        annotations = {k: v for k, v in route.resource.marks().items() if k.startswith("timeout.linkerd.io/")} if linkerd else {}
        for i, rule in enumerate(route.rules):
            field = f"{route.resource.where} rules[{i}]"
            if "timeout.linkerd.io/request" in annotations:
                found.append(_duration(annotations["timeout.linkerd.io/request"], f"{route.resource.where} annotation timeout.linkerd.io/request"))
            elif get(rule, "timeouts", "request") is not None:
                found.append(_duration(get(rule, "timeouts", "request"), f"{field}.timeouts.request"))
            elif service_timeout is not None and not annotations:
                found.append(_duration(service_timeout, service_source))
            else:
                found.append((None, f"{field} sets no request timeout"))
    if not routes:
        found.append(_duration(service_timeout, service_source) if service_timeout is not None
                     else (None, f"no mesh route is attached to the Service '{service.name}', and it has no timeout annotation"))
    unbounded = next((f for f in found if f[0] is None), None)
    return unbounded if unbounded is not None else max(found, key=lambda f: f[0] or 0.0)


def _duration(text: Any, source: str) -> tuple[float | None, str]:
    value = seconds(text)
    if value is None:
        return None, f"{source} is {text!r}, no duration"
    return (None, f"{source} is {text}, which disables the timeout") if value == 0 else (value, f"{source}: {text}")


def _service_profile(index: MeshIndex, service: Found) -> str:
    prefix = f"{service.object_name}.{service.namespace}.svc."
    return next((p.where for p in index.of_kind("ServiceProfile") if p.object_name.startswith(prefix)), "")


# -- limits per version -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Found:
    version: MeshVersion
    connect: float | None
    idle: float | None
    balancing: tuple[str, ...]


def _version(index: MeshIndex, carried: Membership, callers: list[Pods], protocol: str, backend: _Backend,
             bucket: tuple[float | None, str, str]) -> _Found:
    """What counts the call at one version. `bucket`: Istio's caller-side token bucket on the callee's virtual host
    (requests/s per caller pod, where, why none), shared by every version at its share."""
    count = sum(p.count for p in backend.pods)
    if carried.mesh == LINKERD:
        if protocol == "tcp":
            none = "Linkerd has no rate or connection limit and no timeout for a tcp (opaque) port"
            return _Found(MeshVersion(backend.workload, backend.share, count, (), (), none, none), None, None, ())
        found, why = linkerd_buckets(index, callers, backend.pods, *index.target_port(backend.service, backend.port))
        return _Found(MeshVersion(backend.workload, backend.share, count, tuple(found), (), why, "Linkerd has no concurrency limit"), None, None, ())
    if carried.mesh != ISTIO:
        none = f"no mesh proxy in the caller's pods keeps a limit ({carried.why})" if carried.mesh is None else \
            f"Istio ambient applies no EnvoyFilter and no sidecar connection pool ({carried.why})"
        return _Found(MeshVersion(backend.workload, backend.share, count, (), (), none, none), None, None, ())
    most, name = sum(p.most for p in callers), callers[0].workload
    policy, where, why = destination_rule(index, callers, backend.service, backend.port)
    pool = get(policy, "connectionPool", default={})
    field = "tcp.maxConnections" if protocol == "tcp" else "http.http2MaxRequests"
    cap = get(pool, *field.split("."))
    # each version's host is an Envoy cluster of its own, with its own pool in every caller pod: no share here
    connections = (Bucket(f"{where} connectionPool.{field} (× {most} {name} pods)", f"{where}#{name}", float(cap) * most),) \
        if cap is not None and where else ()
    no_connections = "" if connections else (why or f"{where} sets no connectionPool.{field} (Istio's default: 2^32-1)")
    rate, bucket_where, no_rate = bucket
    rates: tuple[Bucket, ...] = ()
    if rate is not None:
        key = VARIES if rate == float("inf") else f"{bucket_where}#{name}"
        rates = (Bucket(f"{bucket_where} (× {most} {name} pods)", key, rate * most * backend.share),)
    return _Found(MeshVersion(backend.workload, backend.share, count, rates, connections, no_rate, no_connections),
                  seconds(get(pool, "tcp", "connectTimeout")), seconds(get(pool, "tcp", "idleTimeout")), _balancing(policy, where))


def linkerd_buckets(index: MeshIndex, callers: Sequence[Pods], pods: Sequence[Pods], port: int | None,
                    port_name: str | None) -> tuple[list[Bucket], str]:
    """The buckets of the version's pods that count the callers' requests, and why there are none."""
    namespace = pods[0].namespace
    membership = index.memberships(pods)
    if membership.mesh != LINKERD:
        return [], f"its pods run no Linkerd proxy to keep a limit ({membership.why})"
    servers = [s for s in index.of_kind("Server", LINKERD_POLICY) if s.namespace == namespace and _server_port(s, port, port_name, pods)
               and any(label_selected(get(s.props, "spec", "podSelector"), p.labels) for p in pods)]
    if len(servers) != 1:
        return [], (f"no Server selects its pods on port {port}" if not servers else
                    f"{len(servers)} Servers select its pods on port {port} ({', '.join(s.where for s in servers)}): Linkerd applies one")
    (server,) = servers
    protocol = str(get(server.props, "spec", "proxyProtocol", default="unknown"))
    if protocol not in _LIMITING_PROTOCOLS:
        return [], (f"{server.where} says proxyProtocol {protocol}: Linkerd's policy controller sends its proxies no rate limit "
                    f"(only for {', '.join(_LIMITING_PROTOCOLS)})")
    policies = [p for p in index.of_kind("HTTPLocalRateLimitPolicy", LINKERD_POLICY) if p.namespace == namespace
                and get(p.props, "spec", "targetRef", "kind") == "Server" and get(p.props, "spec", "targetRef", "name") == server.object_name]
    if len(policies) != 1:
        return [], (f"no HTTPLocalRateLimitPolicy targets {server.where}" if not policies else
                    f"{len(policies)} HTTPLocalRateLimitPolicies target {server.where}: Linkerd accepts one per Server")
    (policy,) = policies
    count, where = sum(p.count for p in pods), policy.where
    spec = get(policy.props, "spec", default={})
    buckets = []
    total = float(get(spec, "total", "requestsPerSecond", default=0))
    if total > 0:
        buckets.append(Bucket(f"{where} total (× {count} pods)", f"{where}#total", total * count))
    meshed = index.memberships(callers).mesh == LINKERD
    account, caller_namespace = (callers[0].account, callers[0].namespace) if callers and meshed else ("", "")
    chosen: tuple[int, float] | None = None
    for i, override in enumerate(items(get(spec, "overrides"))):
        named = any(get(r, "kind") == "ServiceAccount" and get(r, "name") == account
                    and str(get(r, "namespace", default="") or policy.namespace) == caller_namespace for r in items(get(override, "clientRefs")))
        if named and float(get(override, "requestsPerSecond", default=0)) > 0:  # an unmeshed caller has no account to name
            chosen = (i, float(get(override, "requestsPerSecond")))
    identity = float(get(spec, "identity", "requestsPerSecond", default=0))
    if chosen is not None:
        buckets.append(Bucket(f"{where} overrides[{chosen[0]}] (× {count} pods)", f"{where}#overrides[{chosen[0]}]", chosen[1] * count))
    elif identity > 0:
        buckets.append(Bucket(f"{where} identity (× {count} pods)", f"{where}#identity:{account or '-'}", identity * count))
    who = f"ServiceAccount {account}" if meshed else "a client without a mesh identity"
    return buckets, "" if buckets else f"{where} has no total, no override naming {who} and no identity limit"


def _server_port(server: Found, port: int | None, port_name: str | None, pods: Sequence[Pods]) -> bool:
    wanted = get(server.props, "spec", "port")
    if isinstance(wanted, str) and not wanted.isdigit():
        return wanted == port_name or any(p.ports.get(wanted) == port for p in pods)
    return wanted is not None and int(float(wanted)) == port


def _envoy_routes(route: _Route) -> int:
    """The Envoy routes Istio makes of a mesh route: one per match of each rule (a rule without matches is one)."""
    return sum(max(1, len(items(get(rule, "matches")))) for rule in route.rules)


def _applies(envoy_filter: Found, callers: Sequence[Pods]) -> bool:
    if envoy_filter.namespace not in ({p.namespace for p in callers} | {"istio-system"}):
        return False
    return all(label_selected(get(envoy_filter.props, "spec", "workloadSelector", "labels"), p.labels) for p in callers)


def _outbound(patch: Any) -> bool:
    return str(get(patch, "match", "context", default="ANY")) in ("SIDECAR_OUTBOUND", "ANY")


def istio_bucket(index: MeshIndex, callers: Sequence[Pods], service: Found, port: int | None, routes: int) -> tuple[float | None, str, str]:
    """(requests/s one caller pod admits to the Service, the bucket's EnvoyFilter, why none): inf for a per-connection
    bucket; the loosest when several patches write one."""
    filters = [f for f in index.of_kind("EnvoyFilter", ISTIO_NETWORKING) if callers and _applies(f, callers)]
    inserted = any(get(p, "applyTo") == "HTTP_FILTER" and _outbound(p) and get(p, "patch", "value", "name") == LOCAL_RATE_LIMIT
                   and str(get(p, "patch", "operation")) in ("INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST", "ADD")
                   for f in filters for p in items(get(f.props, "spec", "configPatches")))
    ports = str(port) if port is not None else "[0-9]+"  # None: any port of the Service
    host = re.compile(rf"{re.escape(service.object_name)}\.{re.escape(service.namespace)}\.svc\.[A-Za-z0-9.-]+:{ports}")
    found: list[tuple[float, str]] = []
    notes = []
    for envoy_filter in filters:
        for i, patch in enumerate(items(get(envoy_filter.props, "spec", "configPatches"))):
            vhost = get(patch, "match", "routeConfiguration", "vhost", default={})
            config = get(patch, "patch", "value", "typed_per_filter_config", LOCAL_RATE_LIMIT)
            if get(patch, "applyTo") not in ("HTTP_ROUTE", "VIRTUAL_HOST") or not _outbound(patch) or config is None \
                    or not host.fullmatch(str(get(vhost, "name", default=""))):
                continue
            where = f"EnvoyFilter '{envoy_filter.name}' configPatches[{i}]"
            if get(vhost, "route", "name") is not None or get(vhost, "route", "action", default="ANY") != "ANY":
                notes.append(f"{where} limits only some routes of the virtual host")
                continue
            rate, note = _token_bucket(config)
            if rate is None:
                notes.append(f"{where}: {note}")
            else:
                found.append((rate * routes, where))
    if not found:
        return None, "", "; ".join(notes) or (f"no EnvoyFilter selecting the caller puts a token bucket on its outbound virtual host "
                                              f"{service.object_name}.{service.namespace}.svc.<domain>:{port}")
    rate, where = max(found)
    if not inserted:
        return None, where, f"{where} sets a bucket, but no EnvoyFilter selecting the caller inserts the {LOCAL_RATE_LIMIT} HTTP filter: it is inert"
    return rate, where, ""


def _token_bucket(config: Any) -> tuple[float | None, str]:
    """Requests/s of a LocalRateLimit per-route config (direct, or in a TypedStruct), or why it limits nothing."""
    value = get(config, "value", default={}) if "TypedStruct" in str(get(config, "@type", default="")) else config
    kind = str(get(config, "type_url", default=get(config, "@type", default="")))
    if not kind.endswith("envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"):
        return None, f"its config is a {kind or 'untyped value'}, not Envoy's LocalRateLimit"
    for name in ("filter_enabled", "filter_enforced"):
        fraction = get(value, name, "default_value", default={})
        numerator = float(get(fraction, "numerator", default=0))
        if numerator < _DENOMINATOR.get(str(get(fraction, "denominator", default="HUNDRED")), 100):
            denominator = get(fraction, "denominator", default="HUNDRED")
            return None, f"{name} is {numerator:g} of {denominator} (Envoy's default: 0 %): not every request is limited"
    interval = seconds(get(value, "token_bucket", "fill_interval"))
    if not interval:
        return None, "its token_bucket has no fill_interval"
    if get(value, "local_rate_limit_per_downstream_connection") is True:
        return float("inf"), ""
    return float(get(value, "token_bucket", "tokens_per_fill", default=1)) / interval, ""


def _host_matches(rule: Found, service: Found) -> bool:
    host = str(get(rule.props, "spec", "host", default=""))
    name, namespace = service.object_name, service.namespace
    return host in (name, f"{name}.{namespace}", f"{name}.{namespace}.svc") or host.startswith(f"{name}.{namespace}.svc.") \
        or (host == name and rule.namespace == namespace)


def destination_rule(index: MeshIndex, callers: Sequence[Pods], service: Found, port: int | None) -> tuple[Mapping[str, Any], str, str]:
    """(traffic policy, rule, why not) of the DestinationRule the callers' sidecars apply to the Service: one selecting
    them, else one without a selector (the loosest pool when several match), its portLevelSettings for the port."""
    rules = [r for r in index.of_kind("DestinationRule", ISTIO_NETWORKING) if _host_matches(r, service)]
    caller_namespace = callers[0].namespace if callers else service.namespace
    selecting = [r for r in rules if get(r.props, "spec", "workloadSelector") is not None and r.namespace == caller_namespace
                 and all(label_selected(get(r.props, "spec", "workloadSelector"), p.labels) for p in callers)]
    plain = [r for r in rules if get(r.props, "spec", "workloadSelector") is None]
    candidates = selecting or [r for r in plain if r.namespace == caller_namespace] or plain
    if not candidates:
        return {}, "", f"no DestinationRule for {service.object_name} applies to the caller's sidecar"
    policies = [(r, _port_policy(get(r.props, "spec", "trafficPolicy", default={}), port)) for r in candidates]
    rule, policy = max(policies, key=lambda rp: _pool_size(rp[1]))
    return policy, rule.where, ""


def _port_policy(policy: Mapping[str, Any], port: int | None) -> Mapping[str, Any]:
    """Port-level settings replace the destination's for their port (Istio: fields left out take their defaults)."""
    for entry in items(get(policy, "portLevelSettings")):
        if port is not None and get(entry, "port", "number") is not None and int(float(get(entry, "port", "number"))) == port:
            return dict(entry)
    return policy


def _pool_size(policy: Mapping[str, Any]) -> float:
    pool = get(policy, "connectionPool", default={})
    values = [get(pool, "http", "http2MaxRequests"), get(pool, "tcp", "maxConnections")]
    return max((float(v) if v is not None else float("inf")) for v in values)


def _balancing(policy: Mapping[str, Any], where: str) -> tuple[str, ...]:
    balancer = get(policy, "loadBalancer", default={})
    if get(balancer, "consistentHash", "useSourceIp") is True:
        return (f"{where} balances by consistentHash on the source IP: each caller pod's requests all go to one callee pod",)
    if get(balancer, "simple") == "PASSTHROUGH":
        return (f"{where} says PASSTHROUGH: requests go to the address dialed (the ClusterIP), kube-proxy picks a pod per connection",)
    return ()


# -- what the mesh sees on the port -------------------------------------------------------------------------------

def _opaque(index: MeshIndex, mesh: str | None, service: Found, port: int | None, pods: Sequence[Pods]) -> str:
    """Why the caller's mesh carries the port as a byte stream (one pod per connection, no request seen); "" when it
    sees each request (or there is no mesh)."""
    if mesh in (ISTIO, AMBIENT):
        return _istio_opaque(service, port)
    if mesh != LINKERD:
        return ""
    target, name = index.target_port(service, port)
    marked = "config.linkerd.io/opaque-ports"
    if port in ports_of(service.marks().get(marked, "")):
        return f"the Service '{service.name}' marks port {port} opaque to Linkerd ({marked})"
    for found in pods:
        namespace = index.namespaces.get(found.namespace)
        ports = found.annotations.get(marked) or (namespace.marks().get(marked, "") if namespace is not None else "")
        if target in ports_of(ports):
            return f"the pods of {found.workload} mark port {target} opaque to Linkerd ({marked})"
    for server in index.of_kind("Server", LINKERD_POLICY):
        if get(server.props, "spec", "proxyProtocol") == "opaque" and _server_port(server, target, name, pods) and \
                any(label_selected(get(server.props, "spec", "podSelector"), p.labels) for p in pods):
            return f"{server.where} says proxyProtocol opaque for port {target}"
    return ""


def _istio_opaque(service: Found, port: int | None) -> str:
    entry: Any = next((p for p in items(get(service.props, "spec", "ports")) if port is None or int(float(get(p, "port", default=-1))) == port), {})
    declared = str(get(entry, "appProtocol", default="") or str(get(entry, "name", default="")).partition("-")[0]).lower()
    if declared in _STREAM_PROTOCOLS:  # anything else Istio sees as HTTP, or sniffs (HTTP/1.1, HTTP/2)
        return f"the Service '{service.name}' port {port} declares {declared} (appProtocol, else the port name): Istio carries it as TCP"
    return ""
