"""Find and read a stack's config the way the Pulumi CLI does (honouring `stackConfigDir` in Pulumi.yaml)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent


class StackNotFoundError(Exception):
    pass


def project_settings(project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    settings: dict[str, Any] = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())
    return settings


def stack_file(stack: str, project_dir: Path = PROJECT_DIR) -> Path:
    config_dir = project_dir / str(project_settings(project_dir).get("stackConfigDir", "."))
    path = config_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in config_dir.glob("Pulumi.*.yaml"))
        raise StackNotFoundError(f"no stack '{stack}': {path} does not exist (stacks: {', '.join(known) or 'none'})")
    return path


def cli_config(path: Path) -> dict[str, str]:
    """The stack file's `config:` as the CLI passes it to a program: every value a string, objects as JSON."""
    document = yaml.safe_load(path.read_text()) or {}
    config = document.get("config") or {}
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}
