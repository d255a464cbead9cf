"""The project's own stacks, recorded under Pulumi mocks and made runnable on the e2e dockerd.

``record_stack("dev")`` runs ``__main__.py`` under mocks (``offline.program``) with
outputs = inputs, so every Output the Docker target wires (e.g. network names) is
resolved. ``alias_images`` then tags the locally built e2e images with the image
names the stack declares (gateway -> ``netopt/gateway:e2e``, every workload ->
``netopt/backend:e2e``), so the recorded inputs are applied verbatim: no
registry, no rewritten property.
"""
from __future__ import annotations

from collections.abc import Iterable
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
