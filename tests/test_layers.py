"""The layers of components/ import only downward: spec <- plan <- render/targets <- resources (observe beside them).

Read from the source with `ast`, so a stray import fails here whether or not any test executes it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

COMPONENTS = Path(__file__).resolve().parent.parent / "components"

ALLOWED: dict[str, set[str]] = {
    "spec": {"spec"},
    "plan": {"spec", "plan"},
    "render": {"plan", "render"},  # the IR only: a renderer never reads the user's spec
    "targets": {"spec", "plan", "render", "targets"},
    "observe": {"spec", "plan", "render", "observe"},
    "resources": {"spec", "plan", "render", "targets", "observe", "resources"},
}
# Plan-stage checks of the one validation report (shared locations, Docker address room, cycles) build the plan.
EXCEPTIONS = {("spec/validation.py", "plan")}
PURE = {"spec", "plan", "render", "observe"}  # testable without Pulumi
PULUMI = {"pulumi", "pulumi_docker", "pulumi_kubernetes", "pulumi_command"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


MODULES = sorted(p for p in COMPONENTS.rglob("*.py") if p.parent != COMPONENTS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(COMPONENTS)))
def test_a_layer_imports_only_the_layers_below_it(path: Path) -> None:
    layer = path.relative_to(COMPONENTS).parts[0]
    relative = str(path.relative_to(COMPONENTS))
    for module in _imports(path):
        parts = module.split(".")
        if parts[0] == "components" and len(parts) > 1:
            allowed = parts[1] in ALLOWED[layer] or (relative, parts[1]) in EXCEPTIONS
            assert allowed, f"{relative} imports {module}: {layer}/ may import {sorted(ALLOWED[layer])}"
        if layer in PURE:
            assert parts[0] not in PULUMI, f"{relative} imports {module}: {layer}/ is pure"


def test_every_layer_is_checked() -> None:
    assert {p.relative_to(COMPONENTS).parts[0] for p in MODULES} == set(ALLOWED)
