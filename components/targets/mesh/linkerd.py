"""Linkerd's resources for the calls (`kubernetes.mesh: linkerd`; Linkerd 2.17+, for HTTPLocalRateLimitPolicy).

- **Identity and authorization per edge**: every workload runs as its own ServiceAccount (the kubernetes target),
  which is its mTLS identity. Each workload a client reaches gets a `Server` (its pods, its port; `accessPolicy:
  deny`), one `MeshTLSAuthentication` per client identity, and one `AuthorizationPolicy` per edge (client →
  server): only declared callers (and the gateway, for a routed workload) get in.
- **Limits per caller**: an `HTTPLocalRateLimitPolicy` per called version's Server (a gRPC callee's Server says
  `HTTP/2`: the proxy enforces no rate limit on a `gRPC` Server), one override per caller
  (`clientRefs` its ServiceAccount). Linkerd limits locally, per pod: each pod keeps ⌊limit·share/pods⌋ req/s of the
  caller's limit (`components.plan.mesh_limits`). Identities without an override (the gateway) are not limited
  here (the gateway limits its own clients). Linkerd has no burst setting (its GCRA tolerance) and no concurrency
  limit: `burst` and `max_concurrency` are not enforced under Linkerd.
- **Timeouts, retries, splits**: the callee's HTTPRoute/GRPCRoute (Gateway API v1, parent the Service): the split
  in `backendRefs`, `timeouts.request` (HTTPRoute) or `timeout.linkerd.io/request` (GRPCRoute, which has no
  timeouts field) covering all tries, and Linkerd's retry annotations (2.16+): `retry.linkerd.io/limit` (tries − 1),
  `retry.linkerd.io/timeout` (each try), and the statuses to retry on only with `non_idempotent: true` — Linkerd
  replays any method on a status, so netopt asks for it only where replaying is allowed.
- **Balancing and passive health**: Linkerd balances every request by latency (EWMA, peak-aware), whatever
  `balancing` says; a callee's passive health (`gateway.passive_health`) becomes consecutive-failure accrual on its
  Service (`balancer.linkerd.io/failure-accrual*`). A tcp callee's port is opaque (`config.linkerd.io/opaque-ports`,
  Server `proxyProtocol: opaque`).
- **Injection**: the namespace's `linkerd.io/inject: enabled`; the namespace enforces the restricted Pod Security
  Standard, so Linkerd must run with its CNI plugin (no `linkerd-init` with NET_ADMIN). The gateway's listen port
  skips the proxy inbound (`config.linkerd.io/skip-inbound-ports`): nginx must see each client's own address for its
  allow list and per-client limits; its calls out are meshed.
"""

from __future__ import annotations

from typing import Any

from components.plan.calls import CalleePolicy, Edge
from components.plan.graph import serving_proxies
from components.plan.mesh_limits import callee_buckets
from components.spec.schema import Spec
from components.targets.mesh import Manifest, MeshInputs, MeshProfile, duration, mesh_route

POLICY = "policy.linkerd.io"
_PROTOCOL = {"http": "HTTP/1", "grpc": "HTTP/2", "tcp": "opaque"}
"""A Server's `proxyProtocol`. gRPC is served as HTTP/2: Linkerd's policy controller sends a Server's
HTTPLocalRateLimitPolicy to the proxy only with the `unknown`, `HTTP/1` and `HTTP/2` protocols — a `gRPC` Server's
proxy gets no rate limit at all (linkerd2 policy-controller/grpc/src/inbound.rs, `to_server`)."""
_HTTP_STATUS = {"http_500": "500", "http_502": "502", "http_503": "503", "http_504": "504", "http_429": "429"}
_GRPC_STATUS = {"error": "unavailable", "http_502": "unavailable", "http_503": "unavailable", "timeout": "deadline-exceeded",
                "http_504": "deadline-exceeded", "http_500": "internal", "http_429": "resource-exhausted"}


def _server(inputs: MeshInputs, workload: str) -> Manifest:
    w = inputs.spec.workload(workload)
    return {"apiVersion": f"{POLICY}/v1beta3", "kind": "Server", "metadata": inputs.metadata(workload, workload, "mesh-server"),
            "spec": {"podSelector": {"matchLabels": inputs.selector(workload)}, "port": w.port, "proxyProtocol": _PROTOCOL[w.protocol],
                     "accessPolicy": "deny"}}


def _identity(inputs: MeshInputs, client: str) -> Manifest:
    return {"apiVersion": f"{POLICY}/v1alpha1", "kind": "MeshTLSAuthentication", "metadata": inputs.metadata(client, client, "mesh-identity"),
            "spec": {"identityRefs": [{"kind": "ServiceAccount", "name": client}]}}


