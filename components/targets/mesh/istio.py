"""Istio's resources for the calls (`kubernetes.mesh: istio`; sidecar mode — ambient waypoints ignore EnvoyFilters).

- **Identity and authorization per edge**: every workload runs as its own ServiceAccount, its SPIFFE identity
  `cluster.local/ns/<ns>/sa/<w>` (Istio reads `cluster.local` in a policy as the mesh's own trust domain). An
  `AuthorizationPolicy` named `allow-nothing` denies every request in the namespace that no ALLOW policy admits; one
  ALLOW policy per edge (client → server, `source.principals`, the server's port) admits the declared callers and,
  for a routed workload, the gateway. `principals`, not `serviceAccounts` (CVE-2026-39350).
- **Balancing, connection pool, passive health**: a `DestinationRule` per called version: `loadBalancer` from the
  callee's `balancing` (least_conn and latency_optimal → LEAST_REQUEST, the round-robin family → ROUND_ROBIN,
  ip_hash and consistent_hash → consistentHash), the connect timeout (a tcp callee's idle timeout too: Istio's
  default is 1 h), `outlierDetection` from `gateway.passive_health`. Per edge, the same rule again with a
  `workloadSelector` on the caller's pods adds its `connectionPool`: Envoy holds the pool in each caller pod's
  sidecar, so each pod gets ⌊max_concurrency·share/pods⌋ (pods: the caller's most replicas) requests and
  connections in flight.
- **Rate limit per caller, and what per caller means here**: Istio has no first-class local rate limit; it is an
  `EnvoyFilter` (`envoy.filters.http.local_ratelimit`). netopt puts it in each caller's own sidecar, on its
  outbound route to the callee (one filter per caller: the HTTP filter, then a token bucket per callee's virtual
  host): each caller pod keeps ⌊limit/pods⌋ req/s of its call's limit (pods: the caller's most replicas, as for the
  pool; `components.plan.mesh_limits`), burst
  ⌈burst/pods⌉. So the limit is per caller, kept on the caller's side: its application cannot go around its sidecar
  (the callee admits only mTLS principals, which only the sidecar holds), and the gateway's requests to a routed
  callee are not counted (a limit in the callee's inbound sidecar would count them). The Envoy payload is not
  covered by any CRD schema (`patch.value` preserves unknown fields): it was not tried on a cluster here.
- **Timeouts, retries, splits**: an `HTTPRoute` per callee (also for gRPC: GRPCRoute v1.2.1 has no timeouts and no
  retry, and Istio reads no timeout annotations): the split, `timeouts.request` (all tries) and `backendRequest` (one
  try), and `retry` (Gateway API experimental channel): `attempts` tries − 1 (0 turns Istio's default retries
  off), `codes` only with `non_idempotent: true` (Envoy replays any method on a status), else only connection
  failures are retried.
- **Injection**: the namespace label `istio-injection: enabled`; the restricted Pod Security Standard needs the
  Istio CNI node agent (no `istio-init` with NET_ADMIN). The gateway's listen port is excluded from the sidecar
  (`traffic.sidecar.istio.io/excludeInboundPorts`): nginx must see each client's own address.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from components.plan.calls import CalleePolicy, Edge
from components.plan.mesh_limits import caller_buckets
from components.targets.mesh import Manifest, MeshInputs, MeshProfile, duration, mesh_route

SECURITY = "security.istio.io/v1"
NETWORKING = "networking.istio.io/v1"
TRUST_DOMAIN = "cluster.local"
_LOCAL_RATE_LIMIT = "envoy.filters.http.local_ratelimit"
_LOCAL_RATE_LIMIT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
_STATUS = {"http_500": 500, "http_502": 502, "http_503": 503, "http_504": 504, "http_429": 429}
_ALL = {"numerator": 100, "denominator": "HUNDRED"}


def principal(inputs: MeshInputs, client: str) -> str:
    return f"{TRUST_DOMAIN}/ns/{inputs.namespace}/sa/{client}"


def _allow_nothing(inputs: MeshInputs) -> Manifest:
    return {"apiVersion": SECURITY, "kind": "AuthorizationPolicy", "metadata": inputs.metadata("allow-nothing", "", "mesh-authorization"),
            "spec": {}}


def _gateway_from_anywhere(inputs: MeshInputs) -> Manifest:
    """The gateway's listen port bypasses its sidecar; should it not, the gateway still takes its clients' requests
    (which `allow-nothing` would refuse): the NetworkPolicy and nginx's allow list decide who reaches it."""
    port = str(inputs.spec.gateway.listen_port)
    return {"apiVersion": SECURITY, "kind": "AuthorizationPolicy",
            "metadata": inputs.metadata(f"{inputs.gateway}-clients", inputs.gateway, "mesh-authorization"),
            "spec": {"selector": {"matchLabels": inputs.selector(inputs.gateway)}, "action": "ALLOW",
                     "rules": [{"to": [{"operation": {"ports": [port]}}]}]}}


