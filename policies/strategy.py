"""Score and capacity gates: the numbers `components` computed, in the AppNetwork's `report`, against thresholds.

The report is an input of the `netopt:index:AppNetwork` component, computed by `components.plan.report.strategy_report`
from the validated stack config alone, so it is a known value during preview and these gates run on the same
numbers `make plan` prints. No formula is repeated here: a gate reads a score or a capacity row and compares it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import ResourceValidationArgs, ResourceValidationPolicy

from policies.framework import Gate, Report, fmt, number, resource_policy
from policies.model import APP_NETWORK, get, items

_NUMBER = {"type": "number"}


def _bounds(default_minimum: float, minimum_doc: str, maximum_doc: str) -> dict[str, dict[str, Any]]:
    return {
        "minimum": {**_NUMBER, "minimum": 0, "default": default_minimum, "description": minimum_doc},
        "maximum": {**_NUMBER, "minimum": 0, "description": maximum_doc},
    }


SCORES: dict[str, tuple[Gate, str, str]] = {
    "load_balancing": (Gate(
        "load-balancing-score", "score",
        "The load-balancing score LB = (1/n) Σ 1/t_i over the replicas behind the gateway meets the environment's minimum.",
        _bounds(3.0, "lowest LB in 1/s (higher is better: faster replicas)", "optional upper bound in 1/s"),
        "Lower the response time of the slowest workloads (see t_i in `make plan`), or add faster replicas."), "1/s",
        "the slowest replicas (t_i)"),
    "routing": (Gate(
        "routing-score", "score",
        "The routing score R = (1/m) Σ 1/r_j over the routes meets the environment's minimum (1.0: every route is found in one step).",
        _bounds(0.3, "lowest R (higher is better: fewer match steps)", "optional upper bound"),
        "Anchor regex routes (^/literal...) so prefix locations can stop the regex search, or turn regex routes into prefix routes."), "",
        "the routes with the most match steps (r_j)"),
    "flow_control": (Gate(
        "flow-control-score", "score",
        "The flow-control score F = (1/k) Σ 1/f_l over the routes (an unlimited route adds 0) lies within the environment's bounds.",
        _bounds(0.001, "lowest F in s/request (higher means tighter per-route limits; an unlimited route lowers F)",
                "highest F (an upper bound catches limits so tight that they are no longer a flow-control strategy but a block)"),
        "Give every route a rate limit sized to its declared peak (admitted = rps x clients), or remove the loose or missing ones."), "s/req",
        "the loosest or missing limits (f_l)"),
    "overall": (Gate(
        "overall-score", "score",
        "The overall score O = (1/p) Σ 1/s_o, with s_o = max(1, reference_o/score_o), meets the environment's minimum (1.0: every "
        "strategy meets its reference).",
        _bounds(0.6, "lowest O, in [0, 1] (higher is better)", "optional upper bound"),
        "Improve the strategy with the largest s_o (listed first above); its own gate's inputs show what drags it."), "",
        "the strategies furthest from their reference (s_o)"),
}

_ITEMS = {"load_balancing": "t_seconds", "routing": "r", "flow_control": "f_rps", "overall": "s"}


def _worst_items(report: Mapping[str, Any], key: str) -> str:
    """The score's own inputs, worst first (largest x contributes least to (1/N) Σ 1/x; ∞ is worst)."""
    rows = [(str(get(i, "item")), get(i, "value")) for i in items(get(report, "scores", "inputs", _ITEMS[key]))]
    rows.sort(key=lambda row: (row[1] is not None, -float(row[1] or 0.0)))
    shown = ", ".join(f"{name}={'∞' if value is None else fmt(float(value))}" for name, value in rows[:5])
    return shown + (f" (+{len(rows) - 5} more)" if len(rows) > 5 else "")


def _report(args: ResourceValidationArgs) -> Mapping[str, Any]:
    """The AppNetwork's strategy report (every gate here reads only the AppNetwork: `resource_policy(..., reads=)`)."""
    report: Mapping[str, Any] = args.props["report"]
    return report


