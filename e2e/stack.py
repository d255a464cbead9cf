"""The project's own stacks, recorded under Pulumi mocks and made runnable on the e2e dockerd.

``record_stack("dev")`` runs ``__main__.py`` under mocks (``offline.program``) with
outputs = inputs, so every Output the Docker target wires (e.g. network names) is
resolved. ``alias_images`` then tags the locally built e2e images with the image
names the stack declares (gateway -> ``netopt/gateway:e2e``, every workload ->
``netopt/backend:e2e``), so the recorded inputs are applied verbatim: no
registry, no rewritten property.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from e2e.apply import CONTAINER
from e2e.images import BACKEND_IMAGE, GATEWAY_IMAGE


def record_stack(stack: str) -> list[Any]:
    """The resources ``stack`` registers (``offline.program.RecordedResource`` objects)."""
    from offline.program import run_stack

    return list(run_stack(stack, preview=False))


def _inputs(rec: Any) -> dict[str, Any]:
    return dict(rec["inputs"] if isinstance(rec, dict) else rec.inputs)


def _type(rec: Any) -> str:
    return str(rec["type"] if isinstance(rec, dict) else rec.type)


def is_gateway(inputs: dict[str, Any]) -> bool:
    labels = {x.get("label"): x.get("value") for x in inputs.get("labels") or []}
    return labels.get("netopt.role") == "gateway"


def alias_images(client: Any, resources: Iterable[Any]) -> dict[str, str]:
    """Tag the e2e images with every image reference the stack's containers use; return ref -> source."""
    done: dict[str, str] = {}
    for rec in resources:
        if _type(rec) != CONTAINER:
            continue
        inputs = _inputs(rec)
        ref = str(inputs["image"])
        source = GATEWAY_IMAGE if is_gateway(inputs) else BACKEND_IMAGE
        if done.get(ref, source) != source:
            raise ValueError(f"{ref} is used by the gateway and by a workload: cannot stand in for both")
        repo, _, tag = ref.rpartition(":")
        if not repo or "/" in tag:  # no tag, or a registry port (host:5000/name)
            repo, tag = ref, "latest"
        if "@" in ref:
            raise ValueError(f"{ref}: digest references cannot be re-tagged locally")
        client.images.get(source).tag(repo, tag)
        done[ref] = source
    return done


def record_changed_stack(stack: str, change: Callable[[dict[str, Any]], None]) -> list[Any]:
    """The resources ``stack`` registers after ``change`` edited its ``netopt:*`` config (keys without the
    namespace, values parsed): what the next ``pulumi up`` of the changed stack file would send."""
    from offline.program import run_program
    from offline.stack_config import cli_config, stack_file

    config = cli_config(stack_file(stack))
    values = {k.removeprefix("netopt:"): json.loads(v) if v[:1] in "[{" else v for k, v in config.items() if k.startswith("netopt:")}
    change(values)
    edited = {**config, **{f"netopt:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}}
    return list(run_program(edited, stack, preview=False))
