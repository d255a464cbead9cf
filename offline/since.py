"""What `pulumi up` will do to a deployed stack: the plan compared with a previous plan (`make plan SINCE=`).

Every plan carries `fingerprints`: per resource, a digest of each input (and, for Kubernetes objects, of
`metadata.name` and each `spec` field), its ignore_changes, delete-before-replace and per-input dependencies.
Two plans' fingerprints give each resource's changed inputs; `components.targets.update_rules` (the provider
schemas) says whether the provider updates or replaces; a replacement makes the inputs that depend on it change
too, as the engine does. Each resource then gets one action:

- unchanged;
- reloaded in place: the config of the Docker gateway or of a service proxy, delivered to the running container,
  `nginx -t`, graceful reload;
- rolled: a replica of a multi-replica Docker workload (replaced one at a time, each healthy and back in the
  gateway's rotation before the next), or a Kubernetes workload whose pod template changed and whose controller
  replaces its pods a few at a time (`update_rules.kubernetes_rollout`: a Deployment's RollingUpdate, a
  StatefulSet of several replicas one pod at a time, a DaemonSet node by node);
- recreated: a Kubernetes workload whose pods all stop before new ones start (a Deployment with `Recreate`, a
  single-replica StatefulSet: warned about, it drops traffic);
- staged: a new pod template that `OnDelete` (or a StatefulSet partition) applies only to pods deleted later;
- replaced: deleted and created again (on Docker delete-first, on Kubernetes delete-first when the name stays:
  warned about when it drops traffic);
- updated in place, added, removed.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

from components.targets.update_rules import COMMAND, CONTAINER, NETWORK, RolloutFacts, classify, kubernetes_kind, kubernetes_rollout
from offline.program import RecordedResource


class PreviousPlanError(Exception):
    """The SINCE file is not a plan JSON this version can compare with."""


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _role(resource: RecordedResource) -> str:
    inputs = resource.inputs
    if resource.type == CONTAINER:
        labels = {x.get("label"): x.get("value") for x in inputs.get("labels") or []}
        if labels.get("netopt.role") == "service-proxy":
            return f"service-proxy:{labels.get('netopt.fronts', '')}"
        return "gateway" if labels.get("netopt.role") == "gateway" else f"workload:{labels.get('netopt.workload', '')}"
    if resource.type == COMMAND:
        proxy = (inputs.get("environment") or {}).get("NETOPT_PROXY")
        if proxy is None:
            return "roll-pause"
        return "gateway-config" if str(proxy).endswith("-gateway") else "proxy-config"
    return ""


def _input_digests(resource: RecordedResource) -> dict[str, str]:
    digests = {key: _digest(value) for key, value in resource.inputs.items()}
    if resource.type.startswith("kubernetes:"):
        digests["metadata.name"] = _digest((resource.inputs.get("metadata") or {}).get("name"))
        digests["metadata.namespace"] = _digest((resource.inputs.get("metadata") or {}).get("namespace"))
        for key, value in (resource.inputs.get("spec") or {}).items() if isinstance(resource.inputs.get("spec"), dict) else ():
            digests[f"spec.{key}"] = _digest(value)
    return digests


_WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def _rollout(resource: RecordedResource) -> dict[str, Any] | None:
    """What decides how a Kubernetes workload's pods are replaced (its new spec's strategy and replicas), and an
    autoscaler's target and minimum (the replicas of a workload that leaves them to it)."""
    kind = kubernetes_kind(resource.type)
    spec = resource.inputs.get("spec") if resource.type.startswith("kubernetes:") else None
    if not isinstance(spec, dict):
        return None
    if kind == "HorizontalPodAutoscaler":
        return {"target": (spec.get("scaleTargetRef") or {}).get("name"), "min_replicas": spec.get("minReplicas", 1)}
    if kind not in _WORKLOAD_KINDS:
        return None
    strategy = spec.get("strategy" if kind == "Deployment" else "updateStrategy") or {}
    rolling = strategy.get("rollingUpdate") or {}
    return {"name": (resource.inputs.get("metadata") or {}).get("name"), "replicas": spec.get("replicas"),
            "strategy": strategy.get("type", "RollingUpdate"), "max_surge": rolling.get("maxSurge"),
            "max_unavailable": rolling.get("maxUnavailable"), "partition": int(rolling.get("partition") or 0)}


def fingerprints(resources: list[RecordedResource]) -> dict[str, dict[str, Any]]:
    """The part of a plan the next plan compares with (the `fingerprints` key of the JSON)."""
    return {r.urn: {"type": r.type, "name": r.name, "role": _role(r), "inputs": _input_digests(r),
                    "has_update_command": bool(r.inputs.get("update")) if r.type == COMMAND else False,
                    "ignore_changes": r.ignore_changes, "delete_before_replace": r.delete_before_replace,
                    "property_dependencies": {k: v for k, v in r.property_dependencies.items() if v},
                    **({"rollout": rollout} if (rollout := _rollout(r)) is not None else {})}
            for r in resources if r.custom}


def load_previous(path: str | Path) -> dict[str, Any]:
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise PreviousPlanError(f"SINCE={path}: cannot read a plan JSON ({error}); write one with "
                                "`make plan STACK=<s> FORMAT=json > <file>`") from None
    if not isinstance(document, dict) or not isinstance(document.get("fingerprints"), dict):
        raise PreviousPlanError(f"SINCE={path}: the file has no `fingerprints` (a plan from before updates were "
                                "planned, or not a plan): write it again with `make plan STACK=<s> FORMAT=json > <file>`")
    return document


