"""A service mesh's own resources for the calls between workloads (`kubernetes.mesh: linkerd | istio`), instead of
netopt's service proxies. One module per mesh, each reading only the plan's edges (`components.plan.calls`), the
workloads, and the names the kubernetes target gives them (`MeshInputs`); each returns plain manifests (dicts in
the API's camelCase) that the target registers as resources and `offline/crds.py` checks against the pinned CRDs.

What both meshes get, from this module: the Gateway API mesh route of each called workload (HTTPRoute or GRPCRoute,
v1, its parent the workload's Service: the split between versions, the timeout), and the durations in the Gateway
API's format. What differs (retries, limits, balancing, authorization, injection) is in `linkerd.py` / `istio.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from components.plan.calls import CalleePolicy, Edge
from components.spec.schema import Spec

Manifest = dict[str, Any]
MeshKind = Literal["linkerd", "istio"]
GATEWAY_API = "gateway.networking.k8s.io/v1"
GATEWAY_API_VERSION = "v1.2.1"
"""The Gateway API the routes are written against (and validated with): the newest Linkerd 2.18–2.19 support,
GRPCRoute v1 and HTTPRoute `timeouts` in Standard; HTTPRoute `retry` is in its experimental channel."""


@dataclass(frozen=True)
class MeshInputs:
    """What a mesh module reads: the calls (with their resolved policy), the workloads, and the target's naming."""

    spec: Spec  # for its workloads (ports, protocols, replicas) and the gateway's passive health; never its calls
    edges: Sequence[Edge]
    namespace: str
    routed: Sequence[str]  # the workloads the gateway reaches: it is their client too
    gateway: str  # the gateway's name: its ServiceAccount, the identity of its calls
    host: Callable[[str], str]  # a workload's Service -> its cluster DNS name
    selector: Callable[[str], dict[str, str]]  # a workload -> the labels that select its pods
    labels: Callable[[str, str], dict[str, str]]  # (owner, component) -> a resource's labels

    def callees(self) -> list[tuple[CalleePolicy, list[Edge]]]:
        """Each called workload's policy and its calls, in edge order."""
        found: dict[str, tuple[CalleePolicy, list[Edge]]] = {}
        for edge in self.edges:
            found.setdefault(edge.callee, (edge.policy, []))[1].append(edge)
        return list(found.values())

    def clients(self) -> dict[str, list[str]]:
        """Every workload some client reaches (a version of a callee, or a routed workload) -> its clients: its callers
        and, for a routed one, the gateway. The mesh authorizes exactly these identities."""
        found: dict[str, list[str]] = {}
        for edge in self.edges:
            for version, _ in edge.policy.versions:
                found.setdefault(version, [])
                if edge.caller not in found[version]:
                    found[version].append(edge.caller)
        for workload in self.routed:
            found.setdefault(workload, []).append(self.gateway)
        order = [w.name for w in self.spec.workloads]
        return {name: found[name] for name in order if name in found}

    def metadata(self, name: str, owner: str, component: str, annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": name, "namespace": self.namespace, "labels": self.labels(owner, component)}
        if annotations:
            metadata["annotations"] = dict(annotations)
        return metadata


@dataclass(frozen=True)
class MeshProfile:
    """What the kubernetes target adds for a mesh besides its resources: how pods join it, where its control plane
    is (every pod's proxy must reach it), which pod and Service annotations it reads."""

    kind: MeshKind
    namespace_labels: Mapping[str, str]
    namespace_annotations: Mapping[str, str]
    control_plane_namespace: str
    control_plane_ports: tuple[int, ...]
    gateway_pod_annotations: Callable[[int], dict[str, str]]  # the gateway's listen port -> annotations
    service_annotations: Callable[[Spec, str], dict[str, str]]  # a workload's Service
    resources: Callable[[MeshInputs], list[Manifest]]
    versions: Mapping[str, str] = field(default_factory=dict)  # what the resources need, for the README and the plan


def duration(seconds: float) -> str:
    """A Gateway API Duration (GEP-2257, `^([0-9]{1,5}(h|m|s|ms)){1,4}$`): whole seconds, else milliseconds."""
    ms = round(seconds * 1000)
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms" if ms <= 99999 else f"{ms // 1000}s{ms % 1000}ms"


def mesh_route(inputs: MeshInputs, policy: CalleePolicy, kind: str, rule: dict[str, Any], annotations: Mapping[str, str]) -> Manifest:
    """The callee's mesh route: parent its Service (the name its callers dial), one rule matching every call, sent to
    each version's Service at its weight. `rule` adds the mesh's timeouts and retries."""
    backends = [{"group": "", "kind": "Service", "name": version, "port": inputs.spec.workload(version).port, "weight": weight}
                for version, weight in policy.versions]
    match: dict[str, Any] = {"path": {"type": "PathPrefix", "value": "/"}} if kind == "HTTPRoute" else {}
    spec: dict[str, Any] = {
        "parentRefs": [{"group": "", "kind": "Service", "name": policy.workload, "port": policy.port}],
        "rules": [{**({"matches": [match]} if match else {}), "backendRefs": backends, **rule}],
    }
    return {"apiVersion": GATEWAY_API, "kind": kind, "metadata": inputs.metadata(policy.workload, policy.workload, "mesh-route", annotations),
            "spec": spec}


def profile(kind: str) -> MeshProfile:
    """The profile of `kubernetes.mesh` (linkerd or istio; `none` has no mesh)."""
    from components.targets.mesh import istio, linkerd

    profiles = {"linkerd": linkerd.PROFILE, "istio": istio.PROFILE}
    if kind not in profiles:
        raise ValueError(f"no service mesh is called {kind!r}; kubernetes.mesh is one of none, linkerd, istio")
    return profiles[kind]
