"""The custom-resource check (`offline/crds.py`) can fail: for every kind netopt generates, one of its own resources
made invalid the way the API server would refuse it — by the CRD's structure (openapi-schema-validator) or by
one of its CEL rules (the CEL library) — is caught, with the CRD's own message."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from offline.crds import is_custom, problems, served_schemas
from offline.manifests import ManifestError, validate_manifests
from tests.kubernetes.test_mesh import mesh_manifests

Edit = Callable[[dict[str, Any]], None]


def _generated(kind: str, mesh: str, api_group: str) -> dict[str, Any]:
    """The first `kind` netopt generates for the boutique stack under `mesh` (a resource the tests know is valid)."""
    found = next(m for m in mesh_manifests("boutique", mesh) if m["kind"] == kind and m["apiVersion"].startswith(api_group))
    assert problems(found) == [], "the sample starts valid"
    return copy.deepcopy(found)


def _set(path: list[Any], value: Any) -> Edit:
    def edit(manifest: dict[str, Any]) -> None:
        target: Any = manifest
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


def _drop(path: list[Any]) -> Edit:
    def edit(manifest: dict[str, Any]) -> None:
        target: Any = manifest
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return edit


GW, LINKERD = "gateway.networking.k8s.io", "policy.linkerd.io"
RPS = ["spec", "overrides", 0, "requestsPerSecond"]
# (kind, mesh, api group, edit, a part of the expected message, by CEL?)
INVALID = [
    ("HTTPRoute", "istio", "gateway.networking.k8s.io", _set(["spec", "rules", 0, "timeouts"], {"request": "1s", "backendRequest": "2s"}),
     "backendRequest timeout cannot be longer than request timeout", True),
    ("HTTPRoute", "istio", "gateway.networking.k8s.io", _set(["spec", "rules", 0, "timeouts", "request"], "1.5s"), "does not match", False),
    ("HTTPRoute", "istio", GW, _drop(["spec", "rules", 0, "backendRefs", 0, "port"]), "Must have port for Service reference", True),
    ("GRPCRoute", "linkerd", GW, _set(["spec", "rules", 0, "timeouts"], {"request": "1s"}), "'timeouts' was unexpected", False),
    ("GRPCRoute", "linkerd", "gateway.networking.k8s.io", _set(["spec", "rules", 0, "matches"], [{"method": {"service": "bad service!"}}]),
     "service must only contain valid characters", True),
    ("Server", "linkerd", "policy.linkerd.io", _drop(["spec", "podSelector"]), "is not valid under any of the given schemas", False),
    ("HTTPLocalRateLimitPolicy", "linkerd", LINKERD, _set(RPS, "100/s"), "is not of type 'integer'", False),
    ("AuthorizationPolicy", "linkerd", LINKERD, _drop(["spec", "requiredAuthenticationRefs"]), "'requiredAuthenticationRefs' is a required", False),
    ("MeshTLSAuthentication", "linkerd", "policy.linkerd.io", _set(["spec", "identityRef"], [{"kind": "ServiceAccount", "name": "x"}]),
     "'identityRef' was unexpected", False),
    ("AuthorizationPolicy", "istio", "security.istio.io", _set(["spec"], {"rules": [{"from": [{"source": {
        "principals": ["cluster.local/ns/boutique/sa/frontend"], "serviceAccounts": ["boutique/frontend"]}}]}]}),
     "Cannot set serviceAccounts with namespaces or principals", True),
    ("DestinationRule", "istio", "networking.istio.io", _set(["spec", "trafficPolicy", "connectionPool", "tcp", "connectTimeout"], "0s"),
     "must be a valid duration greater than 1ms", True),
    ("DestinationRule", "istio", "networking.istio.io", _set(["spec", "trafficPolicy", "loadBalancer", "consistentHash"], {"useSourceIp": True}),
     "is valid under each of", False),
    ("EnvoyFilter", "istio", "networking.istio.io", _set(["spec", "configPatches", 0, "match", "context"], "SIDECAR_OUT"), "is not one of", False),
]


@pytest.mark.parametrize(("kind", "mesh", "group", "edit", "message", "by_cel"), INVALID,
                         ids=[f"{k}-{mesh}-{i}" for i, (k, mesh, *_rest) in enumerate(INVALID)])
def test_an_invalid_resource_of_each_generated_kind_is_refused(kind: str, mesh: str, group: str, edit: Edit, message: str, by_cel: bool) -> None:
    manifest = _generated(kind, mesh, group)
    edit(manifest)
    found = problems(manifest)
    assert any(message in problem for problem in found), found
    assert any(problem.startswith("(root)") for problem in found) == by_cel, "CEL problems carry the rule's path from (root)"
    with pytest.raises(ManifestError, match=kind):
        validate_manifests([manifest])


def test_every_generated_custom_kind_has_an_invalid_sample() -> None:
    generated = {(m["kind"], m["apiVersion"].split("/")[0]) for stack_mesh in ("linkerd", "istio") for m in mesh_manifests("boutique", stack_mesh)
                 if is_custom(m)}
    generated |= {(m["kind"], m["apiVersion"].split("/")[0]) for m in mesh_manifests("prod", "linkerd") if is_custom(m)}
    assert generated == {(kind, group) for kind, _, group, *_ in INVALID}


def test_the_vendored_crds_serve_the_pinned_versions() -> None:
    served = set(served_schemas())
    assert {("gateway.networking.k8s.io/v1", "HTTPRoute"), ("gateway.networking.k8s.io/v1", "GRPCRoute"),
            ("policy.linkerd.io/v1beta3", "Server"), ("policy.linkerd.io/v1alpha1", "HTTPLocalRateLimitPolicy"),
            ("policy.linkerd.io/v1alpha1", "AuthorizationPolicy"), ("policy.linkerd.io/v1alpha1", "MeshTLSAuthentication"),
            ("security.istio.io/v1", "AuthorizationPolicy"), ("networking.istio.io/v1", "DestinationRule"),
            ("networking.istio.io/v1alpha3", "EnvoyFilter")} <= served
    assert ("gateway.networking.k8s.io/v1alpha2", "GRPCRoute") not in served, "v1.2 removed GRPCRoute v1alpha2"
    assert problems({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}) != []
