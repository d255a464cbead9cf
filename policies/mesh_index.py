"""The deployed Kubernetes resources a service mesh acts on, indexed once per gate run — nothing from `components`.

A mesh decides per pod: whether a pod runs its proxy (the injection marks on the pod template and its namespace),
which policy selects it (label selectors), which identity it has (its ServiceAccount). Pods are the templates of the
stack's Deployments and StatefulSets: `count` of them as deployed (`spec.replicas`, else the autoscaler's
`minReplicas`, 1 when unset — what admission is sized for, as `calls_deployed.deployed_workloads` reads it), `most`
as the autoscaler may scale them (`maxReplicas`, else `count`).

Selectors follow Kubernetes: a label selector (`matchLabels`/`matchExpressions`; a Linkerd Server's `podSelector`,
an Istio `selector`/`workloadSelector`) that is empty selects every pod of its namespace; a Service's selector that
is empty selects none (its endpoints are managed by hand).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policies.deployed_configs import Resource
from policies.model import get, items

WORKLOAD_KINDS = ("Deployment", "StatefulSet")
NAME_LABEL = "app.kubernetes.io/name"
LINKERD = "linkerd"
ISTIO = "istio"  # sidecar mode
AMBIENT = "istio-ambient"


@dataclass(frozen=True)
class Found:
    """One deployed Kubernetes object, with the Pulumi resource that carries it (what a diagnostic names)."""

    kind: str
    name: str
    urn: str | None
    props: Mapping[str, Any]

    @property
    def object_name(self) -> str:
        return str(get(self.props, "metadata", "name", default=self.name))

    @property
    def namespace(self) -> str:
        return str(get(self.props, "metadata", "namespace", default="default"))

    @property
    def api_group(self) -> str:
        return str(get(self.props, "apiVersion", default="")).rpartition("/")[0]

    @property
    def where(self) -> str:
        return f"{self.kind} '{self.name}'"

    def marks(self, *path: str) -> dict[str, str]:
        """Labels and annotations (annotations win) of the object, or of the template at `path`."""
        found: dict[str, str] = {}
        for key in ("labels", "annotations"):
            found.update({str(k): str(v) for k, v in (get(self.props, *path, "metadata", key, default={}) or {}).items()})
        return found


@dataclass(frozen=True)
class Pods:
    """The pods of one Deployment or StatefulSet."""

    resource: Found
    workload: str  # the pods' app.kubernetes.io/name
    namespace: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    account: str  # serviceAccountName: the pods' mesh identity
    count: int
    most: int
    ports: Mapping[str, int]  # the containers' named ports

    @property
    def name(self) -> str:
        return self.resource.object_name


@dataclass(frozen=True)
class Membership:
    """Which mesh proxy runs in a workload's pods, and whether it handles each request (an L7 proxy: Linkerd's, Istio's
    sidecar, an ambient waypoint) or each connection (Istio's ztunnel alone)."""

    mesh: str | None  # LINKERD, ISTIO, AMBIENT; None: no mesh proxy
    per_request: bool
    why: str


def label_selected(selector: Any, labels: Mapping[str, str]) -> bool:
    """A Kubernetes label selector (`{matchLabels, matchExpressions}`, or a plain label map): empty selects everything."""
    if not isinstance(selector, Mapping):
        return True
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        return all(labels.get(str(k)) == str(v) for k, v in selector.items())
    if not all(labels.get(str(k)) == str(v) for k, v in (get(selector, "matchLabels", default={}) or {}).items()):
        return False
    for expression in items(get(selector, "matchExpressions")):
        key, operator = str(get(expression, "key")), str(get(expression, "operator"))
        values = {str(v) for v in items(get(expression, "values"))}
        held = {"In": key in labels and labels[key] in values, "NotIn": key not in labels or labels[key] not in values,
                "Exists": key in labels, "DoesNotExist": key not in labels}
        if not held.get(operator, False):
            return False
    return True


def ports_of(text: str) -> set[int]:
    """The ports of a comma-separated list of ports and ranges (`8080,9000-9002`), as mesh annotations write them."""
    found: set[int] = set()
    for part in (p.strip() for p in text.split(",") if p.strip()):
        low, _, high = part.partition("-")
        if low.isdigit() and (not high or high.isdigit()):
            found.update(range(int(low), int(high or low) + 1))
    return found


class MeshIndex:
    """The deployed objects by kind, the pods of every workload, the Services and the namespaces."""

    def __init__(self, resources: Iterable[Resource]) -> None:
        self.by_kind: dict[str, list[Found]] = {}
        for resource in resources:
            kind = get(resource.props, "kind")
            if isinstance(kind, str):
                self.by_kind.setdefault(kind, []).append(Found(kind, resource.name, resource.urn, resource.props))
        scaled = {(h.namespace, str(get(h.props, "spec", "scaleTargetRef", "name"))): h.props
                  for h in self.by_kind.get("HorizontalPodAutoscaler", [])}
        self.pods = [self._pods(w, scaled.get((w.namespace, w.object_name))) for kind in WORKLOAD_KINDS for w in self.by_kind.get(kind, [])]
        self.services = {(s.namespace, s.object_name): s for s in self.by_kind.get("Service", [])}
        self.namespaces = {n.object_name: n for n in self.by_kind.get("Namespace", [])}

    @staticmethod
    def _pods(workload: Found, autoscaler: Mapping[str, Any] | None) -> Pods:
        template = get(workload.props, "spec", "template", default={})
        labels = {str(k): str(v) for k, v in (get(template, "metadata", "labels", default={}) or {}).items()}
        minimum = int(float(get(autoscaler, "spec", "minReplicas", default=1))) if autoscaler is not None else 1
        declared = get(workload.props, "spec", "replicas")
        count = int(float(declared)) if declared is not None else minimum
        most = max(count, int(float(get(autoscaler, "spec", "maxReplicas", default=count)))) if autoscaler is not None else count
        ports = {str(get(p, "name")): int(float(get(p, "containerPort"))) for c in items(get(template, "spec", "containers"))
                 for p in items(get(c, "ports")) if get(p, "name") is not None and get(p, "containerPort") is not None}
        return Pods(workload, labels.get(NAME_LABEL, workload.object_name), workload.namespace, labels,
                    {str(k): str(v) for k, v in (get(template, "metadata", "annotations", default={}) or {}).items()},
                    str(get(template, "spec", "serviceAccountName", default="default")), count, most, ports)

    def of_kind(self, kind: str, group: str | None = None) -> list[Found]:
        return [f for f in self.by_kind.get(kind, []) if group is None or f.api_group == group]

    def workload(self, name: str) -> list[Pods]:
        """The pods of a workload (its app.kubernetes.io/name)."""
        return [p for p in self.pods if p.workload == name]

    def selected(self, selector: Any, namespace: str) -> list[Pods]:
        return [p for p in self.pods if p.namespace == namespace and label_selected(selector, p.labels)]

    def service(self, name: str, namespace: str) -> Found | None:
        return self.services.get((namespace, name))

    def service_pods(self, service: Found) -> list[Pods]:
        selector = get(service.props, "spec", "selector", default={}) or {}
        return self.selected(selector, service.namespace) if selector else []

    def target_port(self, service: Found, port: int | None) -> tuple[int | None, str | None]:
        """(number, name) of the pods' port behind `port` of the Service (its first port when None)."""
        ports = items(get(service.props, "spec", "ports"))
        entry = next((p for p in ports if port is None or int(float(get(p, "port", default=-1))) == port), None)
        if entry is None:
            return None, None
        target = get(entry, "targetPort", default=get(entry, "port"))
        if isinstance(target, str) and not target.isdigit():
            numbers = {n for pods in self.service_pods(service) for name, n in pods.ports.items() if name == target}
            return (numbers.pop() if len(numbers) == 1 else None), target
        return int(float(target)), None

    def membership(self, pods: Pods) -> Membership:
        """Linkerd injects a pod whose template, else namespace, says `linkerd.io/inject: enabled` (or `ingress`).
        Istio injects its sidecar unless the pod's or the namespace's label disables it (`sidecar.istio.io/inject:
        "false"`, `istio-injection: disabled`), if either enables it (`"true"`, `enabled`, or a revision label
        `istio.io/rev` on the namespace); otherwise a pod of an ambient namespace (`istio.io/dataplane-mode:
        ambient`) is captured by ztunnel, per connection, unless a waypoint (`istio.io/use-waypoint`) handles it."""
        namespace_found = self.namespaces.get(pods.namespace)
        namespace = namespace_found.marks() if namespace_found is not None else {}
        pod = {**pods.annotations, **pods.labels}  # Istio: a label wins over the deprecated annotation
        linkerd = pods.annotations.get("linkerd.io/inject") or namespace.get("linkerd.io/inject")
        if linkerd in ("enabled", "ingress"):
            where = "pod template" if "linkerd.io/inject" in pods.annotations else f"namespace {pods.namespace}"
            return Membership(LINKERD, True, f"linkerd.io/inject: {linkerd} on its {where}")
        sidecar, injection = pod.get("sidecar.istio.io/inject"), namespace.get("istio-injection")
        if sidecar != "false" and injection != "disabled" and (sidecar == "true" or injection == "enabled" or "istio.io/rev" in namespace
                                                               or "istio.io/rev" in pod):
            return Membership(ISTIO, True, "Istio's sidecar injection")
        if (pod.get("istio.io/dataplane-mode") or namespace.get("istio.io/dataplane-mode")) == "ambient":
            waypoint = pod.get("istio.io/use-waypoint") or namespace.get("istio.io/use-waypoint")
            return Membership(AMBIENT, bool(waypoint), f"Istio ambient {'with the waypoint ' + waypoint if waypoint else 'without a waypoint'}")
        marks = ", ".join(f"{k}: {v}" for k, v in (("linkerd.io/inject", linkerd), ("sidecar.istio.io/inject", sidecar),
                                                   ("istio-injection", injection)) if v)
        marks = marks or "no linkerd.io/inject, sidecar.istio.io/inject or istio-injection mark"
        return Membership(None, False, f"no mesh injects its pods ({marks})")

    def skipped(self, pods: Pods, port: int | None) -> str:
        """The mark that sends a pod's connections to `port` around its own mesh proxy, "" when none does."""
        for mark in ("config.linkerd.io/skip-outbound-ports", "traffic.sidecar.istio.io/excludeOutboundPorts"):
            if port is not None and port in ports_of(pods.annotations.get(mark, "")):
                return f"{mark}: {pods.annotations[mark]}"
        return ""

    def memberships(self, pods: Sequence[Pods]) -> Membership:
        """A workload's membership: its least meshed pods' (pods of one workload normally agree)."""
        found = [self.membership(p) for p in pods]
        if not found:
            return Membership(None, False, "no deployed Kubernetes pods")
        return next((m for m in found if m.mesh is None), None) or next((m for m in found if not m.per_request), found[0])
