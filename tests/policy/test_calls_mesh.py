"""The pack's reading of a service mesh's calls (policies/calls_mesh.py) on the manifests the program generates, against
values worked out by hand from the stacks and the meshes' documented behaviour — and edits of those manifests that move
exactly what the mesh would enforce.

Hand-worked inputs (stacks/Pulumi.prod.yaml; README's capacity section): api serves 3 replicas × 32 in flight / 0.040 s
= 2400 calls/s, all web's (its only caller): web -> api is limited to 2400 rps. auth serves 3 × 16 / 0.030 s = 1600/s,
shared by the declared call rates api 84 × 0.3 = 25.2 and api-canary 8 × 0.3 = 2.4: api gets 1600 × 25.2 / 27.6 =
1460.87 rps, api-canary 139.13 (whole per minute: 87652 and 8347). Every callee's timeout is 10 × its response time,
at least 1 s, and 2 tries: 2 s for the whole call.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from offline.program import RecordedResource, run_program
from policies.calls_mesh import MeshCall, mesh_calls, seconds
from policies.deployed_configs import Resource
from policies.mesh_index import ISTIO, LINKERD
from tests.kubernetes.test_mesh import mesh_config, mesh_resources

Edit = Callable[[dict[str, Any]], None]


def _calls(resources: list[RecordedResource], edits: dict[tuple[str, str], Edit] | None = None) -> dict[str, MeshCall]:
    """The mesh's view of every declared call, after editing the manifests named (kind, metadata.name)."""
    edited = []
    for r in resources:
        inputs = r.inputs
        edit = (edits or {}).get((str(inputs.get("kind")), str(inputs.get("metadata", {}).get("name"))))
        if edit is not None:
            inputs = copy.deepcopy(dict(inputs))
            edit(inputs)
        edited.append(Resource(r.type, r.name, inputs, r.urn))
    report = next(r.inputs["report"] for r in resources if r.type == "netopt:index:AppNetwork")
    edges = [(e["caller"], e["callee"], e["protocol"], e["port"]) for e in report["edges"]]
    return {c.route: c for c in mesh_calls(edited, edges)}


def _rates(call: MeshCall) -> dict[str, list[float]]:
    return {v.workload: [b.value for b in v.rates] for v in call.versions}


def _caps(call: MeshCall) -> dict[str, list[float]]:
    return {v.workload: [b.value for b in v.connections] for v in call.versions}


def test_durations_as_the_meshes_write_them() -> None:
    assert [seconds(t) for t in ("2s", "1500ms", "1m30s", "0.5s", "1h", "0s")] == [2.0, 1.5, 90.0, 0.5, 3600.0, 0.0]
    assert [seconds(t) for t in ("", "2", "2 s", "1.5", "s", None)] == [None] * 6


# -- what the generated resources enforce -------------------------------------------------------------------------

def test_linkerd_limits_each_caller_in_every_pod_of_the_callee() -> None:
    calls = _calls(mesh_resources("prod", "linkerd"))
    assert {c.mesh for c in calls.values()} == {LINKERD}
    # each pod keeps ⌊limit / 3⌋: 800, ⌊87652 / 60 / 3⌋ = 486, ⌊8347 / 60 / 3⌋ = 46; over the 3 pods
    assert {r: _rates(c) for r, c in calls.items()} == {"web.api": {"api": [2400]}, "api.auth": {"auth": [1458]},
                                                        "api-canary.auth": {"auth": [138]}}
    assert all(c.timeout_s == 2.0 and "timeouts.request" in c.timeout_from for c in calls.values())
    assert all(not v.connections and "no concurrency limit" in v.no_connections for c in calls.values() for v in c.versions)
    assert {b.key for c in calls.values() for v in c.versions for b in v.rates} == {
        "HTTPLocalRateLimitPolicy 'shop-prod-httplocalratelimitpolicy-api'#overrides[0]",
        "HTTPLocalRateLimitPolicy 'shop-prod-httplocalratelimitpolicy-auth'#overrides[0]",
        "HTTPLocalRateLimitPolicy 'shop-prod-httplocalratelimitpolicy-auth'#overrides[1]"}, "one bucket per caller"


