"""Custom resources checked offline against the published CRD schemas vendored in `offline/crds/` (SOURCES.md).

kubernetes-validate knows only the core kinds (a custom resource passes it with a warning), so the mesh's resources
(Gateway API routes, Linkerd and Istio policies) are checked here, with two validators we did not write:
openapi-schema-validator for each CRD's `openAPIV3Schema` (the OpenAPI 3.0 dialect structural schemas are written
in: `nullable`, int32/int64 formats) and the CEL library (`common-expression-language`) for its
`x-kubernetes-validations`. The glue below only does what the API server does before it validates: pick the served
version, reject unknown fields (strict field validation) unless a schema preserves them, read
`x-kubernetes-int-or-string`, apply the schema's defaults before the CEL rules (which read them), and escape the
field names CEL reserves (`namespace` → `__namespace__`). `metadata` is the API server's, not the CRD's: names and
labels stay with kubernetes-validate's core checks and our own code.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

CRD_DIR = Path(__file__).parent / "crds"
_CEL_RESERVED = frozenset({"namespace", "as", "break", "const", "continue", "else", "for", "function", "if", "import", "let",
                           "loop", "package", "return", "var", "void", "while"})
Schema = dict[str, Any]


@functools.cache
def served_schemas(directory: Path = CRD_DIR) -> dict[tuple[str, str], Schema]:
    """(apiVersion, kind) -> openAPIV3Schema of every served version of every vendored CRD."""
    found: dict[tuple[str, str], Schema] = {}
    for path in sorted(directory.glob("*/*.yaml")):
        # Linkerd's files are Helm templates: only metadata lines are templated ({{ … }}), never a schema.
        text = "\n".join(line for line in path.read_text().splitlines() if "{{" not in line)
        for doc in yaml.safe_load_all(text):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if version.get("served", True):
                    found[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    return found


def is_custom(manifest: Mapping[str, Any]) -> bool:
    """Whether a vendored CRD defines this manifest's kind (else it is a core kind, kubernetes-validate's)."""
    return (manifest.get("apiVersion"), manifest.get("kind")) in served_schemas()


def _strict(schema: Schema, root: bool = False) -> Schema:
    """The schema as the API server applies it: unknown fields rejected, int-or-string read, metadata allowed."""
    s = copy.deepcopy(schema)
    if s.get("x-kubernetes-int-or-string") and "anyOf" not in s and "type" not in s:
        s["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if root:
        properties = s.setdefault("properties", {})
        for key in ("apiVersion", "kind"):
            properties.setdefault(key, {"type": "string"})
        properties.setdefault("metadata", {"type": "object"})
    if "properties" in s and "additionalProperties" not in s and not s.get("x-kubernetes-preserve-unknown-fields"):
        s["additionalProperties"] = False
    for name, sub in s.get("properties", {}).items():
        s["properties"][name] = _strict(sub)
    for key in ("items", "additionalProperties", "not"):
        if isinstance(s.get(key), dict):
            s[key] = _strict(s[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in s:
            s[key] = [_strict(sub) for sub in s[key]]
    return s


def _defaulted(schema: Schema, value: Any) -> None:
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                _defaulted(sub, value[name])
        if isinstance(schema.get("additionalProperties"), dict):
            for item in value.values():
                _defaulted(schema["additionalProperties"], item)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _defaulted(schema["items"], item)


def _escaped(value: Any) -> Any:
    if isinstance(value, dict):
        return {(f"__{k}__" if k in _CEL_RESERVED else k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    return value


def _cel_problems(schema: Schema, value: Any, path: str) -> list[str]:
    import cel  # common-expression-language

    found = []
    for rule in schema.get("x-kubernetes-validations", []):
        try:
            ok = cel.evaluate(rule["rule"], {"self": _escaped(value)})
        except Exception as error:  # a rule the library cannot evaluate is a problem, never a pass
            found.append(f"{path}: CEL rule could not be evaluated ({error}): {rule['rule']}")
            continue
        if ok is not True:
            found.append(f"{path}: {rule.get('message', rule['rule'])}")
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                found += _cel_problems(sub, value[name], f"{path}.{name}")
        if isinstance(schema.get("additionalProperties"), dict):
            for key, item in value.items():
                found += _cel_problems(schema["additionalProperties"], item, f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            found += _cel_problems(schema["items"], item, f"{path}[{i}]")
    return found


def problems(manifest: Mapping[str, Any]) -> list[str]:
    """Every problem of one custom resource as `path: message`; [] when its CRD accepts it. Structure first: the CEL
    rules assume a structurally valid object, as the API server's do."""
    from openapi_schema_validator import OAS30Validator, oas30_format_checker

    key = (manifest.get("apiVersion"), manifest.get("kind"))
    schema = served_schemas().get((str(key[0]), str(key[1])))
    if schema is None:
        return [f"no vendored CRD serves {key[0]} {key[1]} (offline/crds/SOURCES.md lists the pinned ones)"]
    validator = OAS30Validator(_strict(schema, root=True), format_checker=oas30_format_checker)
    found = [f"{'.'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}" for error in validator.iter_errors(dict(manifest))]
    if not found:
        defaulted = copy.deepcopy(dict(manifest))
        _defaulted(schema, defaulted)
        found = _cel_problems(schema, defaulted, "(root)")
    return found


def validate_custom(manifests: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """(one line per resource that passed, one line per problem) for the custom resources among `manifests`."""
    passed, failures = [], []
    for manifest in manifests:
        what = f"{manifest.get('kind')}/{manifest.get('metadata', {}).get('name')} ({manifest.get('apiVersion')})"
        found = problems(manifest)
        if found:
            failures += [f"{what}: {problem}" for problem in found]
        else:
            passed.append(f"{what} valid against its vendored CRD (offline/crds)")
    return passed, failures
