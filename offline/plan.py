"""`make plan STACK=<s>`: run the real program under mocks and show what it would deploy and how it scores.

Exit status: 0 on success, 1 on an unreadable stack file or invalid config (with the full report, no traceback)
or on a mandatory policy violation (the policy pack runs with policies/config/<environment>.json, as `pulumi
preview --policy-pack` would; `--no-policy` skips it), 2 when the stack does not exist. Text goes to stdout;
`--format json` prints one JSON document whose keys only grow. A plan that fails before its artifacts are written
removes those of an earlier run from build/<stack>/, so what is there always matches the stack file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from components.observe.observed import CONFIG_KEY as OBSERVED_KEY
from components.observe.observed import observed_section, read_observation
from components.resources.pulumi_config import namespace_values
from components.spec.validation import SpecError, parse_spec
from offline import policy_gate, since
from offline.artifacts import proxy_config_path, remove_artifacts, write_artifacts
from offline.nginx_check import GatewayConfigError, check_gateway
from offline.program import ProgramError, run_program
from offline.stack_config import PROJECT_DIR, StackFileError, StackNotFoundError, cli_config, stack_file


def build_plan_document(stack: str, project_dir: Path = PROJECT_DIR, out_dir: Path | None = None, policy: bool = True,
                        observed: str | None = None, one_shot: bool = False) -> dict[str, Any]:
    """Validate, run the program under mocks, write artifacts under build/<stack>/, run the policy pack, return the JSON
    document. `one_shot`: the caller exits after this plan (the CLI), so the program run's garbage is left uncollected."""
    config = cli_config(stack_file(stack, project_dir))
    if observed:
        config[OBSERVED_KEY] = observed  # as `pulumi config set netopt-observed:file <path>` would
    spec = parse_spec(namespace_values(config))  # fails before anything is registered or rendered
    if observed:
        observed_section(spec, *read_observation(observed))  # so does an observation the program could not use
    program: dict[str, Any] = {}
    resources = run_program(config, stack, project_dir, one_shot=one_shot, program_globals=program)
    app = program["app"]  # the program's AppNetwork: the plan shows the analysis the run registered, not a second one
    target, plan, configs, report = app.analysis
    names = {r.urn: r.name for r in resources}
    nginx_check = check_gateway(target, plan)  # raises GatewayConfigError before anything is written
    artifacts = write_artifacts(plan, configs, resources, out_dir or build_dir(stack, project_dir))
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
        "fingerprints": since.fingerprints(resources),
        "nginx_check": nginx_check,
        "proxies": [{"name": proxy.name, "kind": proxy.kind, "workload": proxy.workload, "protocol": proxy.protocol,
                     "config": "nginx.conf" if proxy.kind == "gateway" else proxy_config_path(proxy.name)} for proxy in plan.proxies],
        "edges": report["edges"],
    }
    if policy:
        document["policy"] = policy_gate.evaluate(stack, spec.environment, config, resources, project_dir)
    return document


def build_dir(stack: str, project_dir: Path = PROJECT_DIR) -> Path:
    return project_dir / "build" / stack


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
    lines += workload_lines(document["report"]["workloads"], docker=document["target"] == "docker")
    lines += ["", "Capacity at declared peak (M/M/c per replica):",
              f"  {'replica':<28}{'offered rps':>12}{'capacity rps':>14}{'util':>7}{'latency ms':>12}{'admitted util':>15}"]
    for row in document["capacity"]["replicas"]:
        flag = "  OVERLOADED" if row["overloaded"] else ""
        lines.append(f"  {row['workload'] + '/' + str(row['replica']):<28}{row['offered_rps']:>12.1f}{row['service_rate_rps']:>14.1f}"
                     f"{row['utilization']:>7.2f}{_fmt(row['mean_latency_ms'], 1):>12}{_fmt(row['admitted_utilization'], 2):>15}{flag}")
    lines += _workload_capacity_lines(document["capacity"])
    lines += _call_lines(document)
    lines += ["", "Artifacts:"] + [f"  {name}: {path}" for name, path in document["artifacts"].items()]
    check = document["nginx_check"]
    lines.append(f"  nginx -t: {check['status']} ({check['version'] or check['detail']})")
    if document.get("policy") is not None:
        lines += ["", *policy_gate.render_table(document["policy"])]
    return "\n".join(lines)


def workload_lines(workloads: dict[str, Any], docker: bool) -> list[str]:
    """How each workload runs: user, capabilities, ports, limits/requests, probe timing, the Docker restart policy;
    `*` marks a default."""
    lines = ["", "Workloads (how each runs; * = a default the stack leaves in place: resources 0.5 CPU / 128 MiB, user 65532:65532 "
             "unless kubernetes.run_as_user says otherwise, the protocol's probe every 5 s):",
             f"  {'workload':<20}{'user':<16}{'cpu lim/req':<14}{'MiB lim/req':<14}{'probe':<30}ports, extra"]
    for name, w in workloads.items():
        defaults = set(w.get("defaults", []))

        def mark(*keys: str, defaults: set[str] = defaults) -> str:
            return "*" if any(k in defaults for k in keys) else ""

        res = w["resources"]
        health = w["health"]
        probe = "none" if health is None else (f"{health['kind']} {health['period_s']:g}s/{health['timeout_s']:g}s x{health['failure_threshold']}"
                                                + (f" delay {health['initial_delay_s']:g}s" if health["initial_delay_s"] is not None else "")
                                                + (f" start {health['start_period_s']:g}s" if health["start_period_s"] is not None else ""))
        extra = [f"caps +{','.join(w['capabilities'])}" if w["capabilities"] else "", f"restart {w['restart']}" if docker else "",
                 f"load {w['load_rps']:g} rps" if w["load_rps"] else "", "singleton" if w["singleton"] else "",
                 "persistent" if w["persistent"] else ""]
        ports = ",".join(f"{n}:{p}" for n, p in w["ports"].items()) or "none"
        lines.append(f"  {name:<20}{w['user'] + mark('run_as_user'):<16}"
                     f"{format(res['cpu'], 'g') + '/' + format(res['requests']['cpu'], 'g') + mark('resources.cpu'):<14}"
                     f"{str(res['memory_mb']) + '/' + str(res['requests']['memory_mb']) + mark('resources.memory_mb'):<14}"
                     f"{probe + mark('health'):<30}{' '.join(e for e in [ports, *extra] if e)}")
    return lines