def test_istio_limits_each_caller_in_its_own_sidecars_at_its_most_pods() -> None:
    calls = _calls(mesh_resources("prod", "istio"))
    assert {c.mesh for c in calls.values()} == {ISTIO}
    # token buckets per caller pod: web 800 × 3 pods; api ⌊87652 / 60 / 6⌋ = 243 × 6 (its autoscaler's maximum);
    # api-canary 46 × 3. Pools per caller pod (tests/kubernetes/test_mesh.py): 32 × 3, 8 × 6, 3 × 3.
    assert {r: _rates(c) for r, c in calls.items()} == {"web.api": {"api": [2400]}, "api.auth": {"auth": [1458]},
                                                        "api-canary.auth": {"auth": [138]}}
    assert {r: _caps(c) for r, c in calls.items()} == {"web.api": {"api": [96]}, "api.auth": {"auth": [48]},
                                                       "api-canary.auth": {"auth": [9]}}
    assert all(c.timeout_s == 2.0 and not c.balancing and not c.opaque for c in calls.values())


def test_a_grpc_callee_under_linkerd_is_limited_and_a_tcp_callee_is_not() -> None:
    calls = _calls(mesh_resources("boutique", "linkerd"))
    # paymentservice: 2 × 16 / 0.030 s = 1066.67 calls/s, all checkoutservice's: ⌊1066.67 / 2⌋ = 533 per pod
    payment = calls["checkoutservice.paymentservice"]
    assert _rates(payment) == {"paymentservice": [1066]} and payment.timeout_s == 2.0
    assert "annotation timeout.linkerd.io/request" in payment.timeout_from, "a GRPCRoute has no timeouts field"
    redis = calls["cartservice.redis-cart"]
    assert redis.protocol == "tcp" and _rates(redis) == _caps(redis) == {"redis-cart": []}
    assert "Linkerd has no rate or connection limit" in redis.versions[0].no_rate and redis.timeout_s is None


def test_a_tcp_callee_under_istio_gets_a_pool_and_both_timeouts() -> None:
    redis = _calls(mesh_resources("boutique", "istio"))["cartservice.redis-cart"]
    # redis-cart holds 64 connections, cartservice its only caller over 2 pods: 32 each; connect 1 s (the default
    # connect_timeout_s), idle 75 s (the workload's default idle_timeout_s)
    assert _caps(redis) == {"redis-cart": [64]} and (redis.connect_timeout_s, redis.idle_timeout_s) == (1.0, 75.0)
    assert "declares tcp" in redis.opaque


def test_a_split_is_limited_per_version_at_its_weight() -> None:
    """web -> api split 90/10 with api-canary: the call's limit is what saturates first, api at 2400 × 100/90 = 2666.67
    (api-canary: 3 × 32 / 0.045 × 100/10 = 21333); per version, its weight's part over its 3 pods."""
    config = mesh_config("prod", "linkerd")
    workloads = json.loads(config["netopt:workloads"])
    next(w for w in workloads if w["name"] == "api")["traffic_policy"] = {"split": [{"workload": "api", "weight": 90},
                                                                                     {"workload": "api-canary", "weight": 10}]}
    resources = run_program({**config, "netopt:workloads": json.dumps(workloads)}, "prod")
    web = _calls(resources)["web.api"]
    # Linkerd, in each version's pods: ⌊2666.67 × 0.9 / 3⌋ = 800, ⌊2666.67 × 0.1 / 3⌋ = 88
    assert _rates(web) == {"api": [2400], "api-canary": [264]}
    assert {v.workload: v.share for v in web.versions} == {"api": 0.9, "api-canary": 0.1}


# -- edits move what the mesh enforces ----------------------------------------------------------------------------

def _server(protocol: str) -> Edit:
    return lambda i: i["spec"].update(proxyProtocol=protocol)


def test_linkerd_sends_no_rate_limit_to_a_grpc_or_opaque_server() -> None:
    for protocol in ("gRPC", "TLS"):
        web = _calls(mesh_resources("prod", "linkerd"), {("Server", "api"): _server(protocol)})["web.api"]
        assert _rates(web) == {"api": []} and f"proxyProtocol {protocol}" in web.versions[0].no_rate
    # opaque: the clients do not even see requests (no route timeout either)
    web = _calls(mesh_resources("prod", "linkerd"), {("Server", "api"): _server("opaque")})["web.api"]
    assert _rates(web) == {"api": []} and "proxyProtocol opaque" in web.opaque and web.timeout_s is None
    for protocol in ("HTTP/2", "unknown"):
        assert _rates(_calls(mesh_resources("prod", "linkerd"), {("Server", "api"): _server(protocol)})["web.api"]) == {"api": [2400]}


