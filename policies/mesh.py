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
- f_l: what the mesh lets the caller send, in requests per second. Linkerd limits in the callee's pods: Σ over the
  pods the callee's route reaches of the caller's override in the HTTPLocalRateLimitPolicy of the Server selecting
  them (× their pods). Istio, as netopt deploys it, limits in the caller's pods: the token bucket on the callee's
  outbound virtual host (`<host>:<port>`) in the EnvoyFilter selecting the caller (with the filter inserted), ×
  the caller's pods. Pods are a workload's `replicas`, or its autoscaler's minimum. No limit on some of the pods
  the call reaches: f = ∞ (None).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policies.model import get, is_gateway_labels, items

_LINKERD = "policy.linkerd.io"
_LOCAL_RATE_LIMIT = "envoy.filters.http.local_ratelimit"
_WORKLOAD_KINDS = ("Deployment", "StatefulSet")


@dataclass
class MeshScores:
    steps: dict[str, int] = field(default_factory=dict)  # call -> r_j
    limits: dict[str, float | None] = field(default_factory=dict)  # call -> f_l (None: unlimited)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Workload:
    name: str
    labels: Mapping[str, str]
    account: str
    pods: int


def _seconds(text: str) -> float:
    """An Envoy/Go duration as netopt writes it (`1s`, `500ms`)."""
    return float(text[:-2]) / 1000 if text.endswith("ms") else float(text[:-1])


class _Deployed:
    """The deployed resources a mesh's calls depend on, by kind (props as the engine sends them)."""

    def __init__(self, resources: Sequence[Any]) -> None:
        self.by_kind: dict[str, list[Mapping[str, Any]]] = {}
        for resource in resources:
            props = resource.props
            self.by_kind.setdefault(str(get(props, "kind", default="")), []).append(props)
        minimum = {str(get(h, "spec", "scaleTargetRef", "name")): int(get(h, "spec", "minReplicas", default=1))
                   for h in self.by_kind.get("HorizontalPodAutoscaler", [])}
        self.workloads = [
            _Workload(str(get(w, "metadata", "name")), dict(get(w, "spec", "template", "metadata", "labels", default={})),
                      str(get(w, "spec", "template", "spec", "serviceAccountName", default="default")),
                      int(get(w, "spec", "replicas", default=minimum.get(str(get(w, "metadata", "name")), 1))))
            for kind in _WORKLOAD_KINDS for w in self.by_kind.get(kind, [])]
        self.services = {str(get(s, "metadata", "name")): dict(get(s, "spec", "selector", default={})) for s in self.by_kind.get("Service", [])}

    def kind(self, kind: str, api_group: str | None = None) -> list[Mapping[str, Any]]:
        return [p for p in self.by_kind.get(kind, []) if api_group is None or str(get(p, "apiVersion", default="")).startswith(f"{api_group}/")]

    def selected(self, selector: Mapping[str, Any]) -> list[_Workload]:
        return [w for w in self.workloads if selector and all(w.labels.get(k) == v for k, v in selector.items())]

    def running_as(self, account: str) -> list[_Workload]:
        return [w for w in self.workloads if w.account == account]


def _catch_all(rule: Mapping[str, Any]) -> bool:
    matches = items(get(rule, "matches"))
    if not matches:
        return True
    return any(set(m) <= {"path"} and get(m, "path", "type", default="PathPrefix") == "PathPrefix" and get(m, "path", "value", default="/") == "/"
               for m in matches)


def _routes(deployed: _Deployed) -> tuple[dict[str, str], dict[str, int], list[str]]:
    """(server workload -> callee, callee -> r_j, problems) from the mesh routes (Service parents)."""
    callee_of: dict[str, str] = {}
    steps: dict[str, int] = {}
    problems: list[str] = []
    for route in deployed.kind("HTTPRoute") + deployed.kind("GRPCRoute"):
        for parent in items(get(route, "spec", "parentRefs")):
            if get(parent, "kind") != "Service":
                continue
            callee = str(get(parent, "name"))
            rules = items(get(route, "spec", "rules"))
            first = next((i for i, rule in enumerate(rules, 1) if _catch_all(rule)), None)
            if first is None:
                problems.append(f"{get(route, 'kind')} '{get(route, 'metadata', 'name')}': no rule matches every call to {callee}")
                continue
            steps[callee] = first
            for backend in items(get(rules[first - 1], "backendRefs")):
                for workload in deployed.selected(deployed.services.get(str(get(backend, "name")), {})):
                    callee_of[workload.name] = callee
    return callee_of, steps, problems


