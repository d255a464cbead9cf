"""Shared fixtures for the policy-pack tests: every analysis goes through offline.analyzer (a real pack process)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest` run without `python -m`: the project's packages are imported from the root
    sys.path.insert(0, str(ROOT))

from offline.analyzer import Analysis, analyze, policy_config_path  # noqa: E402
from offline.program import run_program  # noqa: E402
from offline.stack_config import cli_config, stack_file  # noqa: E402

from .overlays import SHIPPED  # noqa: E402


@pytest.fixture(scope="session")
def shipped_analyses() -> dict[str, Analysis]:
    """Each shipped stack analyzed with its environment's policy config, once per test session."""
    analyses = {}
    for stack in SHIPPED:
        config = cli_config(stack_file(stack))
        environment = config["netopt:environment"]
        analyses[stack] = analyze(run_program(config, stack), stack=stack, config=config, policy_config=policy_config_path(environment))
    return analyses
