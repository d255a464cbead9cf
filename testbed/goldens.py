"""The golden nginx.conf files of the shipped stacks (tests/golden/): the test only compares, only this script writes.

After a reviewed renderer change, regenerate with `make goldens` (`python -m testbed.goldens [STACK ...]`) and
commit the diff. The script refuses to run inside a pytest run, so no environment variable or flag can make the
golden test pass by rewriting what it compares against.
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path

from components.resources.app_network import analyse
from components.resources.pulumi_config import namespace_values
from components.spec.validation import parse_spec
from components.targets import proxy_config
from offline.stack_config import PROJECT_DIR, cli_config, stack_file

GOLDEN_DIR = PROJECT_DIR / "tests" / "golden"
SHIPPED = ("dev", "staging", "prod")


def rendered(stack: str) -> str:
    """The gateway config the stack's target deploys, rendered from the shipped stack file."""
    target, plan, _ = analyse(parse_spec(namespace_values(cli_config(stack_file(stack)))))
    return proxy_config(target, plan.gateway)


def golden_path(stack: str, golden_dir: Path = GOLDEN_DIR) -> Path:
    return golden_dir / f"{stack}.nginx.conf"


def mismatch(stack: str, golden_dir: Path = GOLDEN_DIR) -> str | None:
    """None when the rendered config equals the golden file; otherwise a unified diff (golden -> rendered)."""
    path = golden_path(stack, golden_dir)
    expected = path.read_text() if path.is_file() else ""
    actual = rendered(stack)
    if actual == expected:
        return None
    diff = difflib.unified_diff(expected.splitlines(keepends=True), actual.splitlines(keepends=True), f"{path} (golden)", f"{stack} (rendered)")
    return "".join(diff) + "\nIf the change is intended and reviewed: make goldens, then commit tests/golden/."


def main(argv: list[str] | None = None, golden_dir: Path = GOLDEN_DIR) -> int:
    """Rewrite the golden files of the given stacks (default: all shipped ones); print which changed."""
    if "PYTEST_CURRENT_TEST" in os.environ or "pytest" in sys.modules:
        print("testbed.goldens: refusing to rewrite golden files inside a test run; run `make goldens` on its own", file=sys.stderr)
        return 2
    for stack in argv or SHIPPED:
        path = golden_path(stack, golden_dir)
        changed = mismatch(stack, golden_dir) is not None
        if changed:
            path.write_text(rendered(stack))
        print(f"{path}: {'updated' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