def _authorization(inputs: MeshInputs, client: str, server: str) -> Manifest:
    port = inputs.spec.workload(server).port
    return {"apiVersion": SECURITY, "kind": "AuthorizationPolicy", "metadata": inputs.metadata(f"{client}-to-{server}", server, "mesh-authorization"),
            "spec": {"selector": {"matchLabels": inputs.selector(server)}, "action": "ALLOW",
                     "rules": [{"from": [{"source": {"principals": [principal(inputs, client)]}}], "to": [{"operation": {"ports": [str(port)]}}]}]}}


def _load_balancer(policy: CalleePolicy) -> dict[str, Any]:
    if policy.algorithm in ("least_conn", "latency_optimal"):
        return {"simple": "LEAST_REQUEST"}
    if policy.algorithm == "ip_hash" or (policy.algorithm == "consistent_hash" and policy.hash_key in (None, "client_ip")):
        return {"consistentHash": {"useSourceIp": True}}
    if policy.algorithm == "consistent_hash":
        kind, _, name = (policy.hash_key or "").partition(":")
        return {"consistentHash": {"httpHeaderName": name} if kind == "header" else {"httpCookie": {"name": name, "ttl": "0s"}}}
    return {"simple": "ROUND_ROBIN"}


def _traffic_policy(inputs: MeshInputs, policy: CalleePolicy, pool: int | None) -> dict[str, Any]:
    tcp: dict[str, Any] = {"connectTimeout": duration(policy.connect_timeout_s)}
    if policy.protocol == "tcp":  # a tcp call's timeout is its idle timeout (Istio's default: 1 h)
        tcp["idleTimeout"] = duration(policy.timeout_s)
    traffic: dict[str, Any] = {"loadBalancer": _load_balancer(policy), "connectionPool": {"tcp": tcp}}
    if pool is not None:
        tcp["maxConnections"] = pool
        if policy.protocol != "tcp":
            traffic["connectionPool"]["http"] = {"http2MaxRequests": pool}
    health = inputs.spec.gateway.passive_health
    if health.max_fails > 0:
        traffic["outlierDetection"] = {"consecutive5xxErrors": health.max_fails, "interval": duration(health.fail_timeout_s),
                                       "baseEjectionTime": duration(health.fail_timeout_s), "maxEjectionPercent": 50}
    return traffic


def _destination_rules(inputs: MeshInputs, policy: CalleePolicy, calls: list[Edge]) -> list[Manifest]:
    total = sum(weight for _, weight in policy.versions)
    found = []
    for version, weight in policy.versions:
        host = inputs.host(version)
        found.append({"apiVersion": NETWORKING, "kind": "DestinationRule", "metadata": inputs.metadata(version, version, "mesh-destination"),
                      "spec": {"host": host, "trafficPolicy": _traffic_policy(inputs, policy, None)}})
        for edge in calls:
            pods = inputs.spec.max_replicas(edge.caller)
            pool = max(1, math.floor(Fraction(edge.max_concurrency * weight, total * pods)))
            found.append({"apiVersion": NETWORKING, "kind": "DestinationRule",
                          "metadata": inputs.metadata(f"{edge.caller}-to-{version}", version, "mesh-destination"),
                          "spec": {"host": host, "workloadSelector": {"matchLabels": inputs.selector(edge.caller)},
                                   "trafficPolicy": _traffic_policy(inputs, policy, pool)}})
    return found


def _route(inputs: MeshInputs, policy: CalleePolicy) -> Manifest:
    retries = policy.retries
    retry: dict[str, Any] = {"attempts": retries.tries - 1}
    codes = sorted({_STATUS[c] for c in retries.conditions if c in _STATUS})
    if retries.tries > 1 and retries.non_idempotent and codes:
        retry["codes"] = codes
    rule = {"timeouts": {"request": duration(policy.timeout_s * retries.tries), "backendRequest": duration(policy.timeout_s)}, "retry": retry}
    return mesh_route(inputs, policy, "HTTPRoute", rule, {})


