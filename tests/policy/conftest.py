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

STOCK_PACK_VERSION = "0.0.0-other"
_STOCK_PACK = """\
# The real pack, started as the engine starts it, but seeing pulumi-policy report another version: the fast path's
# version guard must fall back to the library's stock path (and say so, recorded in the file `warnings`).
import importlib.metadata, runpy, sys, warnings
_version = importlib.metadata.version
importlib.metadata.version = lambda name: {other!r} if name in ("pulumi-policy", "pulumi_policy") else _version(name)
def _record(message, *args, **kwargs):
    with open({warnings!r}, "a") as out:
        out.write(str(message) + "\\n")
warnings.showwarning = _record
runpy.run_path({main!r}, run_name="__main__")
"""


@pytest.fixture(scope="session")
def stock_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pack directory whose __main__.py runs policies/__main__.py with another pulumi-policy version reported."""
    directory = tmp_path_factory.mktemp("stock-pack")
    (directory / "__main__.py").write_text(_STOCK_PACK.format(
        other=STOCK_PACK_VERSION, warnings=str(directory / "warnings"), main=str(ROOT / "policies" / "__main__.py")))
    return directory


@pytest.fixture(scope="session")
def shipped_analyses() -> dict[str, Analysis]:
    """Each shipped stack analyzed with its environment's policy config, once per test session."""
    analyses = {}
    for stack in SHIPPED:
        config = cli_config(stack_file(stack))
        environment = config["netopt:environment"]
        analyses[stack] = analyze(run_program(config, stack), stack=stack, config=config, policy_config=policy_config_path(environment))
    return analyses