def _workload_capacity_lines(capacity: dict[str, Any]) -> list[str]:
    """Per workload: the load from the gateway and from its callers, and which one saturates first."""
    lines = ["", "Capacity per workload (gateway routes + calls along the service graph):",
             f"  {'workload':<28}{'arrival rps':>12}{'gateway rps':>12}{'calls rps':>11}{'load rps':>10}{'peak util':>11}{'latency ms':>12}"]
    for row in capacity["workloads"]:
        flag = "" if row["admits_peak"] else "  OVERLOADED"
        lines.append(f"  {row['workload']:<28}{row['arrival_rps']:>12.1f}{row['from_gateway_rps']:>12.1f}{row['from_calls_rps']:>11.1f}"
                     f"{row['from_load_rps']:>10.1f}{row['peak_utilization']:>11.2f}{_fmt(row['mean_latency_ms'], 1):>12}{flag}")
    first = capacity.get("saturates_first")
    if first:
        headroom = "never (no load)" if first["headroom"] is None else f"when every declared peak grows {first['headroom']:.2f}×"
        lines.append(f"  saturates first: {first['workload']} (peak utilization {first['peak_utilization']:.2f}; saturates {headroom})")
    return lines


def _call_lines(document: dict[str, Any]) -> list[str]:
    """The service proxies and every call with the policy its callee's proxy holds it to."""
    edges = document["edges"]
    if not edges:
        return []
    callers = document["report"]["callers"]
    how = {"link": "by the network each call arrives on", "none": "not at all: limits are the callee's totals",
           "mesh": "by mesh identity (no netopt proxy)"}[callers]
    lines = ["", f"Proxies (callers told apart {how}):", f"  {'proxy':<28}{'kind':<9}{'protocol':<10}config"]
    lines += [f"  {p['name']:<28}{p['kind']:<9}{p['protocol']:<10}{p['config']}" for p in document["proxies"]]
    carrier = "the mesh, from the resources netopt generates (limits: see f_l)" if callers == "mesh" else "its callee's service proxy"
    lines += ["", f"Calls (each through {carrier}):",
              f"  {'caller -> callee':<48}{'proto':<7}{'balancing':<17}{'timeout':>8}{'tries':>6}{'limit rps':>11}{'burst':>7}"
              f"{'max conc':>9}{'declared rps':>13}{'of capacity':>12}"]
    checks = document["capacity"]["edges"]
    for edge, check in zip(edges, checks, strict=True):
        limit = "-" if edge["limit_rps"] is None else f"{edge['limit_rps']:.1f}"
        share = "-" if check["capacity_share"] is None else f"{check['capacity_share']:.0%}"
        flags = ("" if check["admits_declared"] else "  LIMIT BELOW DECLARED") + ("" if check["callers_fit"] else "  CALLERS EXCEED CAPACITY")
        lines.append(f"  {edge['caller'] + ' -> ' + edge['callee']:<48}{edge['protocol']:<7}{edge['balancing']:<17}{edge['timeout_s']:>7g}s"
                     f"{edge['retries']['tries']:>6}{limit:>11}{edge['burst']:>7}{edge['max_concurrency']:>9}{edge['declared_rps']:>13.1f}"
                     f"{share:>12}{flags}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make plan", description=__doc__)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--no-policy", action="store_true", help="skip the policy pack")
    parser.add_argument("--since", help="a previous plan JSON: list what an update from it does to each resource")
    parser.add_argument("--observed", help="an observe JSON document (make observe FORMAT=json): the observed-drift gate checks it")
    args = parser.parse_args(argv)
    try:
        previous = since.load_previous(args.since) if args.since else None
        document = build_plan_document(args.stack, policy=not args.no_policy, observed=args.observed, one_shot=True)
        if previous is not None:
            document["update"] = since.update_plan(previous, document)
    except StackNotFoundError as error:
        print(f"netopt: {error}", file=sys.stderr)
        return 2
    except (StackFileError, SpecError, ProgramError) as error:
        report = f"netopt: the program failed: {error}" if isinstance(error, ProgramError) else error.report()
        print(report, file=sys.stderr)
        _remove_stale_artifacts(args.stack)
        return 1
    except since.PreviousPlanError as error:
        print(f"netopt: {error}", file=sys.stderr)
        return 1
    except GatewayConfigError as error:
        print(f"netopt: {error}", file=sys.stderr)
        _remove_stale_artifacts(args.stack)
        return 1
    text = "\n".join([render_text(document), *since.render_text(document["update"])]) if "update" in document else render_text(document)
    print(json.dumps(document, indent=2, sort_keys=True) if args.format == "json" else text)
    return policy_gate.exit_code(document.get("policy"))


def _remove_stale_artifacts(stack: str) -> None:
    """After a failed plan, build/<stack>/ must not show an earlier run's artifacts as if they were this one's."""
    out = build_dir(stack)
    if remove_artifacts(out):
        print(f"netopt: removed {out.relative_to(PROJECT_DIR)}/ (artifacts of an earlier run, which no longer match the stack file)",
              file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

