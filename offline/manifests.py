"""Kubernetes manifests from the resources the program registered under mocks: what the provider would send.

pulumi-kubernetes resources carry their full object as inputs (apiVersion, kind, metadata, spec/data, camelCase
keys), so a manifest is the recorded inputs with numbers made integral again (the wire format carries every
number as a double). The offline plan writes them in the layout the provider's render-only mode
(`renderYamlToDirectory`) uses, `1-manifest/<apiVersion>-<kind>-<namespace>-<name>.yaml`, plus one ordered
`manifests.yaml` that `kubectl apply -f` takes in a single pass.

`validate_manifests` checks each manifest with kubernetes-validate's strict schemas (unknown fields rejected)
for every Kubernetes version in `KUBERNETES_VERSIONS`; a kind with no schema is an error, not a warning. A custom
resource (a service mesh's, `kubernetes.mesh`) is checked against its pinned, vendored CRD instead (`offline/crds.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pulumi.runtime import rpc

from offline.crds import is_custom, validate_custom
from offline.program import ProgramError, RecordedResource

KUBERNETES_VERSIONS = ("1.30", "1.37")
"""The oldest Kubernetes the target supports (preStop `sleep` is on by default from 1.30) and the newest schema set."""

_TYPE_PREFIX = "kubernetes:"
_APPLY_ORDER = ("Namespace", "NetworkPolicy", "ServiceAccount", "ConfigMap", "Service", "Deployment", "StatefulSet", "PodDisruptionBudget",
                "HorizontalPodAutoscaler")


class ManifestError(ProgramError):
    """A recorded resource cannot become a manifest, or a manifest does not validate: the deployment would fail."""


def _plain(value: Any, path: str) -> Any:
    if isinstance(value, dict):  # sorted: the wire format gives no stable key order, a reviewed diff needs one
        return {key: _plain(value[key], f"{path}.{key}") for key in sorted(value)}
    if isinstance(value, list):
        return [_plain(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or value == rpc.UNKNOWN:
        raise ManifestError(f"{path} is not known before deployment; a manifest needs every value")
    return value


def to_manifest(resource: RecordedResource) -> dict[str, Any]:
    """The object a pulumi-kubernetes resource would apply: apiVersion, kind, metadata first, then the rest."""
    if not resource.type.startswith(_TYPE_PREFIX):
        raise ManifestError(f"{resource.type} {resource.name} is not a Kubernetes resource")
    body = _plain(resource.inputs, resource.name)
    for key in ("apiVersion", "kind", "metadata"):
        if key not in body:
            raise ManifestError(f"{resource.type} {resource.name} has no {key}")
    head = {key: body.pop(key) for key in ("apiVersion", "kind", "metadata")}
    return {**head, **body}


def manifests(resources: Iterable[RecordedResource]) -> list[dict[str, Any]]:
    """Every Kubernetes resource the program registered, as manifests in an order `kubectl apply` can follow."""
    found = [to_manifest(r) for r in resources if r.type.startswith(_TYPE_PREFIX)]
    rank = {kind: i for i, kind in enumerate(_APPLY_ORDER)}
    # Registration order under the runtime is not deterministic: order by kind, then namespace and name.
    return sorted(found, key=lambda m: (rank.get(m["kind"], len(rank)), m["metadata"].get("namespace", ""), m["metadata"]["name"]))


def render_path(manifest: dict[str, Any]) -> str:
    """Where render-only mode puts a manifest, relative to its directory."""
    metadata = manifest["metadata"]
    name = f"{manifest['apiVersion']}-{manifest['kind']}-{metadata.get('namespace') or 'default'}-{metadata['name']}".lower()
    return "1-manifest/" + name.replace("/", "_").replace(":", "_") + ".yaml"


def _dump(documents: Sequence[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False, width=1000)


def write_manifests(documents: Sequence[dict[str, Any]], out: Path) -> dict[str, str]:
    """Validate, then write `out/manifests/1-manifest/*.yaml` (render-only layout), `out/manifests.yaml` (ordered,
    one file) and `out/manifests.validation.txt` (what each manifest was validated against)."""
    report = validate_manifests(documents)
    directory = out / "manifests"
    if directory.exists():
        for stale in directory.glob("1-manifest/*.yaml"):
            stale.unlink()
    for manifest in documents:
        path = directory / render_path(manifest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_dump([manifest]))
    combined = out / "manifests.yaml"
    combined.write_text(_dump(documents))
    validation = out / "manifests.validation.txt"
    validation.write_text("\n".join(report) + "\n")
    return {"manifests_dir": str(directory), "manifests_yaml": str(combined), "manifests_validation": str(validation)}


def validate_manifests(documents: Iterable[dict[str, Any]], versions: Sequence[str] = KUBERNETES_VERSIONS, strict: bool = True) -> list[str]:
    """Validate against each Kubernetes version (a custom resource: against its vendored CRD); return one line per
    manifest and version that passed.

    Raises ManifestError listing every failure: a schema violation, or a kind/apiVersion the version has no
    schema for (kubernetes-validate's CLI only warns about those).
    """
    import kubernetes_validate

    documents = list(documents)
    passed, failures = validate_custom(m for m in documents if is_custom(m))
    for manifest in (m for m in documents if not is_custom(m)):
        what = f"{manifest.get('kind')}/{manifest.get('metadata', {}).get('name')} ({manifest.get('apiVersion')})"
        for version in versions:
            try:
                validated = kubernetes_validate.validate(manifest, version, strict=strict)
            except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as error:
                failures.append(f"{what} against {version}: unknown kind: {error.message}")
            except kubernetes_validate.ValidationError as error:
                location = ".".join(str(p) for p in error.path) or "(root)"
                failures.append(f"{what} against {version}: {location}: {error.message}")
            else:
                passed.append(f"{what} valid against {validated}{' (strict)' if strict else ''}")
    if failures:
        raise ManifestError("manifests do not validate:\n  " + "\n  ".join(failures))
    return passed
