"""The policy verdicts of `make plan`: the pack run through offline.analyzer with the environment's config.

`make plan STACK=<s>` analyzes the resources the program registered with `policies/config/<environment>.json`,
exactly as `pulumi preview --stack <s> --policy-pack policies --policy-pack-config policies/config/<env>.json`
would, prints the verdicts as a table, puts them under `policy` in the JSON document, and exits non-zero on any
mandatory violation (the CLI's preview fails the same way).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from offline.analyzer import analyze, policy_config_path
from offline.program import RecordedResource
from offline.stack_config import PROJECT_DIR


def evaluate(stack: str, environment: str, config: Mapping[str, str], resources: list[RecordedResource],
             project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    """The `policy` section of the plan document (keys only grow)."""
    path = policy_config_path(environment)
    analysis = analyze(resources, stack=stack, config=config, policy_config=path if path.is_file() else None)
    violations = sorted((d.as_dict() for d in analysis.diagnostics), key=lambda v: (v["level"] != "mandatory", v["policy"], v["resource"]))
    for violation in violations:
        # The library prefixes every message with the policy's description; the table and JSON keep the specific part.
        violation["message"] = violation["message"].split("\n", 1)[-1]
    try:
        shown_path = str(path.relative_to(project_dir))
    except ValueError:
        shown_path = str(path)
    return {
        "pack": f"{analysis.pack}",
        "config": shown_path if path.is_file() else None,
        "violations": violations,
        "mandatory": sum(1 for v in violations if v["level"] == "mandatory"),
        "advisory": sum(1 for v in violations if v["level"] == "advisory"),
        "policies": {name: policy["level"] for name, policy in sorted(analysis.policies.items())},
        "not_applicable": sorted({f"{n.policy}: {n.reason}" for n in analysis.not_applicable}),
        "analyzed_resources": analysis.analyzed,
        "elapsed_s": round(analysis.timings.get("total_s", 0.0), 3),
    }


def render_table(policy: Mapping[str, Any], width: int = 118) -> list[str]:
    """The verdicts as text: one row per violation (level, policy, resource), its message wrapped beneath."""
    config = policy["config"] or "no config file: every gate at its default level (mandatory)"
    lines = [f"Policy pack {policy['pack']} ({config}; {len(policy['policies'])} policies, {policy['analyzed_resources']} resources, "
             f"{policy['elapsed_s']:.2f}s):"]
    violations = policy["violations"]
    if not violations:
        lines.append("  no violations")
    else:
        lines.append(f"  {'LEVEL':<10} {'POLICY':<32} RESOURCE")
        for v in violations:
            lines.append(f"  {v['level']:<10} {v['policy']:<32} {v['resource'] or '(stack)'}")
            lines += textwrap.wrap(v["message"], width=width, initial_indent="      ", subsequent_indent="      ")
    lines.append(f"  {policy['mandatory']} mandatory, {policy['advisory']} advisory"
                 + (" — a mandatory violation fails the plan, as `pulumi preview --policy-pack` does" if policy["mandatory"] else ""))
    return lines


def exit_code(policy: Mapping[str, Any] | None) -> int:
    return 1 if policy and policy["mandatory"] else 0
