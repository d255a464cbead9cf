"""Read the `netopt` namespace from Pulumi config and validate it into a `Spec`.

The Pulumi CLI hands config to the program as strings (structured values as JSON text); the offline plan sets
the same strings from the stack file, so both paths parse config identically.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from components.spec.schema import Spec
from components.spec.validation import NAMESPACE, Issue, SpecError, key_path, parse_spec


def namespace_values(config: Mapping[str, str]) -> dict[str, Any]:
    """`netopt:<key>` entries of a Pulumi config map, with JSON values decoded."""
    values: dict[str, Any] = {}
    issues = []
    for full_key, text in config.items():
        namespace, _, key = full_key.partition(":")
        if namespace != NAMESPACE:
            continue
        if isinstance(text, str) and text[:1] in ("{", "["):
            try:
                values[key] = json.loads(text)
            except json.JSONDecodeError as err:
                issues.append(Issue(key_path([key]), f"not valid JSON/YAML structure: {err.msg}"))
            except RecursionError:  # the CLI hands over what its own parser read: a value nested thousands deep
                issues.append(Issue(key_path([key]), "nests too deeply to read (thousands of levels); a stack config is a few levels deep"))
        else:
            values[key] = text
    if issues:
        raise SpecError(issues)
    return values


def spec_from_pulumi_config() -> Spec:
    import pulumi.runtime.config as runtime_config

    return parse_spec(namespace_values(runtime_config.CONFIG.get()))