def _linkerd_grants(deployed: _Deployed) -> list[tuple[str, str]]:
    """(ServiceAccount, server workload) of every Linkerd AuthorizationPolicy on a Server."""
    servers = {str(get(s, "metadata", "name")): get(s, "spec", "podSelector", "matchLabels", default={}) for s in deployed.kind("Server", _LINKERD)}
    identities = {str(get(m, "metadata", "name")): [str(get(r, "name")) for r in items(get(m, "spec", "identityRefs"))
                                                     if get(r, "kind") == "ServiceAccount"]
                  for m in deployed.kind("MeshTLSAuthentication", _LINKERD)}
    grants = []
    for policy in deployed.kind("AuthorizationPolicy", _LINKERD):
        if get(policy, "spec", "targetRef", "kind") != "Server":
            continue
        pods = deployed.selected(servers.get(str(get(policy, "spec", "targetRef", "name")), {}))
        for ref in items(get(policy, "spec", "requiredAuthenticationRefs")):
            if get(ref, "kind") == "MeshTLSAuthentication":
                grants += [(account, w.name) for account in identities.get(str(get(ref, "name")), []) for w in pods]
    return grants


def _istio_grants(deployed: _Deployed) -> list[tuple[str, str]]:
    """(ServiceAccount, server workload) of every Istio ALLOW AuthorizationPolicy naming source principals."""
    grants = []
    for policy in deployed.kind("AuthorizationPolicy", "security.istio.io"):
        if get(policy, "spec", "action", default="ALLOW") != "ALLOW":
            continue
        pods = deployed.selected(get(policy, "spec", "selector", "matchLabels", default={}))
        for rule in items(get(policy, "spec", "rules")):
            for source in items(get(rule, "from")):
                for principal in items(get(source, "source", "principals")):
                    if "/sa/" in str(principal):
                        grants += [(str(principal).rsplit("/sa/", 1)[1], w.name) for w in pods]
    return grants


def _linkerd_limits(deployed: _Deployed, account: str, servers: list[_Workload]) -> float | None:
    policies = {str(get(s, "metadata", "name")): get(s, "spec", "podSelector", "matchLabels", default={}) for s in deployed.kind("Server", _LINKERD)}
    total = 0.0
    for server in servers:
        rps = None
        for policy in deployed.kind("HTTPLocalRateLimitPolicy", _LINKERD):
            selected = deployed.selected(policies.get(str(get(policy, "spec", "targetRef", "name")), {}))
            if server.name not in {w.name for w in selected}:
                continue
            for override in items(get(policy, "spec", "overrides")):
                if any(get(r, "kind") == "ServiceAccount" and get(r, "name") == account for r in items(get(override, "clientRefs"))):
                    rps = float(get(override, "requestsPerSecond"))
        if rps is None:
            return None
        total += rps * server.pods
    return total


def _istio_limit(deployed: _Deployed, caller: _Workload, callee: str) -> float | None:
    for envoy_filter in deployed.kind("EnvoyFilter", "networking.istio.io"):
        if caller not in deployed.selected(get(envoy_filter, "spec", "workloadSelector", "labels", default={})):
            continue
        patches = items(get(envoy_filter, "spec", "configPatches"))
        inserted = any(get(p, "applyTo") == "HTTP_FILTER" and get(p, "match", "context") == "SIDECAR_OUTBOUND"
                       and get(p, "patch", "value", "name") == _LOCAL_RATE_LIMIT for p in patches)
        for patch in patches:
            host = str(get(patch, "match", "routeConfiguration", "vhost", "name", default=""))
            bucket = get(patch, "patch", "value", "typed_per_filter_config", _LOCAL_RATE_LIMIT, "value", "token_bucket")
            if inserted and get(patch, "applyTo") == "HTTP_ROUTE" and host.split(".", 1)[0] == callee and bucket is not None:
                return float(get(bucket, "tokens_per_fill", default=1)) / _seconds(str(get(bucket, "fill_interval"))) * caller.pods
    return None


def mesh_call_scores(resources: Sequence[Any]) -> MeshScores:
    """The call routes' r_j and f_l of a stack's deployed mesh resources (empty where no mesh authorizes calls)."""
    deployed = _Deployed(resources)
    linkerd = _linkerd_grants(deployed)
    grants = linkerd or _istio_grants(deployed)
    scores = MeshScores()
    if not grants:
        return scores
    callee_of, route_steps, scores.problems = _routes(deployed)
    gateway = {w.account for w in deployed.workloads if is_gateway_labels(w.labels)}
    calls: dict[tuple[str, str], tuple[_Workload, list[_Workload]]] = {}
    by_name = {w.name: w for w in deployed.workloads}
    for account, server in grants:
        if account in gateway:
            continue
        callee = callee_of.get(server, server)
        for caller in deployed.running_as(account):
            calls.setdefault((caller.name, callee), (caller, []))[1].append(by_name[server])
    for (caller_name, callee), (caller, servers) in calls.items():
        name = f"{caller_name}.{callee}"
        scores.steps[name] = route_steps.get(callee, 1)
        if callee in route_steps:  # an http or grpc call: requests to limit
            scores.limits[name] = _linkerd_limits(deployed, caller.account, servers) if linkerd else _istio_limit(deployed, caller, callee)
    return scores