def _score_check(key: str) -> Any:
    gate, unit, worst = SCORES[key]

    def check(args: ResourceValidationArgs, config: dict[str, Any], report_violation: Report) -> None:
        report = _report(args)
        value = number(report["scores"][key])
        env = get(report, "environment", default="?")
        where = f"AppNetwork '{args.name}' (environment {env})"
        inputs = _worst_items(report, key)
        unit_text = f" {unit}" if unit else ""
        if value < config["minimum"]:
            report_violation(f"{where}: {gate.name.replace('-', ' ')} is {fmt(value)}{unit_text}, below the minimum "
                f"{fmt(config['minimum'])}{unit_text}. "
                             f"Inputs, worst first ({worst}): {inputs}. Fix: {gate.remediation}")
        if "maximum" in config and value > config["maximum"]:
            report_violation(f"{where}: {gate.name.replace('-', ' ')} is {fmt(value)}{unit_text}, above the maximum "
                f"{fmt(config['maximum'])}{unit_text}. "
                             f"Inputs ({worst}): {inputs}. Fix: loosen the tightest items, or raise the maximum if this is intended.")

    return check


# -- capacity -----------------------------------------------------------------------------------------------------

PEAK_UTILIZATION = Gate(
    "peak-utilization", "capacity",
    "Every workload's predicted utilization at the declared peak (M/M/c per replica, from the report) stays at or below the maximum.",
    {"maximum": {**_NUMBER, "exclusiveMinimum": 0, "maximum": 1, "default": 0.7,
                 "description": "highest predicted utilization of any replica at declared peak (1.0 = saturated)"}},
    "Add replicas, raise max_concurrency, speed the workload up, or move route weight away from it.",
)

ADMITS_PEAK = Gate(
    "rate-limit-admits-peak", "capacity",
    "Every exposed route's rate limit admits its declared peak traffic (times the headroom), so legitimate peak traffic is not throttled.",
    {"headroom": {**_NUMBER, "minimum": 1, "default": 1.0,
                  "description": "the admitted maximum must be at least peak_rps x headroom"}},
    "Raise the limit's rps (admitted = rps x clients for a per-client key, rps for a global key) or declare the real client count.",
)

PROTECT = Gate(
    "rate-limits-protect-backends", "capacity",
    "The traffic the rate limits admit at most does not exceed any replica's capacity: every route reaching a workload is limited, and "
    "the sum of what they admit fits.",
    {"maxAdmittedUtilization": {**_NUMBER, "exclusiveMinimum": 0, "default": 1.0,
                                "description": "highest admitted load / capacity of any replica (1.0 = the limits admit exactly what it can serve)"}},
    "Give every route a rate limit, lower per-client rps or burst on the routes that reach the workload, or add capacity.",
)


class _RouteIndex:
    """Workload -> the report's routes that send it traffic; built on first use, once per check."""

    def __init__(self, report: Mapping[str, Any]) -> None:
        self._report = report
        self._index: dict[str, list[Mapping[str, Any]]] | None = None

    def __call__(self, workload: str) -> list[Mapping[str, Any]]:
        if self._index is None:
            self._index = {}
            for route in items(get(self._report, "routes")):
                for name in dict.fromkeys(str(get(b, "workload")) for b in items(get(route, "backends"))):
                    self._index.setdefault(name, []).append(route)
        return self._index.get(workload, [])


SHOWN_NAMES = 10
"""Names a message lists before it counts the rest: a stack of 10,000 routes must not make a 10,000-name line."""


def _listed(names: list[str]) -> str:
    """`names` joined, the first SHOWN_NAMES of them and a count of the others."""
    shown = ", ".join(names[:SHOWN_NAMES])
    return shown if len(names) <= SHOWN_NAMES else f"{shown} and {len(names) - SHOWN_NAMES:,} more"


def _split(route: Mapping[str, Any], workload: str) -> str:
    backends = items(get(route, "backends"))
    total = sum(number(get(b, "weight", default=1)) for b in backends)
    mine = sum(number(get(b, "weight", default=1)) for b in backends if get(b, "workload") == workload)
    return f"{fmt(100 * mine / total)}%" if total else "?"


def _peak_utilization(args: ResourceValidationArgs, config: dict[str, Any], report_violation: Report) -> None:
    report = _report(args)
    maximum = config["maximum"]
    routes_to = _RouteIndex(report)
    worst: dict[str, Mapping[str, Any]] = {}
    for row in items(report["capacity"]["replicas"]):
        name = str(row["workload"])
        if name not in worst or number(row["utilization"]) > number(worst[name]["utilization"]):
            worst[name] = row
    for name, row in worst.items():
        utilization = number(row["utilization"])
        if utilization <= maximum and not get(row, "overloaded", default=False):
            continue
        feeding = _listed([f"'{get(r, 'name')}' sends {_split(r, name)}" for r in routes_to(name)])
        if not feeding:
            feeding = f"none, it is reached through calls only ({fmt(number(get(row, 'from_calls_rps', default=0)))} rps from its callers)"
        state = "overloaded: the queue grows without bound" if get(row, "overloaded", default=False) else \
            f"mean latency {fmt(number(get(row, 'mean_latency_ms', default=0)))} ms"
        report_violation(
            f"AppNetwork '{args.name}': workload '{name}' replica {int(number(row['replica']))} is predicted at utilization {fmt(utilization)} "
            f"({fmt(number(row['offered_rps']))} rps offered of {fmt(number(row['service_rate_rps']))} rps capacity at declared peak; {state}), "
            f"above the maximum {fmt(maximum)}. Routes feeding it: {feeding}. Fix: {PEAK_UTILIZATION.remediation}")