def test_linkerd_total_identity_and_overrides() -> None:
    def total(i: dict[str, Any]) -> None:
        i["spec"]["total"] = {"requestsPerSecond": 100}

    def other_client(i: dict[str, Any]) -> None:
        i["spec"]["overrides"][1]["clientRefs"][0]["name"] = "gateway"
        i["spec"]["identity"] = {"requestsPerSecond": 20}

    calls = _calls(mesh_resources("prod", "linkerd"), {("HTTPLocalRateLimitPolicy", "auth"): total})
    # the total counts every client too: 100 × 3 pods, one bucket both callers share
    assert _rates(calls["api.auth"]) == {"auth": [300, 1458]} and _rates(calls["api-canary.auth"]) == {"auth": [300, 138]}
    assert len({b.key for c in ("api.auth", "api-canary.auth") for b in calls[c].versions[0].rates if b.value == 300}) == 1
    calls = _calls(mesh_resources("prod", "linkerd"), {("HTTPLocalRateLimitPolicy", "auth"): other_client})
    # api-canary's override now names the gateway: api-canary falls to the identity limit, 20 × 3
    assert _rates(calls["api-canary.auth"]) == {"auth": [60]} and _rates(calls["api.auth"]) == {"auth": [1458]}
    calls = _calls(mesh_resources("prod", "linkerd"), {("HTTPLocalRateLimitPolicy", "auth"): lambda i: i["spec"]["overrides"].pop(1)})
    assert _rates(calls["api-canary.auth"]) == {"auth": []} and "no override naming ServiceAccount api-canary" in \
        calls["api-canary.auth"].versions[0].no_rate
    zero = _calls(mesh_resources("prod", "linkerd"), {("HTTPLocalRateLimitPolicy", "api"):
                                                      lambda i: i["spec"]["overrides"][0].update(requestsPerSecond=0)})["web.api"]
    assert _rates(zero) == {"api": []}, "linkerd2-proxy drops an override of 0 rps"


def test_linkerd_limits_need_the_callees_pods_in_the_mesh() -> None:
    def opt_out(i: dict[str, Any]) -> None:
        i["spec"]["template"]["metadata"].setdefault("annotations", {})["linkerd.io/inject"] = "disabled"

    web = _calls(mesh_resources("prod", "linkerd"), {("Deployment", "api"): opt_out})["web.api"]
    assert _rates(web) == {"api": []} and "linkerd.io/inject: disabled" in web.versions[0].outside


def test_linkerd_timeouts_route_annotation_then_field_then_service() -> None:
    resources = mesh_resources("prod", "linkerd")

    def annotate(**marks: str) -> Edit:
        return lambda i: i["metadata"].setdefault("annotations", {}).update(marks)

    def no_field(i: dict[str, Any]) -> None:
        del i["spec"]["rules"][0]["timeouts"]

    assert _calls(resources, {("HTTPRoute", "api"): annotate(**{"timeout.linkerd.io/request": "7s"})})["web.api"].timeout_s == 7.0
    assert _calls(resources, {("HTTPRoute", "api"): no_field})["web.api"].timeout_s is None
    service = {("HTTPRoute", "api"): no_field, ("Service", "api"): annotate(**{"timeout.linkerd.io/request": "3s"})}
    assert _calls(resources, service)["web.api"].timeout_s == 3.0
    # any timeout annotation on the route overrides all of the Service's
    def response_only(i: dict[str, Any]) -> None:
        no_field(i)
        annotate(**{"timeout.linkerd.io/response": "1s"})(i)

    assert _calls(resources, {**service, ("HTTPRoute", "api"): response_only})["web.api"].timeout_s is None
    disabled = _calls(resources, {("HTTPRoute", "api"): lambda i: i["spec"]["rules"][0]["timeouts"].update(request="0s")})["web.api"]
    assert disabled.timeout_s is None and "disables" in disabled.timeout_from