def _authorization(inputs: MeshInputs, client: str, server: str) -> Manifest:
    return {"apiVersion": f"{POLICY}/v1alpha1", "kind": "AuthorizationPolicy",
            "metadata": inputs.metadata(f"{client}-to-{server}", server, "mesh-authorization"),
            "spec": {"targetRef": {"group": POLICY, "kind": "Server", "name": server},
                     "requiredAuthenticationRefs": [{"group": POLICY, "kind": "MeshTLSAuthentication", "name": client}]}}


def _rate_limits(inputs: MeshInputs, calls: list[Edge]) -> list[Manifest]:
    """One policy per version's Server (Linkerd allows one per Server): each caller's per-pod share of its limit."""
    per_version: dict[str, list[dict[str, Any]]] = {}
    for edge in calls:
        for bucket in callee_buckets(inputs.spec, edge):
            per_version.setdefault(bucket.workload, []).append(
                {"requestsPerSecond": bucket.rps, "clientRefs": [{"kind": "ServiceAccount", "name": edge.caller}]})
    return [{"apiVersion": f"{POLICY}/v1alpha1", "kind": "HTTPLocalRateLimitPolicy", "metadata": inputs.metadata(version, version, "mesh-rate-limit"),
             "spec": {"targetRef": {"group": POLICY, "kind": "Server", "name": version}, "overrides": overrides}}
            for version, overrides in per_version.items()]


def _route(inputs: MeshInputs, policy: CalleePolicy) -> Manifest:
    retries = policy.retries
    whole = policy.timeout_s * retries.tries
    annotations: dict[str, str] = {}
    rule: dict[str, Any] = {}
    if policy.protocol == "grpc":
        annotations["timeout.linkerd.io/request"] = duration(whole)
    else:
        rule["timeouts"] = {"request": duration(whole)}
    if retries.tries > 1:
        annotations["retry.linkerd.io/limit"] = str(retries.tries - 1)
        annotations["retry.linkerd.io/timeout"] = duration(policy.timeout_s)
        if retries.non_idempotent:
            table = _GRPC_STATUS if policy.protocol == "grpc" else _HTTP_STATUS
            statuses = list(dict.fromkeys(table[c] for c in retries.conditions if c in table))
            if statuses:
                annotations[f"retry.linkerd.io/{'grpc' if policy.protocol == 'grpc' else 'http'}"] = ",".join(statuses)
    return mesh_route(inputs, policy, "GRPCRoute" if policy.protocol == "grpc" else "HTTPRoute", rule, annotations)


def resources(inputs: MeshInputs) -> list[Manifest]:
    clients = inputs.clients()
    found = [_server(inputs, server) for server in clients]
    found += [_identity(inputs, client) for client in dict.fromkeys(c for cs in clients.values() for c in cs)]
    found += [_authorization(inputs, client, server) for server, cs in clients.items() for client in cs]
    for policy, calls in inputs.callees():
        if policy.protocol != "tcp":
            found.append(_route(inputs, policy))
            found += _rate_limits(inputs, calls)
    return found


def service_annotations(spec: Spec, workload: str) -> dict[str, str]:
    w = spec.workload(workload)
    found: dict[str, str] = {}
    if w.protocol == "tcp":
        found["config.linkerd.io/opaque-ports"] = str(w.port)
    health = spec.gateway.passive_health
    if workload in serving_proxies(spec) and health.max_fails > 0:  # a version some caller's calls reach
        found |= {
            "balancer.linkerd.io/failure-accrual": "consecutive",
            "balancer.linkerd.io/failure-accrual-consecutive-max-failures": str(health.max_fails),
            "balancer.linkerd.io/failure-accrual-consecutive-min-penalty": duration(health.fail_timeout_s),
            "balancer.linkerd.io/failure-accrual-consecutive-max-penalty": duration(health.fail_timeout_s * 6),
        }
    return found


PROFILE = MeshProfile(
    kind="linkerd",
    namespace_labels={},
    namespace_annotations={"linkerd.io/inject": "enabled"},
    control_plane_namespace="linkerd",
    control_plane_ports=(8080, 8086, 8090),  # identity, destination, policy
    gateway_pod_annotations=lambda port: {"config.linkerd.io/skip-inbound-ports": str(port)},
    service_annotations=service_annotations,
    resources=resources,
    versions={"Linkerd": "2.18–2.19 (HTTPLocalRateLimitPolicy from 2.17, retry/timeout annotations from 2.16; Gateway API 1.1.1–1.2.1)",
              "Gateway API": "v1.2.1 (standard channel suffices: no experimental field is used)"},
)