def _admits_peak(args: ResourceValidationArgs, config: dict[str, Any], report_violation: Report) -> None:
    report = _report(args)
    headroom = config["headroom"]
    for row in items(report["capacity"]["routes"]):
        admitted = get(row, "admitted_max_rps")
        if admitted is None:
            continue  # no limit: nothing is throttled (rate-limits-protect-backends flags the missing limit)
        peak, clients = number(row["peak_rps"]), int(number(get(row, "clients", default=1)))
        needed = peak * headroom
        if number(admitted) + 1e-9 >= needed:
            continue
        key = str(get(row, "key", default="client_ip"))
        per = "" if key == "global" else f" ({fmt(number(get(row, 'limit_rps', default=0)))} rps x {clients} clients, key {key})"
        required = needed if key == "global" else needed / max(clients, 1)
        report_violation(
            f"AppNetwork '{args.name}': route '{row['route']}' is limited by '{get(row, 'rate_limit')}' to at most {fmt(number(admitted))} rps{per}, "
            f"below its declared peak {fmt(peak)} rps x headroom {fmt(headroom)} = {fmt(needed)} rps: legitimate peak traffic would get 429. "
            f"Fix: raise '{get(row, 'rate_limit')}' to at least {fmt(required)} rps{'' if key == 'global' else ' per client'} "
            "(a limit shared by several routes applies to each of them), or give this route its own limit.")


def _protect(args: ResourceValidationArgs, config: dict[str, Any], report_violation: Report) -> None:
    report = _report(args)
    maximum = config["maxAdmittedUtilization"]
    routes_to = _RouteIndex(report)
    flagged: set[str] = set()
    for row in items(report["capacity"]["replicas"]):
        name = str(row["workload"])
        if name in flagged:
            continue
        admitted = get(row, "admitted_utilization")
        if admitted is None:
            unlimited = [str(get(r, "name")) for r in routes_to(name) if get(r, "rate_limit") is None]
            flagged.add(name)
            through = (f"is reachable through route(s) {_listed([repr(u) for u in unlimited])} with no rate limit" if unlimited else
                       "is reached through calls from workloads that a route with no rate limit feeds (directly or further up "
                       "the call graph)")
            report_violation(
                f"AppNetwork '{args.name}': workload '{name}' {through}, "
                f"so the load the gateway admits to it is unbounded (measured: ∞; maximum admitted utilization {fmt(maximum)} of its "
                f"{fmt(number(row['service_rate_rps']))} rps per replica). Fix: give "
                f"{'each of those routes' if len(unlimited) > 1 else 'that route' if unlimited else 'the routes to its callers'} "
                "a rate_limit sized to its declared peak (rate-limit-admits-peak checks it still admits the peak).")
        elif number(admitted) > maximum:
            flagged.add(name)
            limited = _listed([f"'{get(r, 'name')}' ({get(r, 'rate_limit')}, {_split(r, name)})" for r in routes_to(name)]) or "none (calls only)"
            report_violation(
                f"AppNetwork '{args.name}': the rate limits admit up to {fmt(number(admitted) * number(row['service_rate_rps']))} rps to "
                f"workload '{name}' "
                f"replica {int(number(row['replica']))}, {fmt(number(admitted))} x its capacity of {fmt(number(row['service_rate_rps']))} rps, "
                f"above the maximum admitted utilization {fmt(maximum)}: the limits do not protect it. Routes reaching it: {limited}. "
                f"Fix: {PROTECT.remediation}")


def policies() -> list[ResourceValidationPolicy]:
    gates: list[ResourceValidationPolicy] = [resource_policy(SCORES[key][0], _score_check(key), reads=[APP_NETWORK]) for key in SCORES]
    gates += [
        resource_policy(PEAK_UTILIZATION, _peak_utilization, reads=[APP_NETWORK]),
        resource_policy(ADMITS_PEAK, _admits_peak, reads=[APP_NETWORK]),
        resource_policy(PROTECT, _protect, reads=[APP_NETWORK]),
    ]
    return gates