def test_istio_bucket_must_be_inserted_enabled_enforced_and_per_envoy() -> None:
    resources = mesh_resources("prod", "istio")

    def value(edit: Callable[[dict[str, Any]], None]) -> Edit:
        return lambda i: edit(i["spec"]["configPatches"][1]["patch"]["value"]["typed_per_filter_config"]
                              ["envoy.filters.http.local_ratelimit"]["value"])

    half = value(lambda v: v["filter_enforced"]["default_value"].update(numerator=50))
    assert _rates(_calls(resources, {("EnvoyFilter", "web-call-limits"): half})["web.api"]) == {"api": []}
    per_connection = value(lambda v: v.update(local_rate_limit_per_downstream_connection=True))
    web = _calls(resources, {("EnvoyFilter", "web-call-limits"): per_connection})["web.api"]
    assert [b.key for b in web.versions[0].rates] == ["<varies>"], "one bucket per connection: unbounded"
    doubled = value(lambda v: v["token_bucket"].update(fill_interval="500ms"))
    assert _rates(_calls(resources, {("EnvoyFilter", "web-call-limits"): doubled})["web.api"]) == {"api": [4800]}
    not_inserted = _calls(resources, {("EnvoyFilter", "web-call-limits"): lambda i: i["spec"]["configPatches"].pop(0)})["web.api"]
    assert _rates(not_inserted) == {"api": []} and "inert" in not_inserted.versions[0].no_rate


def test_istio_every_envoy_route_of_the_virtual_host_keeps_its_own_bucket() -> None:
    def second_match(i: dict[str, Any]) -> None:
        i["spec"]["rules"][0]["matches"].append({"path": {"type": "PathPrefix", "value": "/v2"}})

    web = _calls(mesh_resources("prod", "istio"), {("HTTPRoute", "api"): second_match})["web.api"]
    assert _rates(web) == {"api": [4800]}, "two matches, two routes, two buckets of 800 per web pod"


def test_istio_pool_from_the_rule_selecting_the_caller_and_its_port_settings() -> None:
    resources = mesh_resources("prod", "istio")

    def port_level(i: dict[str, Any]) -> None:
        i["spec"]["trafficPolicy"]["portLevelSettings"] = [{"port": {"number": 8000}, "loadBalancer": {"simple": "LEAST_REQUEST"}}]

    web = _calls(resources, {("DestinationRule", "web-to-api"): port_level})["web.api"]
    assert _caps(web) == {"api": []}, "port-level settings replace the pool for the port; left out: Istio's unlimited default"
    unselected = _calls(resources, {("DestinationRule", "web-to-api"): lambda i: i["spec"]["workloadSelector"]["matchLabels"]
                                    .update({"app.kubernetes.io/name": "static"})})["web.api"]
    assert _caps(unselected) == {"api": []} and "no connectionPool" in unselected.versions[0].no_connections, "the plain rule has no pool"
    hashed = _calls(resources, {("DestinationRule", "web-to-api"): lambda i: i["spec"]["trafficPolicy"].update(
        loadBalancer={"consistentHash": {"useSourceIp": True}})})["web.api"]
    assert hashed.balancing and "source IP" in hashed.balancing[0]


@pytest.mark.parametrize(("kind", "name", "edit", "mesh"), [
    ("Deployment", "web", lambda i: i["spec"]["template"]["metadata"].setdefault("labels", {}).update({"sidecar.istio.io/inject": "false"}),
     None),
    ("Namespace", "shop-prod", lambda i: i["metadata"]["labels"].update({"istio-injection": "disabled"}), None),
    ("Namespace", "shop-prod", lambda i: (i["metadata"]["labels"].pop("istio-injection"),
                                          i["metadata"]["labels"].update({"istio.io/dataplane-mode": "ambient"})), "istio-ambient"),
    ("Namespace", "shop-prod", lambda i: (i["metadata"]["labels"].pop("istio-injection"),
                                          i["metadata"]["labels"].update({"istio.io/rev": "1-25"})), ISTIO),
], ids=["pod-opts-out", "namespace-disabled", "ambient-without-waypoint", "revision-label"])
def test_istio_injection_marks(kind: str, name: str, edit: Edit, mesh: str | None) -> None:
    web = _calls(mesh_resources("prod", "istio"), {(kind, name): edit})["web.api"]
    assert web.mesh == mesh
    if mesh != ISTIO:
        assert _rates(web) == {"api": []}