def _changes(old: dict[str, Any], new: dict[str, Any], replaced: set[str]) -> set[str]:
    before, after = old["inputs"], new["inputs"]
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)} - set(new["ignore_changes"])
    if new["type"].startswith("kubernetes:"):
        changed = {k for k in changed if k != "spec"}  # judged per spec field
    return changed | {k for k, deps in new["property_dependencies"].items() if replaced & set(deps)}


def _replacements(previous: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    """urn -> changed inputs for every resource in both plans, the replacements propagated to a fixpoint."""
    replaced: set[str] = set()
    while True:
        changes = {urn: _changes(previous[urn], fp, replaced) for urn, fp in current.items() if urn in previous}
        now = {urn for urn, changed in changes.items() if _classify(current[urn], changed) == "replace"}
        if now == replaced:
            return changes
        replaced = now


def _classify(fp: dict[str, Any], changed: set[str]) -> str | None:
    return classify(fp["type"], _top(changed), {"update": fp.get("has_update_command")})


def _top(changed: set[str]) -> set[str]:
    return {k.split(".")[0] if not k.startswith(("metadata.", "spec.")) else k for k in changed}


def _facts(fp: dict[str, Any], current: dict[str, dict[str, Any]]) -> RolloutFacts:
    rollout = fp["rollout"]
    replicas = rollout["replicas"]
    if replicas is None:  # autoscaled: the fewest pods the autoscaler keeps
        replicas = min((int(other["rollout"]["min_replicas"]) for other in current.values()
                        if kubernetes_kind(other["type"]) == "HorizontalPodAutoscaler" and other.get("rollout", {}).get("target") == rollout["name"]),
                       default=None)
    return RolloutFacts(kubernetes_kind(fp["type"]), replicas, rollout["strategy"], rollout["max_surge"], rollout["max_unavailable"],
                        rollout["partition"])


def _action(fp: dict[str, Any], changed: set[str], replicas: Counter[str], current: dict[str, dict[str, Any]]) -> tuple[str, str | None]:
    """(action, why it drops traffic or None)."""
    change = _classify(fp, changed)
    role = fp["role"]
    if change is None:
        return "unchanged", None
    if change == "update" and "spec.template" in changed and "rollout" in fp and kubernetes_kind(fp["type"]) in _WORKLOAD_KINDS:
        step = kubernetes_rollout(_facts(fp, current))
        return step.action, step.drops
    if change == "update":
        return ("reloaded in place" if role in ("gateway-config", "proxy-config") else "updated in place"), None
    if role == "roll-pause" or (role.startswith("workload:") and replicas[role] > 1):
        return "rolled", None
    return "replaced", _replaced_drops(fp, changed)


def _replaced_drops(fp: dict[str, Any], changed: set[str]) -> str | None:
    if fp["type"].startswith("kubernetes:"):
        # pulumi-kubernetes deletes first when the replacement keeps its name and namespace (two objects cannot share them)
        kind = kubernetes_kind(fp["type"])
        if changed & {"metadata.name", "metadata.namespace"} or kind not in (*_WORKLOAD_KINDS, "Service"):
            return None
        return f"the {kind} keeps its name, so it is deleted before it is created again: nothing serves in between"
    if not fp["delete_before_replace"] and fp["type"] != NETWORK:
        return None
    if fp["role"] == "gateway":
        return "the gateway container is replaced delete-first: the published port refuses connections until the new gateway is healthy"
    if fp["role"].startswith("service-proxy:"):
        callee = fp["role"].removeprefix("service-proxy:")
        return f"the service proxy of {callee} is replaced delete-first: every call to {callee} fails until the new proxy is healthy"
    if fp["role"].startswith("workload:"):
        workload = fp["role"].removeprefix("workload:")
        return (f"workload {workload} has one replica: its update has a gap (requests to it fail from the delete until the new "
                "container is healthy); set replicas: 2 to roll it without one")
    return "replaced delete-first; what runs on it is replaced too"


def update_plan(previous: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """The `update` key of the plan JSON: one step per resource of either plan, and the warnings."""
    before, current = previous["fingerprints"], document["fingerprints"]
    changes = _replacements(before, current)
    replicas = Counter(fp["role"] for fp in current.values() if fp["role"].startswith("workload:"))
    steps, warnings = [], []
    for urn, fp in sorted(current.items(), key=lambda item: (item[1]["type"], item[1]["name"])):
        action, drops = ("added", None) if urn not in before else _action(fp, changes[urn], replicas, current)
        steps.append({"urn": urn, "type": fp["type"], "name": fp["name"], "action": action,
                      "changed": sorted(changes.get(urn, ()))})
        if drops:
            warnings.append(f"{fp['name']}: {drops}")
    for urn, fp in sorted(before.items(), key=lambda item: (item[1]["type"], item[1]["name"])):
        if urn not in current:
            steps.append({"urn": urn, "type": fp["type"], "name": fp["name"], "action": "removed", "changed": []})
    return {"since_stack": previous.get("stack"), "steps": steps, "warnings": warnings,
            "drops_traffic": bool(warnings)}


def render_text(update: dict[str, Any]) -> list[str]:
    lines = ["", f"Update since the previous plan (stack {update['since_stack']}):"]
    unchanged = 0
    for step in update["steps"]:
        if step["action"] == "unchanged":
            unchanged += 1
            continue
        changed = f"  ({', '.join(step['changed'])})" if step["changed"] else ""
        lines.append(f"  {step['action']:<18}{step['type']}  {step['name']}{changed}")
    lines.append(f"  ({unchanged} unchanged)")
    lines += [f"  ! drops traffic: {w}" for w in update["warnings"]] or ["  no step drops traffic"]
    return lines
