"""Replay `pulumi up` from one recorded stack to the next on a running :class:`~e2e.apply.Applied`.

The engine's sequence, reproduced step by step:

- resources are visited in registration order (the program registers a resource after what it depends on, and
  the engine starts a resource's step only once its dependencies' steps are done);
- a resource's changed inputs are its inputs that differ from the applied record, less its ``ignore_changes``,
  plus every input with a property dependency on a resource replaced earlier in this update (its value is
  unknown until the replacement exists, so the provider must treat it as changed);
- ``components.targets.update_rules`` says whether the provider updates that in place or replaces it (the
  provider schema); an input it cannot classify fails the whole update before any change is made;
- a delete-before-replace replacement first deletes the dependents that it replaces too (resources with a
  property dependency on it), then deletes and re-creates the resource; any other replacement creates the new
  resource and deletes the old one at the end, as do resources that are gone from the new stack (in reverse
  order);
- the first failed step stops the update: what was done stays done, the rest keeps its old state.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from components.targets.update_rules import CONTAINER, classify
from e2e.apply import Applied, ApplyError, ContainerPlan, NetworkPlan, VolumePlan, plan_record, start_container
from e2e.command import CommandFailedError, CommandPlan, run
from e2e.plans import _records


@dataclass(frozen=True)
class Step:
    urn: str
    name: str
    action: str  # "create", "update", "replace", "delete"
    changed: tuple[str, ...] = ()


def _urn(rec: dict[str, Any]) -> str:
    return str(rec.get("urn") or rec["name"])


def plan_update(applied: dict[str, dict[str, Any]], new: list[dict[str, Any]]) -> list[Step]:
    """The steps `pulumi up` takes from the applied records to `new` (pure; raises on an unclassified input)."""
    steps: list[Step] = []
    replaced: set[str] = set()
    for rec in new:
        urn = _urn(rec)
        if plan_record(rec) is None:
            continue  # validated (raises on anything unknown); components and the stack have no step
        old = applied.get(urn)
        if old is None:
            steps.append(Step(urn, rec["name"], "create"))
            continue
        before, after = old.get("inputs") or {}, rec.get("inputs") or {}
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)} - set(rec.get("ignore_changes") or ())
        changed |= {prop for prop, deps in (rec.get("property_dependencies") or {}).items() if replaced & set(deps)}
        action = classify(str(rec["type"]), changed, after)
        if action == "replace":
            replaced.add(urn)
        if action is not None:
            steps.append(Step(urn, rec["name"], action, tuple(sorted(changed))))
    urns = {_urn(r) for r in new}
    steps += [Step(urn, rec["name"], "delete") for urn, rec in reversed(list(applied.items()))
              if urn not in urns and plan_record(rec) is not None]
    return steps


def update_docker_resources(applied: Applied, resources: Iterable[Any]) -> list[Step]:
    """Take `applied` to the recorded `resources` the way `pulumi up` would; return the steps taken.

    Raises ApplyError (with the command's or Docker's message) on the first failed step.
    """
    new = _records(resources)
    steps = plan_update(applied.records, new)
    by_urn = {_urn(r): r for r in new}
    unsupported = [s for s in steps if s.action == "replace" and isinstance(plan_record(by_urn[s.urn]), (NetworkPlan, VolumePlan))]
    if unsupported:
        raise ApplyError(f"replacing networks or volumes is not supported by e2e.update: {[s.name for s in unsupported]}")
    deferred: list[dict[str, Any]] = []
    for step in steps:
        rec = by_urn.get(step.urn) or applied.records[step.urn]
        try:
            if step.action == "delete":
                _delete(applied, rec)
            elif step.action == "replace" and rec.get("delete_before_replace"):
                for dependent in _replaced_dependents(steps, by_urn, step.urn):
                    _delete(applied, applied.records[dependent])
                _delete(applied, applied.records[step.urn])
                _create(applied, rec)
            elif step.action == "replace":
                deferred.append(applied.records[step.urn])
                _create(applied, rec)
            elif step.action == "create":
                _create(applied, rec)
            else:
                _update(applied, rec)
        except CommandFailedError as e:
            raise ApplyError(f"update failed at {step.name} ({step.action}): {e}") from e
        applied.records[step.urn] = rec
    for old in deferred:  # create-before-delete: the old resource goes last (commands only here)
        plan = plan_record(old)
        if isinstance(plan, CommandPlan) and plan.delete:
            run(plan, plan.delete, applied.docker_host)
    for step in steps:
        if step.action == "delete":
            applied.records.pop(step.urn, None)
    return steps


def _replaced_dependents(steps: list[Step], by_urn: dict[str, dict[str, Any]], urn: str) -> list[str]:
    return [s.urn for s in steps if s.action == "replace"
            and any(urn in deps for deps in (by_urn[s.urn].get("property_dependencies") or {}).values())]


def _create(applied: Applied, rec: dict[str, Any]) -> None:
    plan = plan_record(rec)
    if isinstance(plan, ContainerPlan):
        start_container(applied.client, applied, plan)
    elif isinstance(plan, CommandPlan):
        run(plan, plan.create, applied.docker_host)
        applied.commands[plan.urn] = plan
    elif isinstance(plan, NetworkPlan):
        applied.networks[plan.name] = applied.client.networks.create(plan.name, **plan.kwargs)
    elif isinstance(plan, VolumePlan):
        applied.volumes[plan.name] = applied.client.volumes.create(plan.name, **plan.kwargs)


def _delete(applied: Applied, rec: dict[str, Any]) -> None:
    import docker.errors

    plan = plan_record(rec)
    if isinstance(plan, ContainerPlan):
        ctr = applied.containers.pop(plan.name)
        with contextlib.suppress(docker.errors.NotFound):
            if plan.destroy_grace is not None:
                ctr.stop(timeout=plan.destroy_grace)
            ctr.remove(force=True, v=plan.remove_volumes)
    elif isinstance(plan, CommandPlan):
        applied.commands.pop(plan.urn, None)
        if plan.delete:
            run(plan, plan.delete, applied.docker_host)
    elif isinstance(plan, (NetworkPlan, VolumePlan)):
        objs = applied.networks if isinstance(plan, NetworkPlan) else applied.volumes
        objs.pop(plan.name).remove()


_LIVE = ("mem_limit", "memswap_limit", "cpu_shares", "cpuset_cpus", "cpu_period", "cpu_quota", "restart_policy")


def _update(applied: Applied, rec: dict[str, Any]) -> None:
    """An in-place update: a Command runs `update` (else `create`); a container gets `docker update` for what
    the provider updates live, and keeps everything else (state-only inputs)."""
    plan = plan_record(rec)
    if isinstance(plan, CommandPlan):
        run(plan, plan.update or plan.create, applied.docker_host)
        applied.commands[plan.urn] = plan
    elif isinstance(plan, ContainerPlan) and rec["type"] == CONTAINER:
        live = {k: v for k, v in plan.host.items() if k in _LIVE}
        if live:
            applied.client.api.update_container(plan.name, **live)
        applied.plans[plan.name] = plan
