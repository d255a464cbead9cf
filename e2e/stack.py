"""The project's own stacks, recorded under Pulumi mocks and made runnable on the e2e dockerd.

``record_stack("dev")`` runs ``__main__.py`` under mocks (``offline.program``) with
outputs = inputs, so every Output the Docker target wires (e.g. network names) is
resolved. The stack file is first adapted to the e2e images (``as_e2e``: the
gateway image's stream module path, the Docker target, probes and commands the
stand-in backend serves); the graph, routes and limits stay as declared.
``alias_images`` then tags the locally built e2e images with the image names the
stack declares (the gateway and the service proxies -> ``netopt/gateway:e2e``,
every workload -> ``netopt/backend:e2e``), so the recorded inputs are applied
verbatim: no registry, no rewritten property.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from e2e.apply import CONTAINER
from e2e.images import BACKEND_IMAGE, GATEWAY_IMAGE, STREAM_MODULE

PROXY_ROLES = ("gateway", "service-proxy")  # the containers that run the gateway's image (label netopt.role)


def record_stack(stack: str) -> list[Any]:
    """The resources ``stack`` registers on the e2e dockerd (``offline.program.RecordedResource`` objects)."""
    return record_changed_stack(stack, lambda values: None)


def as_e2e(values: dict[str, Any]) -> None:
    """A stack's ``netopt:*`` values as the e2e images run them; the graph, routes and limits are untouched.

    - ``gateway.stream_module``: Debian's nginx has the stream module as a dynamic module (the e2e gateway image
      has ``libnginx-mod-stream``), so tcp service proxies load it;
    - the Docker target, with one gateway (a Kubernetes stack such as the boutique plans on Docker too);
    - the stand-in backend (``testbed/backend.py``, HTTP on ``$PORT``) runs its own command, and answers every
      workload's probe over HTTP: a grpc or tcp probe would need ``grpc_health_probe`` or ``nc`` in the image.
    """
    values["target"] = "docker"
    values["gateway"] = {**values["gateway"], "stream_module": STREAM_MODULE}
    if "replicas" in values["gateway"]:
        values["gateway"]["replicas"] = 1
    values["workloads"] = [_as_e2e_workload(w) for w in values["workloads"]]


def _as_e2e_workload(workload: dict[str, Any]) -> dict[str, Any]:
    adapted = {k: v for k, v in workload.items() if k not in ("command", "args")}
    health = workload.get("health") or {}
    if health.get("kind", "http") != "http":
        adapted["health"] = {"kind": "http", "path": "/healthz", **{k: health[k] for k in ("interval_s", "timeout_s", "retries") if k in health}}
    elif workload.get("protocol", "http") != "http" and "health" not in workload:
        adapted["health"] = {"kind": "http", "path": "/healthz"}
    return adapted


def _inputs(rec: Any) -> dict[str, Any]:
    return dict(rec["inputs"] if isinstance(rec, dict) else rec.inputs)


def _type(rec: Any) -> str:
    return str(rec["type"] if isinstance(rec, dict) else rec.type)


def role(inputs: dict[str, Any]) -> str | None:
    """A container's ``netopt.role`` label: "gateway", "service-proxy", or None for a workload's replica."""
    labels = {x.get("label"): x.get("value") for x in inputs.get("labels") or []}
    return labels.get("netopt.role")


def is_gateway(inputs: dict[str, Any]) -> bool:
    return role(inputs) == "gateway"


def alias_images(client: Any, resources: Iterable[Any]) -> dict[str, str]:
    """Tag the e2e images with every image reference the stack's containers use; return ref -> source."""
    done: dict[str, str] = {}
    for rec in resources:
        if _type(rec) != CONTAINER:
            continue
        inputs = _inputs(rec)
        ref = str(inputs["image"])
        source = GATEWAY_IMAGE if role(inputs) in PROXY_ROLES else BACKEND_IMAGE
        if done.get(ref, source) != source:
            raise ValueError(f"{ref} is used by the gateway (or a service proxy) and by a workload: cannot stand in for both")
        repo, _, tag = ref.rpartition(":")
        if not repo or "/" in tag:  # no tag, or a registry port (host:5000/name)
            repo, tag = ref, "latest"
        if "@" in ref:
            raise ValueError(f"{ref}: digest references cannot be re-tagged locally")
        client.images.get(source).tag(repo, tag)
        done[ref] = source
    return done


def record_changed_stack(stack: str, change: Callable[[dict[str, Any]], None]) -> list[Any]:
    """The resources ``stack`` registers on the e2e dockerd (``as_e2e``) after ``change`` edited its ``netopt:*``
    config (keys without the namespace, values parsed): what the next ``pulumi up`` of the changed stack file
    would send."""
    from offline.program import run_program
    from offline.stack_config import cli_config, stack_file

    config = cli_config(stack_file(stack))
    values = {k.removeprefix("netopt:"): json.loads(v) if v[:1] in "[{" else v for k, v in config.items() if k.startswith("netopt:")}
    as_e2e(values)
    change(values)
    edited = {**config, **{f"netopt:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}}
    return list(run_program(edited, stack, preview=False))
