"""What every gate shares: its config schema, config validation, and failing closed on unknown values.

A gate is a plain function that reads already-known values and reports violations; `resource_policy` and
`stack_policy` wrap it into a pulumi-policy `Policy` that

- validates the gate's config against the same JSON schema it declares to the engine (`configSchema`), and also
  rejects property names the schema does not declare (the engine's own check lets unknown names through, so a
  typo such as `maximun` would otherwise leave the default threshold in force). An invalid config is reported as a
  violation of that gate at its level instead of running with a guessed threshold;
- fills in the schema defaults, so a gate run without a config file uses documented values;
- turns pulumi-policy's `UnknownValueError` (a value that is unknown during preview) into a violation at the
  gate's own enforcement level. The library's default for an unknown is an *advisory* "can't run policy" note,
  which under a mandatory gate would mean the gate silently passes every preview: these gates fail closed instead;
- runs a resource gate's check only on the resource types it `reads` (the engine asks every resource policy about
  every resource: at 1,000 workloads, 5,000 resources, most of them networks and commands no gate reads), and says
  so through `ResourceGatePolicy.skips`, which the pack's fast path (`fastpath_patch.py`) asks before building a
  policy's arguments.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from jsonschema import Draft7Validator  # type: ignore[import-untyped]
from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

Category = Literal["integrity", "score", "capacity", "structure", "security", "observed"]
CATEGORIES: tuple[Category, ...] = ("integrity", "score", "capacity", "structure", "security", "observed")

Report = Callable[[str], None]
StackReport = Callable[[str, str | None], None]
ResourceCheck = Callable[[ResourceValidationArgs, dict[str, Any], Report], None]
StackCheck = Callable[[StackValidationArgs, dict[str, Any], StackReport], None]


@dataclass(frozen=True)
class Gate:
    """A gate's identity and config: `properties` is the JSON schema of each threshold, with its default."""

    name: str
    category: Category
    description: str
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    remediation: str = ""

    def schema(self) -> dict[str, Any]:
        """The schema the engine validates `--policy-pack-config` against (as the CLI builds it from configSchema)."""
        return {"type": "object", "properties": self.properties}

    def defaults(self) -> dict[str, Any]:
        return {key: prop["default"] for key, prop in self.properties.items() if "default" in prop}


class ConfigError(ValueError):
    pass


_SETTINGS: dict[tuple[str, str], dict[str, Any] | ConfigError] = {}
_LAST_SETTINGS: dict[str, tuple[dict[str, Any], dict[str, Any] | ConfigError]] = {}


