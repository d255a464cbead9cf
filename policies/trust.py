"""Integrity gates: the pack verifies the report it judges instead of trusting what the program says about itself.

The score and capacity gates read the AppNetwork's `report`. These three stack gates make that safe:

- `app-network-report`: exactly one AppNetwork, with a report. Without one every score and capacity gate has
  nothing to read and passes vacuously;
- `report-matches-deployed-config`: the report's `gateway.config_sha256` and each service proxy's
  `proxies[].config_sha256` equal the SHA-256 the pack computes itself of every deployed copy of that proxy's config
  (policies/deployed_configs.py: on Docker what the delivering Command writes, on Kubernetes the ConfigMap key the
  Deployment mounts), and every proxy the report names has one, so the numbers belong to the configs nginx runs and
  not to stale or hand-edited ones; a copy that cannot be followed (or a proxy whose digest the report does not
  state) is a violation too;
- `scores-match-deployed-config`: the routing and flow-control scores, and every route's and call route's r_j and
  f_l, recomputed from the deployed copies of every proxy's nginx.conf together — or, under a service mesh, the call
  routes from the mesh's resources (policies/mesh.py) — (crossplane; policies/deployed_scores.py, nothing from
  `components`) equal the reported ones.

When there is no single report, the last two are not applicable (`app-network-report` says why).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pulumi_policy import Policy, PolicyResource, StackValidationArgs
from pulumi_policy.proxy import UnknownValueError

from policies.deployed_configs import DeployedCopy, DeployedProxy, stack_proxies
from policies.deployed_scores import DeployedScores, deployed_scores, mean_reciprocal
from policies.framework import Gate, StackCheck, StackReport, fmt, number, stack_policy, unknown_violation
from policies.mesh import mesh_call_scores
from policies.model import APP_NETWORK, get, items
from policies.nginx_config import parse_config, sha256_text

STACK_TYPE = "pulumi:pulumi:Stack"

APP_NETWORK_REPORT = Gate(
    "app-network-report", "integrity",
    "The stack has exactly one netopt:index:AppNetwork carrying a strategy report: without it the score and capacity gates have "
    "nothing to check and would pass vacuously.",
    {},
    "Build the stack through components.resources.app_network.AppNetwork, as __main__.py does (one per stack); do not register its "
    "resources by hand or drop its report input.",
)

REPORT_DIGEST = Gate(
    "report-matches-deployed-config", "integrity",
    "The report's gateway.config_sha256 equals the SHA-256, computed by the pack, of every deployed copy of the gateway config "
    "(Docker: the container's upload and the delivering Command's stdin; Kubernetes: the ConfigMap key the Deployment mounts): "
    "the reported numbers belong to the config nginx runs.",
    {},
    "Deploy the config the program renders from the stack config, with the report it computes alongside: do not edit the "
    "rendered nginx.conf or the report by hand, and do not reuse a report from another run.",
)

SCORES_RECOMPUTED = Gate(
    "scores-match-deployed-config", "integrity",
    "The routing and flow-control scores, and each route's match steps r_j and rate limit f_l, recomputed by the pack from the "
    "deployed nginx.conf (parsed with crossplane), equal the ones the report states.",
    {},
    "Render the gateway config and the report from the same stack config (the program does); a mismatch after that is a "
    "renderer or planner bug: compare `make plan` r_j/f_l with the locations and limit_req zones of build/<stack>/nginx.conf.",
)


def _root(args: StackValidationArgs) -> PolicyResource | None:
    return next((r for r in args.resources if r.resource_type == STACK_TYPE), None)


def _reported(args: StackValidationArgs) -> tuple[PolicyResource, Mapping[str, Any]] | None:
    """The one AppNetwork and its report, or None when there is not exactly one with a report."""
    networks = [r for r in args.resources if r.resource_type == APP_NETWORK]
    if len(networks) != 1:
        return None
    report = get(networks[0].props, "report")
    return (networks[0], report) if isinstance(report, Mapping) and get(report, "scores") is not None else None


def _reported_or_not_applicable(args: StackValidationArgs) -> tuple[PolicyResource, Mapping[str, Any]] | None:
    """`_reported`, marking the gate not applicable when it is None: app-network-report is the one that reports it."""
    reported = _reported(args)
    if reported is None:
        args.not_applicable("no single AppNetwork with a report (app-network-report reports it)")
    return reported


def _claimed(report: Mapping[str, Any], proxy: DeployedProxy) -> tuple[bool, Any]:
    """(whether the report describes this proxy's role, the config_sha256 it states for this proxy). The gateway's is
    `gateway.config_sha256`; a service proxy's, its entry of `proxies` by name. A proxy of another role is deployed
    config the report does not describe: a violation until the report states its digest."""
    if proxy.role == "gateway":
        return True, get(report, "gateway", "config_sha256")
    if proxy.role == "service-proxy":
        return True, next((get(p, "config_sha256") for p in items(get(report, "proxies")) if get(p, "name") == proxy.name), None)
    return False, None


def _proxies(args: StackValidationArgs) -> list[DeployedProxy]:
    return list(stack_proxies(args.resources))


def _by_text(copies: list[DeployedCopy]) -> dict[str, list[str]]:
    """Identical copies judged once: text -> where each copy is deployed."""
    grouped: dict[str, list[str]] = {}
    for copy in copies:
        grouped.setdefault(copy.text, []).append(copy.where)
    return grouped


def _app_network_report(args: StackValidationArgs, config: dict[str, Any], report_violation: StackReport) -> None:
    networks = [r for r in args.resources if r.resource_type == APP_NETWORK]
    if not networks:
        root = _root(args)
        report_violation(
            f"stack '{root.name if root else '?'}' registers no {APP_NETWORK}, so there is no strategy report: the score and capacity "
            f"gates had nothing to check (measured: 0 AppNetworks; required: exactly 1 with a report). Fix: {APP_NETWORK_REPORT.remediation}",
            root.urn if root else None)
        return
    for network in networks:
        report = get(network.props, "report")
        if len(networks) > 1:
            others = ", ".join(repr(n.name) for n in networks if n is not network)
            report_violation(
                f"AppNetwork '{network.name}' is one of {len(networks)} in this stack (also {others}); the gates cannot tell which "
                f"report describes the deployed gateway (required: exactly 1). Fix: {APP_NETWORK_REPORT.remediation}", network.urn)
        elif not isinstance(report, Mapping) or get(report, "scores") is None:
            report_violation(
                f"AppNetwork '{network.name}' carries no strategy report (measured: report "
                f"{'missing' if report is None else 'without scores'}; required: the report components/plan/report.py builds). "
                f"Fix: {APP_NETWORK_REPORT.remediation}", network.urn)


def _report_digest(args: StackValidationArgs, config: dict[str, Any], report_violation: StackReport) -> None:
    reported = _reported_or_not_applicable(args)
    if reported is None:
        return
    network, report = reported
    proxies = _proxies(args)
    if not any(p.role == "gateway" and p.copies for p in proxies):
        report_violation(
            f"AppNetwork '{network.name}': no gateway config is deployed in this stack (no gateway container upload or delivering "
            f"Command, no ConfigMap a gateway Deployment mounts), so the report (config_sha256 "
            f"{get(report, 'gateway', 'config_sha256')}) cannot be matched to one. Fix: {REPORT_DIGEST.remediation}", network.urn)
    deployed = {p.name for p in proxies if p.copies}
    missing = sorted(str(get(p, "name")) for p in items(get(report, "proxies")) if get(p, "kind") == "service" and get(p, "name") not in deployed)
    if missing:
        report_violation(
            f"AppNetwork '{network.name}': the report names service proxies with no config deployed in this stack: {', '.join(missing)} "
            f"(required: each proxy's delivering Command or mounted ConfigMap). Fix: {REPORT_DIGEST.remediation}", network.urn)
    for proxy in proxies:
        label = f"{proxy.role} '{proxy.name}'"
        for problem in proxy.problems:
            report_violation(
                f"AppNetwork '{network.name}': the config of {label} cannot be verified: {problem} (required: every copy nginx may "
                f"run is one the pack can read). Fix: {REPORT_DIGEST.remediation}", network.urn)
        described, claimed = _claimed(report, proxy)
        if not described:
            report_violation(
                f"AppNetwork '{network.name}': {label} runs a config ({', '.join(c.where for c in proxy.copies) or 'no copy'}) whose "
                f"digest the report does not state (required: the report describes every proxy config deployed). "
                f"Fix: {REPORT_DIGEST.remediation}", network.urn)
            continue
        for copy in proxy.copies:
            actual = sha256_text(copy.text)
            if not isinstance(claimed, str) or actual != claimed:
                stated = f"states config_sha256 {claimed}" if isinstance(claimed, str) else "states no config_sha256"
                report_violation(
                    f"AppNetwork '{network.name}': the report {stated}, but the {copy.where} deployed has SHA-256 {actual} "
                    f"(required: equal): the reported scores and capacity describe another config (stale or edited). "
                    f"Fix: {REPORT_DIGEST.remediation}", network.urn)


def _same(a: float | None, b: float | None) -> bool:
    return (a is None) == (b is None) and (a is None or b is None or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12))


def _inputs(report: Mapping[str, Any], key: str) -> dict[str, float | None]:
    return {str(get(i, "item")): None if get(i, "value") is None else number(get(i, "value"))
            for i in items(get(report, "scores", "inputs", key))}


def _show(value: float | None) -> str:
    return "∞" if value is None else fmt(value)


def _differences(report: Mapping[str, Any], steps: dict[str, int], limits: dict[str, float | None],
                 routing: float, flow: float) -> list[str]:
    found: list[str] = []
    reported_r, reported_f = _inputs(report, "r"), _inputs(report, "f_rps")
    deployed = set(steps)
    if set(reported_r) != deployed:
        missing, extra = sorted(set(reported_r) - deployed), sorted(deployed - set(reported_r))
        found.append(f"routes reported but not served: {missing or 'none'}; served but not reported: {extra or 'none'}")
    for route in sorted(deployed & set(reported_r)):
        if not _same(float(steps[route]), reported_r[route]):
            found.append(f"r[{route}] deployed {steps[route]}, reported {_show(reported_r[route])}")
        if route in reported_f and not _same(limits.get(route), reported_f[route]):
            found.append(f"f[{route}] deployed {_show(limits.get(route))} rps, reported {_show(reported_f[route])} rps")
    for name, mine, key in (("routing", routing, "routing"), ("flow control", flow, "flow_control")):
        stated = number(report["scores"][key])
        if not _same(mine, stated):
            found.append(f"{name} score deployed {fmt(mine)}, reported {fmt(stated)}")
    return found


def _scores_recomputed(args: StackValidationArgs, config: dict[str, Any], report_violation: StackReport) -> None:
    """The scores of every deployed proxy config together: the gateway's routes and each service proxy's call routes
    (under a mesh, the calls from its resources). A proxy whose config is deployed as several different copies is
    scored from each in turn, with the other proxies' first copies."""
    reported = _reported_or_not_applicable(args)
    if reported is None:
        return
    network, report = reported
    proxies = [p for p in _proxies(args) if p.copies]
    if not any(p.role == "gateway" for p in proxies):
        args.not_applicable("no deployed gateway config (report-matches-deployed-config reports it)")
        return
    scored: dict[str, list[tuple[str, DeployedScores]]] = {}
    for proxy in proxies:
        for text, places in _by_text(proxy.copies).items():
            where = " and the ".join(places)
            scores = deployed_scores(parse_config(text))
            if scores.problems:
                report_violation(
                    f"AppNetwork '{network.name}': the scores cannot be recomputed from the {where}: {'; '.join(scores.problems[:5])} "
                    f"(required: a config crossplane parses, every route found). Fix: {SCORES_RECOMPUTED.remediation}", network.urn)
                continue
            scored.setdefault(proxy.name, []).append((where, scores))
    mesh = mesh_call_scores(args.resources)  # under a service mesh the call routes are its resources, not nginx configs
    for problem in mesh.problems:
        report_violation(f"AppNetwork '{network.name}': {problem}. Fix: {SCORES_RECOMPUTED.remediation}", network.urn)
    first = {proxy: copies[0] for proxy, copies in scored.items()}
    variants = [(", ".join(where for where, _ in first.values()), first)]
    variants += [(where, first | {proxy: (where, scores)}) for proxy, copies in scored.items() for where, scores in copies[1:]]
    for where, chosen in variants:
        steps, limits = _union([scores for _, scores in chosen.values()])
        steps, limits = steps | mesh.steps, limits | mesh.limits
        differences = _differences(report, steps, limits, mean_reciprocal([float(v) for v in steps.values()]),
                                   mean_reciprocal(list(limits.values())))
        if differences:
            shown = "; ".join(differences[:8]) + (f" (+{len(differences) - 8} more)" if len(differences) > 8 else "")
            report_violation(
                f"AppNetwork '{network.name}': the report disagrees with the configs deployed ({where}; required: equal): {shown}. "
                f"Fix: {SCORES_RECOMPUTED.remediation}", network.urn)


def _union(configs: list[DeployedScores]) -> tuple[dict[str, int], dict[str, float | None]]:
    steps: dict[str, int] = {}
    limits: dict[str, float | None] = {}
    for scores in configs:
        steps.update(scores.steps)
        limits.update(scores.limits)
    return steps, limits


def _on_the_app_network(gate: Gate, check: StackCheck) -> StackCheck:
    """A value unknown in preview fails closed, as everywhere, but attached to the AppNetwork whose report holds it."""
    def guarded(args: StackValidationArgs, config: dict[str, Any], report_violation: StackReport) -> None:
        try:
            check(args, config, report_violation)
        except UnknownValueError as error:
            reported = _reported(args)
            network = reported[0] if reported else None
            where = f"{APP_NETWORK} '{network.name}'" if network else "the stack"
            report_violation(unknown_violation(gate, where, error), network.urn if network else None)

    return guarded


def policies() -> list[Policy]:
    return [
        stack_policy(APP_NETWORK_REPORT, _app_network_report),
        stack_policy(REPORT_DIGEST, _on_the_app_network(REPORT_DIGEST, _report_digest)),
        stack_policy(SCORES_RECOMPUTED, _on_the_app_network(SCORES_RECOMPUTED, _scores_recomputed)),
    ]
