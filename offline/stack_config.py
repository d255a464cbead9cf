"""Find and read a stack's config the way the Pulumi CLI does (honouring `stackConfigDir` in Pulumi.yaml).

A stack file that is not valid YAML, or not shaped like one (`config:` holding `<namespace>:<key>: value`), is
a `StackFileError` naming file:line:column, never a traceback.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from offline.stack_yaml import Document, Problem, StackFileError, load

PROJECT_DIR = Path(__file__).resolve().parent.parent
STACK_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}"
"""What the Pulumi CLI accepts as a stack name; anything else (a path, `..`) names no stack file."""

__all__ = ["PROJECT_DIR", "StackFileError", "StackNotFoundError", "cli_config", "project_settings", "stack_file"]


class StackNotFoundError(Exception):
    pass


def project_settings(project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    document = load(project_dir / "Pulumi.yaml")
    if not isinstance(document.value, dict):
        raise StackFileError(document.path, [document.problem([], "Pulumi.yaml must be a mapping (name:, runtime:, ...)")])
    return document.value


def stack_file(stack: str, project_dir: Path = PROJECT_DIR) -> Path:
    config_dir = project_dir / str(project_settings(project_dir).get("stackConfigDir", "."))
    path = config_dir / f"Pulumi.{stack}.yaml"
    if not re.fullmatch(STACK_NAME, stack) or not path.is_file():
        known = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in config_dir.glob("Pulumi.*.yaml"))
        raise StackNotFoundError(f"no stack '{stack}': {path} does not exist (stacks: {', '.join(known) or 'none'})")
    return path


def cli_config(path: Path) -> dict[str, str]:
    """The stack file's `config:` as the CLI passes it to a program: every value a string, objects as JSON."""
    document = load(path)
    config = _config_section(document)
    problems: list[Problem] = []
    values: dict[str, str] = {}
    for key, value in config.items():
        if ":" not in key:
            problems.append(document.problem(["config", key], f"{key}: config keys are <namespace>:<name>, as the Pulumi CLI requires; "
                                                               f"did you mean netopt:{key}?"))
            continue
        if value is None:
            problems.append(document.problem(["config", key], f"{key} has no value; give it one, or remove the key to use the default"))
            continue
        try:
            values[key] = value if isinstance(value, str) else json.dumps(value)
        except (TypeError, ValueError):
            problems.append(document.problem(["config", key], f"{key} holds a value a config cannot carry (a set, binary, ...); "
                                                              "use text, numbers, true/false, lists and mappings"))
    if problems:
        raise StackFileError(path, problems)
    return values


def _config_section(document: Document) -> dict[str, Any]:
    example = "write `config:` and under it, indented, `netopt:environment: dev` and the other netopt:* keys"
    if document.value is None:
        raise StackFileError(document.path, [document.problem([], f"the file is empty; {example}")])
    if not isinstance(document.value, dict):
        kind = _kind(document.value)
        raise StackFileError(document.path, [document.problem([], f"the file holds {kind}, but a stack file is a mapping; {example}")])
    if "config" not in document.value:
        keys = ", ".join(map(str, document.value)) or "none"
        raise StackFileError(document.path, [document.problem([], f"no `config:` section (top-level keys: {keys}); {example}")])
    config = document.value["config"]
    if config is None:
        return {}
    if not isinstance(config, dict):
        message = f"config: holds {_kind(config)}, but it must be a mapping of `<namespace>:<key>: value`; {example}"
        raise StackFileError(document.path, [document.problem(["config"], message)])
    return config


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    return f"the text {value!r}" if isinstance(value, str) else f"a {type(value).__name__}"
