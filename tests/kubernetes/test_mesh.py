"""`kubernetes.mesh: linkerd | istio` on the prod and boutique stacks (test variants, not shipped stacks): no service
proxy, the mesh's own resources instead, every manifest and custom resource valid (kubernetes-validate for the core
kinds, the pinned CRD schemas for the rest), the prod policies with no violation, NetworkPolicies that open exactly
the calls (caller -> callee) plus each pod's way to the mesh's control plane (network-config-analyzer)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from components.resources.pulumi_config import namespace_values
from components.spec.schema import Spec
from components.spec.validation import parse_spec
from offline.analyzer import analyze_config, policy_config_path
from offline.crds import is_custom
from offline.manifests import manifests, validate_manifests
from offline.program import RecordedResource, run_program
from offline.stack_config import cli_config, stack_file
from tests.kubernetes.conftest import by_kind
from tests.kubernetes.nca import Connection, connectivity, deployment, in_namespace
from tests.kubernetes.test_network_policies import declared

VARIANTS = [("prod", "linkerd"), ("prod", "istio"), ("boutique", "linkerd"), ("boutique", "istio")]
CONTROL_PLANE = {"linkerd": ("linkerd", "8080,8086,8090"), "istio": ("istio-system", "15012")}


def mesh_config(stack: str, mesh: str) -> dict[str, str]:
    config = cli_config(stack_file(stack))
    settings = json.loads(config.get("netopt:kubernetes", "{}"))
    return {**config, "netopt:kubernetes": json.dumps({**settings, "mesh": mesh})}


def mesh_spec(stack: str, mesh: str) -> Spec:
    return parse_spec(namespace_values(mesh_config(stack, mesh)))


@functools.cache
def mesh_resources(stack: str, mesh: str) -> list[RecordedResource]:
    return run_program(mesh_config(stack, mesh), stack)


def mesh_manifests(stack: str, mesh: str) -> list[dict[str, Any]]:
    return manifests(mesh_resources(stack, mesh))


# Linkerd can neither time out nor limit a tcp call (an opaque port): the boutique's cartservice -> redis-cart is
# unbounded under Linkerd, and the prod policies say so — and nothing else.
TCP_UNDER_LINKERD = {("call-timeouts-and-limits", "mandatory"), ("call-limits-within-capacity", "mandatory")}


@pytest.mark.parametrize(("stack", "mesh"), VARIANTS)
def test_it_plans_with_no_violation_of_the_prod_policies(stack: str, mesh: str) -> None:
    analysis = analyze_config(mesh_config(stack, mesh), stack, policy_config_path("prod"), mesh_resources(stack, mesh))
    unbounded = (stack, mesh) == ("boutique", "linkerd")
    assert analysis.violated() == (TCP_UNDER_LINKERD if unbounded else set()), "\n".join(d.message for d in analysis.diagnostics)
    assert all("cartservice -> redis-cart" in d.message or "cartservice.redis-cart" in d.message for d in analysis.diagnostics)
    assert all("use `kubernetes.mesh: istio`" in d.message or "use `kubernetes.mesh:\nistio`" in d.message for d in analysis.diagnostics)
    assert "scores-match-deployed-config" not in {n.policy for n in analysis.not_applicable}, "the call scores were recomputed, not skipped"
    for policy in ("call-timeouts-and-limits", "call-limits-within-capacity", "grpc-balanced-per-request"):
        assert policy not in {n.policy for n in analysis.not_applicable} or stack == "prod", f"{policy} judged the mesh's calls"


@pytest.mark.parametrize(("stack", "mesh"), VARIANTS)
def test_every_manifest_and_custom_resource_validates(stack: str, mesh: str) -> None:
    documents = mesh_manifests(stack, mesh)
    custom = [d for d in documents if is_custom(d)]
    core = [d for d in documents if not is_custom(d)]
    assert custom and core
    passed = validate_manifests(documents)
    assert len(passed) == len(custom) + 2 * len(core), "each custom resource once (its CRD), each core one per Kubernetes version"
    assert sum("valid against its vendored CRD" in line for line in passed) == len(custom)


@pytest.mark.parametrize(("stack", "mesh"), VARIANTS)
def test_no_service_proxy_runs_and_every_pod_has_its_own_identity(stack: str, mesh: str) -> None:
    spec = mesh_spec(stack, mesh)
    found = by_kind(mesh_manifests(stack, mesh))
    names = [w.name for w in spec.workloads]
    assert not [n for n in found["Deployment"] if n.endswith("-proxy")] and list(found["ConfigMap"]) == [
        next(iter(found["ConfigMap"]))] and next(iter(found["ConfigMap"])).startswith("gateway-nginx-"), "only the gateway's nginx"
    assert not [n for n in found["Service"] if n.endswith("-backend")], "callers dial the workload's own Service"
    assert set(found["ServiceAccount"]) == {*names, "gateway"}
    assert all(a["automountServiceAccountToken"] is False for a in found["ServiceAccount"].values())
    for name in [*names, "gateway"]:
        kind = "StatefulSet" if name in found.get("StatefulSet", {}) else "Deployment"
        pod = found[kind][name]["spec"]["template"]
        assert pod["spec"]["serviceAccountName"] == name and pod["spec"]["automountServiceAccountToken"] is False
    (namespace,) = found["Namespace"].values()
    gateway_pod = found["Deployment"]["gateway"]["spec"]["template"]["metadata"]["annotations"]
    port = str(spec.gateway.listen_port)
    if mesh == "linkerd":
        assert namespace["metadata"]["annotations"]["linkerd.io/inject"] == "enabled"
        assert gateway_pod["config.linkerd.io/skip-inbound-ports"] == port, "nginx sees each client's own address"
    else:
        assert namespace["metadata"]["labels"]["istio-injection"] == "enabled"
        assert gateway_pod["traffic.sidecar.istio.io/excludeInboundPorts"] == port
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize(("stack", "mesh"), VARIANTS)
def test_connectivity_is_the_graph_caller_to_callee_and_the_control_plane(stack: str, mesh: str, tmp_path: Path) -> None:
    spec = mesh_spec(stack, mesh)
    namespace = spec.namespace or spec.network.name
    control, ports = CONTROL_PLANE[mesh]
    documents = [*mesh_manifests(stack, mesh),  # a stand-in control-plane pod, so nca shows who reaches it
                 {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": control, "labels": {"kubernetes.io/metadata.name": control}}},
                 {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "control-plane", "namespace": control, "labels": {"app": "control-plane"}},
                  "spec": {"containers": [{"name": "c", "image": "control-plane:1"}]}}]
    found = in_namespace(connectivity(documents, tmp_path), namespace)
    pod = f"{control}/control-plane[Pod]"
    meshed = {c.source for c in found if c.destination == pod}
    allowed = {c.allowed for c in found if c.destination == pod}  # nca writes one port without its protocol
    assert allowed in ({f"{{protocols:TCP,dst_ports:{ports}}}"}, {f"{{dst_ports:{ports}}}"}), allowed
    assert len(meshed) == len(spec.workloads) + 1, "every pod's proxy reaches the control plane (workloads and the gateway)"
    # With Istio's AuthorizationPolicies among the manifests nca also applies them (it reads Istio's policies) and
    # writes the ports alone: compare (source, destination, ports).
    assert {_pair(c) for c in found if c.destination != pod} == {_pair(c) for c in declared(spec, namespace)}
    caller, callee = next((w.name, c.workload) for w in spec.workloads for c in w.calls)
    kinds = by_kind(documents)
    target = deployment(namespace, callee) if callee in kinds["Deployment"] else f"{namespace}/{callee}[StatefulSet]"
    assert (deployment(namespace, caller), target, str(spec.workload(callee).port)) in {_pair(c) for c in found}


def _pair(connection: Connection) -> tuple[str, str, str]:
    return connection.source, connection.destination, connection.allowed.rpartition("dst_ports:")[2].rstrip("}")


# -- hand-worked values (prod: web calls api, api and api-canary call auth; README's capacity section) ------------
# api serves 3 replicas × 32 in flight / 0.040 s = 2400 calls/s, all web's (its only caller): web -> api 2400 rps.
# auth serves 3 × 16 / 0.030 s = 1600/s, shared by declared call rates api 84 × 0.3 = 25.2 and api-canary 8 × 0.3
# = 2.4: api 1600 × 25.2 / 27.6 = 1460.87 -> 87652 per minute; api-canary 139.13 -> 8347 per minute.
# Per pod (3 each): ⌊2400 / 3⌋ = 800, ⌊87652 / 60 / 3⌋ = 486, ⌊8347 / 60 / 3⌋ = 46. Istio keeps a caller's limit in the
# caller's pods, sized for its most pods: api scales to 6 (its autoscaler's maximum), ⌊87652 / 60 / 6⌋ = 243.
WEB_API, API_AUTH, CANARY_AUTH = 800, 486, 46
API_AUTH_ISTIO = 243


def test_linkerd_limits_each_caller_in_the_callees_pods() -> None:
    found = by_kind(mesh_manifests("prod", "linkerd"))
    limits = {name: {o["clientRefs"][0]["name"]: o["requestsPerSecond"] for o in m["spec"]["overrides"]}
              for name, m in found["HTTPLocalRateLimitPolicy"].items()}
    assert limits == {"api": {"web": WEB_API}, "auth": {"api": API_AUTH, "api-canary": CANARY_AUTH}}
    assert set(found["AuthorizationPolicy"]) == {"web-to-api", "api-to-auth", "api-canary-to-auth",
                                                 *(f"gateway-to-{w}" for w in ("web", "api", "api-canary", "auth", "static"))}
    assert all(s["spec"]["accessPolicy"] == "deny" for s in found["Server"].values())
    route = found["HTTPRoute"]["api"]  # timeout 10 × 40 ms floored at 1 s, 2 tries: 2 s for the call
    assert route["spec"]["rules"][0]["timeouts"] == {"request": "2s"}
    assert route["metadata"]["annotations"] == {"retry.linkerd.io/limit": "1", "retry.linkerd.io/timeout": "1s"}, "no status retry: POST"


def test_istio_limits_each_caller_in_its_own_pods() -> None:
    found = by_kind(mesh_manifests("prod", "istio"))
    buckets = {name: [p["patch"]["value"]["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"]["value"]["token_bucket"]["tokens_per_fill"]
                      for p in m["spec"]["configPatches"] if p["applyTo"] == "HTTP_ROUTE"] for name, m in found["EnvoyFilter"].items()}
    assert buckets == {"web-call-limits": [WEB_API], "api-call-limits": [API_AUTH_ISTIO], "api-canary-call-limits": [CANARY_AUTH]}
    # Calls in flight per caller: twice its share of the callee's, at most all of it (components/plan/calls.py). web -> api:
    # api's 3 × 32 = 96, one caller: 96, 32 per web pod. auth holds 3 × 16 = 48; api's share 25.2 / 27.6: ⌈2 × 48 × 0.913⌉
    # = 88 > 48, so 48 over api's 6 pods at most: 8 each; api-canary's ⌈2 × 48 × 0.087⌉ = 9 over its 3 pods: 3 each.
    pools = {name: m["spec"]["trafficPolicy"]["connectionPool"] for name, m in found["DestinationRule"].items() if "workloadSelector" in m["spec"]}
    assert [pools[n]["http"]["http2MaxRequests"] for n in ("web-to-api", "api-to-auth", "api-canary-to-auth")] == [32, 8, 3]
    principals = found["AuthorizationPolicy"]["api-to-auth"]["spec"]["rules"][0]["from"][0]["source"]["principals"]
    assert principals == ["cluster.local/ns/shop-prod/sa/api"]
    assert found["AuthorizationPolicy"]["allow-nothing"]["spec"] == {}


# -- the integrity gate reads the mesh's resources ----------------------------------------------------------------

def _tampered(stack: str, mesh: str, kind: str, name: str, edit: Any) -> list[RecordedResource]:
    import copy
    import dataclasses

    resources = []
    for r in mesh_resources(stack, mesh):
        if r.inputs.get("kind") == kind and r.inputs.get("metadata", {}).get("name") == name:
            inputs = copy.deepcopy(r.inputs)
            edit(inputs)
            r = dataclasses.replace(r, inputs=inputs)
        resources.append(r)
    return resources


SCORES, CAPACITY, TIMEOUTS = "scores-match-deployed-config", "call-limits-within-capacity", "call-timeouts-and-limits"


@pytest.mark.parametrize(("mesh", "kind", "name", "edit", "also"), [
    # 900 per pod × 3 = 2700 calls/s admitted to api, which serves 2400
    ("linkerd", "HTTPLocalRateLimitPolicy", "api", lambda i: i["spec"]["overrides"][0].update(requestsPerSecond=WEB_API + 100), {CAPACITY}),
    # the new first rule (/admin) sets no timeout: those calls are not timed out
    ("linkerd", "HTTPRoute", "api", lambda i: i["spec"]["rules"].insert(0, {"matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                                                                           "backendRefs": i["spec"]["rules"][0]["backendRefs"]}), {TIMEOUTS}),
    # the filter itself: the bucket is inert, web's calls to api are unlimited
    ("istio", "EnvoyFilter", "web-call-limits", lambda i: i["spec"]["configPatches"].pop(0), {TIMEOUTS, CAPACITY}),
], ids=["linkerd-override-raised", "linkerd-route-rule-before-the-call", "istio-filter-not-inserted"])
def test_a_mesh_resource_that_disagrees_with_the_report_fails_the_integrity_gate(mesh: str, kind: str, name: str, edit: Any,
                                                                                  also: set[str]) -> None:
    """The integrity gate sees the deployed resource disagree with the report; the call gates, reading the same
    resources, see what the edit does to the call."""
    resources = _tampered("prod", mesh, kind, name, edit)
    analysis = analyze_config(mesh_config("prod", mesh), "prod", policy_config_path("prod"), resources)
    assert analysis.violated() == {(p, "mandatory") for p in {SCORES, *also}}, "\n".join(d.message for d in analysis.diagnostics)
    assert all("web.api" in d.message or "web -> api" in d.message for d in analysis.diagnostics)
