"""`make plan STACK=<s>`: run the real program under mocks and show what it would deploy and how it scores.

Exit status: 0 on success, 1 on invalid config (with the full report, no traceback) or on a mandatory policy
violation (the policy pack runs with policies/config/<environment>.json, as `pulumi preview --policy-pack` would;
`--no-policy` skips it), 2 when the stack does not exist. Text goes to stdout; `--format json` prints one JSON
document whose keys only grow.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from components.app_network import analyse
from components.config import namespace_values
from components.validation import SpecError, parse_spec
from offline import policy_gate
from offline.artifacts import write_artifacts
from offline.program import ProgramError, run_program
from offline.stack_config import PROJECT_DIR, StackNotFoundError, cli_config, stack_file


def build_plan_document(stack: str, project_dir: Path = PROJECT_DIR, out_dir: Path | None = None, policy: bool = True) -> dict[str, Any]:
    """Validate, run the program under mocks, write artifacts under build/<stack>/, run the policy pack, return the JSON document."""
    config = cli_config(stack_file(stack, project_dir))
    spec = parse_spec(namespace_values(config))  # fails before anything is registered or rendered
    resources = run_program(config, stack, project_dir)
    target, plan, report = analyse(spec)
    names = {r.urn: r.name for r in resources}
    artifacts = write_artifacts(target, plan, resources, out_dir or project_dir / "build" / stack)
    document = {
        "stack": stack,
        "environment": spec.environment,
        "target": spec.target,
        "resources": [{"type": r.type, "name": r.name, "parent": names.get(r.parent), "urn": r.urn, "parent_urn": r.parent or None}
                      for r in sorted(resources, key=lambda r: (r.type, r.name))],
        "scores": report["scores"],
        "capacity": report["capacity"],
        "report": report,
        "artifacts": artifacts,
    }
    if policy:
        document["policy"] = policy_gate.evaluate(stack, spec.environment, config, resources, project_dir)
    return document


def _fmt(value: float | None, digits: int = 3) -> str:
    return "∞" if value is None else f"{value:.{digits}f}"


def render_text(document: dict[str, Any]) -> str:
    lines = [f"netopt plan — stack {document['stack']} ({document['environment']}, target {document['target']})", "", "Resources:"]
    children: dict[str | None, list[dict[str, Any]]] = {}
    for resource in document["resources"]:
        children.setdefault(resource["parent"] and resource["parent_urn"], []).append(resource)

    def walk(parent_urn: str | None, depth: int) -> None:
        for resource in children.get(parent_urn, []):
            lines.append(f"  {'  ' * depth}{resource['type']}  {resource['name']}")
            walk(resource["urn"], depth + 1)

    walk(None, 0)
    lines.append(f"  ({len(document['resources'])} resources; the policy pack also analyzes the root pulumi:pulumi:Stack)")
    scores = document["scores"]
    lines += ["", "Scores:"]
    for key, label, unit in (("load_balancing", "load balancing  (1/n) Σ 1/t_i", "1/s"), ("routing", "routing         (1/m) Σ 1/r_j", ""),
                             ("flow_control", "flow control    (1/k) Σ 1/f_l", "s/req"), ("overall", "overall         (1/p) Σ 1/s_o", "")):
        lines.append(f"  {label} = {scores[key]:.4f} {unit}".rstrip())
    inputs = scores["inputs"]
    lines.append("  t_i:  " + ", ".join(f"{i['item']}={_fmt(i['value'])}s" for i in inputs["t_seconds"]))
    lines.append("  r_j:  " + ", ".join(f"{i['item']}={_fmt(i['value'], 0)}" for i in inputs["r"]))
    lines.append("  f_l:  " + ", ".join(f"{i['item']}={_fmt(i['value'], 1)}" for i in inputs["f_rps"]))
    lines.append("  s_o:  " + ", ".join(f"{i['item']}={_fmt(i['value'])}" for i in inputs["s"]))
    lines += ["", "Capacity at declared peak (M/M/c per replica):",
              f"  {'replica':<28}{'offered rps':>12}{'capacity rps':>14}{'util':>7}{'latency ms':>12}{'admitted util':>15}"]
    for row in document["capacity"]["replicas"]:
        flag = "  OVERLOADED" if row["overloaded"] else ""
        lines.append(f"  {row['workload'] + '/' + str(row['replica']):<28}{row['offered_rps']:>12.1f}{row['service_rate_rps']:>14.1f}"
                     f"{row['utilization']:>7.2f}{_fmt(row['mean_latency_ms'], 1):>12}{_fmt(row['admitted_utilization'], 2):>15}{flag}")
    lines += ["", "Artifacts:"] + [f"  {name}: {path}" for name, path in document["artifacts"].items()]
    if document.get("policy") is not None:
        lines += ["", *policy_gate.render_table(document["policy"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make plan", description=__doc__)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--no-policy", action="store_true", help="skip the policy pack")
    args = parser.parse_args(argv)
    try:
        document = build_plan_document(args.stack, policy=not args.no_policy)
    except StackNotFoundError as error:
        print(f"netopt: {error}", file=sys.stderr)
        return 2
    except SpecError as error:
        print(error.report(), file=sys.stderr)
        return 1
    except ProgramError as error:
        print(f"netopt: the program failed: {error}", file=sys.stderr)
        return 1
    print(json.dumps(document, indent=2, sort_keys=True) if args.format == "json" else render_text(document))
    return policy_gate.exit_code(document.get("policy"))


if __name__ == "__main__":
    sys.exit(main())