def _bucket(limit: dict[str, Any], grpc: bool) -> dict[str, Any]:
    value: dict[str, Any] = {"stat_prefix": "netopt_call_limit", "token_bucket": limit,
                             "filter_enabled": {"runtime_key": "netopt_call_limit_enabled", "default_value": _ALL},
                             "filter_enforced": {"runtime_key": "netopt_call_limit_enforced", "default_value": _ALL}}
    if grpc:
        value["rate_limited_as_resource_exhausted"] = True  # gRPC callers see RESOURCE_EXHAUSTED, as from netopt's proxy
    return {"@type": "type.googleapis.com/udpa.type.v1.TypedStruct", "type_url": _LOCAL_RATE_LIMIT_TYPE, "value": value}


def _call_limits(inputs: MeshInputs, caller: str, calls: list[Edge]) -> Manifest:
    """The caller's sidecar: the local rate limit filter (inert by itself) and, per callee, its bucket on that
    callee's outbound virtual host (`<host>:<port>`)."""
    patches: list[dict[str, Any]] = [{
        "applyTo": "HTTP_FILTER",
        "match": {"context": "SIDECAR_OUTBOUND", "listener": {"filterChain": {"filter": {
            "name": "envoy.filters.network.http_connection_manager", "subFilter": {"name": "envoy.filters.http.router"}}}}},
        "patch": {"operation": "INSERT_BEFORE", "value": {"name": _LOCAL_RATE_LIMIT, "typed_config": {
            "@type": "type.googleapis.com/udpa.type.v1.TypedStruct", "type_url": _LOCAL_RATE_LIMIT_TYPE,
            "value": {"stat_prefix": "netopt_call_limit"}}}},
    }]
    for edge in calls:
        (bucket,) = caller_buckets(inputs.spec, edge)
        limit = {"max_tokens": max(bucket.rps, math.ceil(edge.burst / bucket.pods)), "tokens_per_fill": bucket.rps, "fill_interval": "1s"}
        patches.append({
            "applyTo": "HTTP_ROUTE",
            "match": {"context": "SIDECAR_OUTBOUND", "routeConfiguration": {"vhost": {
                "name": f"{inputs.host(edge.callee)}:{edge.policy.port}", "route": {"action": "ANY"}}}},
            "patch": {"operation": "MERGE",
                      "value": {"typed_per_filter_config": {_LOCAL_RATE_LIMIT: _bucket(limit, edge.policy.protocol == "grpc")}}},
        })
    return {"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
            "metadata": inputs.metadata(f"{caller}-call-limits", caller, "mesh-rate-limit"),
            "spec": {"workloadSelector": {"labels": inputs.selector(caller)}, "configPatches": patches}}


def resources(inputs: MeshInputs) -> list[Manifest]:
    found = [_allow_nothing(inputs), _gateway_from_anywhere(inputs)]
    found += [_authorization(inputs, client, server) for server, clients in inputs.clients().items() for client in clients]
    limited: dict[str, list[Edge]] = {}
    for policy, calls in inputs.callees():
        found += _destination_rules(inputs, policy, calls)
        if policy.protocol != "tcp":
            found.append(_route(inputs, policy))
            for edge in calls:
                limited.setdefault(edge.caller, []).append(edge)
    found += [_call_limits(inputs, caller, calls) for caller, calls in limited.items()]
    return found


PROFILE = MeshProfile(
    kind="istio",
    namespace_labels={"istio-injection": "enabled"},
    namespace_annotations={},
    control_plane_namespace="istio-system",
    control_plane_ports=(15012,),  # istiod: xDS and certificates
    gateway_pod_annotations=lambda port: {"traffic.sidecar.istio.io/excludeInboundPorts": str(port)},
    service_annotations=lambda spec, workload: {},
    resources=resources,
    versions={"Istio": "1.25+ in sidecar mode with the CNI node agent (DestinationRule and AuthorizationPolicy v1, EnvoyFilter "
                       "v1alpha3; schemas of a 1.2x master snapshot, offline/crds/SOURCES.md)",
              "Gateway API": "v1.2.1, experimental channel (HTTPRoute `retry`)"},
)
