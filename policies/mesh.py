"""r_j and f_l of the calls a service mesh carries, recomputed from its deployed resources — nothing from `components`.

Under `kubernetes.mesh: linkerd | istio` netopt deploys no service proxy, so there is no nginx.conf to read the call
routes from (`deployed_scores.py`): the mesh's own resources are what is enforced, and this module reads them.

- The calls are what the mesh authorizes: each (client ServiceAccount, server pods) of a Linkerd AuthorizationPolicy
  (its Server's pods, its MeshTLSAuthentication's ServiceAccounts) or of an Istio ALLOW AuthorizationPolicy (its
  selected pods, its `source.principals` `…/sa/<name>`), but the gateway's (the ServiceAccount of the Deployment
  whose pods are the gateway). The caller is the workload running as the ServiceAccount; the callee is the Service a
  mesh route sends to the server's pods from (the route's parent: a split's versions are one callee), else the
  server's own Service. A call is named `<caller>.<callee>`.
- r_j: the position of the first rule of the callee's route that every request matches (no match, or only the
  path prefix `/`): the rules the mesh tests before it picks the call's. A call without a route (tcp) is 1.
- f_l: what the mesh lets the caller send, in requests per second, as `calls_mesh` reads the buckets that count it
  (the call gates read the same). Linkerd limits in the callee's pods: Σ over the servers the caller is authorized
  at of the binding bucket there (its override, else the identity limit, and the total) × their pods. Istio, as
  netopt deploys it, limits in the caller's pods: the token bucket on the callee's outbound virtual host, × the
  caller's most pods (its autoscaler's maximum: each added pod brings a bucket). No limit on some of the pods the
  call reaches: f = ∞ (None).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policies.calls_mesh import GATEWAY_API, LINKERD_POLICY, istio_bucket, linkerd_buckets
from policies.deployed_configs import Resource
from policies.mesh_index import Found, MeshIndex, Pods
from policies.model import get, is_gateway_labels, items


@dataclass
class MeshScores:
    steps: dict[str, int] = field(default_factory=dict)  # call -> r_j
    limits: dict[str, float | None] = field(default_factory=dict)  # call -> f_l (None: unlimited)
    problems: list[str] = field(default_factory=list)


def _catch_all(rule: Mapping[str, Any]) -> bool:
    matches = items(get(rule, "matches"))
    if not matches:
        return True
    return any(set(m) <= {"path"} and get(m, "path", "type", default="PathPrefix") == "PathPrefix" and get(m, "path", "value", default="/") == "/"
               for m in matches)


def _routes(index: MeshIndex) -> tuple[dict[str, str], dict[str, int], dict[str, int], list[str]]:
    """(server workload -> callee, callee -> r_j, callee -> Envoy routes, problems) from the mesh routes (Service parents)."""
    callee_of: dict[str, str] = {}
    steps: dict[str, int] = {}
    envoy_routes: dict[str, int] = {}
    problems: list[str] = []
    for route in index.of_kind("HTTPRoute", GATEWAY_API) + index.of_kind("GRPCRoute", GATEWAY_API):
        for parent in items(get(route.props, "spec", "parentRefs")):
            if get(parent, "kind") != "Service":
                continue
            callee = str(get(parent, "name"))
            rules = items(get(route.props, "spec", "rules"))
            envoy_routes[callee] = envoy_routes.get(callee, 0) + sum(max(1, len(items(get(rule, "matches")))) for rule in rules)
            first = next((i for i, rule in enumerate(rules, 1) if _catch_all(rule)), None)
            if first is None:
                problems.append(f"{route.kind} '{route.object_name}': no rule matches every call to {callee}")
                continue
            steps[callee] = first
            for backend in items(get(rules[first - 1], "backendRefs")):
                service = index.service(str(get(backend, "name")), route.namespace)
                for pods in index.service_pods(service) if service is not None else []:
                    callee_of[pods.name] = callee
    return callee_of, steps, envoy_routes, problems


def _linkerd_grants(index: MeshIndex) -> list[tuple[str, Pods, Found]]:
    """(ServiceAccount, server pods, Server) of every Linkerd AuthorizationPolicy on a Server."""
    servers = {(s.namespace, s.object_name): s for s in index.of_kind("Server", LINKERD_POLICY)}
    identities = {(m.namespace, m.object_name): [str(get(r, "name")) for r in items(get(m.props, "spec", "identityRefs"))
                                                 if get(r, "kind") == "ServiceAccount"]
                  for m in index.of_kind("MeshTLSAuthentication", LINKERD_POLICY)}
    grants = []
    for policy in index.of_kind("AuthorizationPolicy", LINKERD_POLICY):
        server = servers.get((policy.namespace, str(get(policy.props, "spec", "targetRef", "name"))))
        if get(policy.props, "spec", "targetRef", "kind") != "Server" or server is None:
            continue
        pods = index.selected(get(server.props, "spec", "podSelector"), server.namespace)
        for ref in items(get(policy.props, "spec", "requiredAuthenticationRefs")):
            if get(ref, "kind") == "MeshTLSAuthentication":
                grants += [(account, p, server) for account in identities.get((policy.namespace, str(get(ref, "name"))), []) for p in pods]
    return grants


def _istio_grants(index: MeshIndex) -> list[tuple[str, Pods, Found | None]]:
    """(ServiceAccount, server pods, None) of every Istio ALLOW AuthorizationPolicy naming source principals."""
    grants: list[tuple[str, Pods, Found | None]] = []
    for policy in index.of_kind("AuthorizationPolicy", "security.istio.io"):
        if get(policy.props, "spec", "action", default="ALLOW") != "ALLOW":
            continue
        pods = index.selected(get(policy.props, "spec", "selector"), policy.namespace)
        for rule in items(get(policy.props, "spec", "rules")):
            for source in items(get(rule, "from")):
                for principal in items(get(source, "source", "principals")):
                    if "/sa/" in str(principal):
                        grants += [(str(principal).rsplit("/sa/", 1)[1], p, None) for p in pods]
    return grants


def _linkerd_limit(index: MeshIndex, caller: Pods, servers: list[tuple[Pods, Found | None]]) -> float | None:
    total = 0.0
    for pods, server in servers:
        port = get(server.props, "spec", "port") if server is not None else None
        named = isinstance(port, str) and not port.isdigit()
        buckets, _ = linkerd_buckets(index, [caller], [pods], None if named or port is None else int(float(port)), str(port) if named else None)
        if not buckets:
            return None
        total += min(b.value for b in buckets)
    return total


def _istio_limit(index: MeshIndex, caller: Pods, callee: str, envoy_routes: int) -> float | None:
    service = index.service(callee, caller.namespace)
    if service is None:
        return None
    rate, _, _ = istio_bucket(index, [caller], service, None, envoy_routes or 1)
    return None if rate is None or rate == float("inf") else rate * caller.most


def mesh_call_scores(resources: Sequence[Any]) -> MeshScores:
    """The call routes' r_j and f_l of a stack's deployed mesh resources (empty where no mesh authorizes calls)."""
    index = MeshIndex(Resource(r.resource_type, r.name, r.props, r.urn) for r in resources)
    linkerd = _linkerd_grants(index)
    grants: Sequence[tuple[str, Pods, Found | None]] = linkerd or _istio_grants(index)
    scores = MeshScores()
    if not grants:
        return scores
    callee_of, route_steps, envoy_routes, scores.problems = _routes(index)
    gateway = {p.account for p in index.pods if is_gateway_labels(p.labels)}
    calls: dict[tuple[str, str], tuple[Pods, list[tuple[Pods, Found | None]]]] = {}
    for account, server, found in grants:
        if account in gateway:
            continue
        callee = callee_of.get(server.name, server.name)
        for caller in (p for p in index.pods if p.account == account and p.namespace == server.namespace):
            reached = calls.setdefault((caller.name, callee), (caller, []))[1]
            if (server, found) not in reached:
                reached.append((server, found))
    for (caller_name, callee), (caller, servers) in calls.items():
        name = f"{caller_name}.{callee}"
        scores.steps[name] = route_steps.get(callee, 1)
        if callee in route_steps:  # an http or grpc call: requests to limit
            scores.limits[name] = _linkerd_limit(index, caller, servers) if linkerd else _istio_limit(index, caller, callee, envoy_routes[callee])
    return scores