def settings(gate: Gate, raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """The gate's effective config: schema-validated `raw` over the defaults; ConfigError lists every problem.

    The engine configures a pack once and then calls it per resource: each distinct config is validated once.
    """
    values = dict(raw or {})
    last = _LAST_SETTINGS.get(gate.name)
    if last is not None and last[0] == values:
        outcome = last[1]
    else:
        key = (gate.name, json.dumps(values, sort_keys=True, default=str))
        found = _SETTINGS.get(key)
        if found is None:
            try:
                found = _validated(gate, values)
            except ConfigError as error:
                found = error
            _SETTINGS[key] = found
        outcome = found
        _LAST_SETTINGS[gate.name] = (values, outcome)
    if isinstance(outcome, ConfigError):
        raise outcome
    return dict(outcome)


def _validated(gate: Gate, raw: Mapping[str, Any] | None) -> dict[str, Any]:
    values = dict(raw or {})
    values.pop("enforcementLevel", None)
    problems = [f"unknown property '{key}' (known: {', '.join(gate.properties) or 'none'})" for key in values if key not in gate.properties]
    for error in sorted(Draft7Validator(gate.schema()).iter_errors(values), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in error.path) or "(config)"
        problems.append(f"{where}: {error.message}")
    if problems:
        raise ConfigError("; ".join(problems))
    merged = {**gate.defaults(), **values}
    # Struct numbers arrive as floats: give integer thresholds back their type (messages say 2, not 2.0).
    return {k: int(v) if gate.properties.get(k, {}).get("type") == "integer" else v for k, v in merged.items()}


def _config_violation(gate: Gate, error: ConfigError) -> str:
    return (f"the policy config for '{gate.name}' is invalid: {error}. Threshold: the schema declared by this gate "
            f"({gate.schema()['properties']}). Fix: correct the '{gate.name}' entry of the --policy-pack-config file.")


def unknown_violation(gate: Gate, where: str, error: UnknownValueError) -> str:
    return (f"{where}: {error.message}, so '{gate.name}' cannot be checked; it fails closed instead of passing "
            "unverified. Every value this gate reads comes from stack config and is known in preview unless it was "
            "derived from another resource's output. Fix: make the value a plain (config-derived) input, or run this "
            "gate at advisory for the preview and check it again after `pulumi up`.")


def _config_or_report(gate: Gate, raw: Mapping[str, Any] | None, report_violation: ReportViolation) -> dict[str, Any] | None:
    """The gate's effective config, or None once an invalid config has been reported as a violation of the gate."""
    try:
        return settings(gate, raw)
    except ConfigError as error:
        report_violation(_config_violation(gate, error), None)
        return None


def _policy_fields(gate: Gate) -> dict[str, Any]:
    """What a resource and a stack policy take from their gate (all but `validate`)."""
    return {
        "name": gate.name,
        "description": gate.description,
        "config_schema": PolicyConfigSchema(properties=gate.properties) if gate.properties else None,
        "tags": [gate.category],
        "remediation_steps": gate.remediation or None,
    }


class ResourceGatePolicy(ResourceValidationPolicy):
    """A gate's resource policy: the library's, plus which resource types its check reads."""

    def __init__(self, gate: Gate, reads: frozenset[str], validate: Callable[[ResourceValidationArgs, ReportViolation], None]) -> None:
        super().__init__(validate=validate, **_policy_fields(gate))
        self.gate = gate
        self.reads = reads

    def skips(self, resource_type: str, raw_config: Mapping[str, Any] | None) -> bool:
        """Whether `validate` reports nothing for a resource of this type under this config, whatever its properties:
        the check does not read the type, and the config is valid (an invalid one is reported on every resource)."""
        if resource_type in self.reads:
            return False
        try:
            settings(self.gate, raw_config)
        except ConfigError:
            return False
        return True


def resource_policy(gate: Gate, check: ResourceCheck, reads: Iterable[str]) -> ResourceGatePolicy:
    """The gate as a resource policy whose check runs on the resource types in `reads` (and no others)."""
    types = frozenset(reads)

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        config = _config_or_report(gate, args.get_config(), report_violation)
        if config is None or args.resource_type not in types:
            return
        try:
            check(args, config, lambda message: report_violation(message, None))
        except UnknownValueError as error:
            report_violation(unknown_violation(gate, f"{args.resource_type} '{args.name}'", error), None)

    return ResourceGatePolicy(gate, types, validate)


def stack_policy(gate: Gate, check: StackCheck) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        config = _config_or_report(gate, args.get_config(), report_violation)
        if config is None:
            return

        def report(message: str, urn: str | None = None) -> None:
            report_violation(message, urn)

        try:
            check(args, config, report)
        except UnknownValueError as error:
            report_violation(unknown_violation(gate, "the stack", error), None)

    return StackValidationPolicy(validate=validate, **_policy_fields(gate))


def number(value: Any) -> float:
    """A numeric property (protobuf Struct numbers arrive as floats)."""
    return float(value)


def fmt(value: float) -> str:
    """A measured value or threshold, short and exact enough to compare (0.7, 124.1, 0.000476, 128000)."""
    if value and abs(value) >= 10_000:
        return f"{value:.0f}"
    return f"{value:.4g}"
