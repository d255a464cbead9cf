"""The text form of `make observe`: one table per concern, measured beside declared."""

from __future__ import annotations

from typing import Any


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _log_lines(log: dict[str, Any]) -> list[str]:
    lines = [f"  {log['lines']} lines, {log['requests']} requests and {log['calls']} calls over {log['span_s']:.1f} s; "
             f"{log['malformed']} malformed, {log['unmapped_tries']} upstream tries to addresses outside the plan"]
    if log["proxies"]:
        lines.append("  lines per proxy: " + ", ".join(f"{name or 'gateway (no proxy field)'} {n}" for name, n in log["proxies"].items()))
    if log["empty"]:
        lines.append("  the log has no request or call line: nothing to measure (is it a netopt proxy's access log, schema v1?)")
    for example in log["malformed_examples"]:
        lines.append(f"  malformed line {example['line']}: {example['problem']}")
    for example in log["unmapped_examples"]:
        lines.append(f"  line {example['line']}: {example['problem']}")
    if log["unmapped"]:
        lines.append("  unmapped addresses: " + ", ".join(f"{a} ({n})" for a, n in log["unmapped"].items()))
    if log["unknown_routes"]:
        lines.append("  routes not in the stack: " + ", ".join(log["unknown_routes"]))
    if log["unknown_calls"]:
        lines.append("  calls not in the stack (caller.callee): " + ", ".join(log["unknown_calls"]))
    return lines


def _ratio(row: dict[str, Any]) -> str:
    """Calls per request of the caller, measured/declared; where callers share one address, calls/declared."""
    if not row["observed"]:
        return f"- ({row['proxy']}'s log not given)"
    if row["callers_unread"]:
        return f"- (the callers' requests need the log of {', '.join(row['callers_unread'])})"
    if row["ratio_declared"] is not None:
        return f"{_num(row['ratio_measured'], 2)}/{row['ratio_declared']:g}" + (" conn" if row["protocol"] == "tcp" else "")
    return f"x{_num(row['calls_vs_declared'], 2)} of declared"


def _call_lines(document: dict[str, Any]) -> list[str]:
    lines = ["", f"Per call (the callee's service proxy; peak over {document['window_s']} s; times of answered calls):",
             f"  {'caller -> callee':<34}{'calls':>8}{'mean rps':>9}{'peak rps':>9}{'declared':>9}{'429':>7}{'503':>7}{'5xx':>7}"
             f"{'p50 ms':>8}{'p99 ms':>8}{'upstr ms':>9}{'plan ms':>8}  ratio measured/declared"]
    for row in document["calls"]:
        lines.append(f"  {row['caller'] + ' -> ' + row['callee']:<34}{row['calls']:>8}{row['mean_rps']:>9.1f}{row['peak_rps']:>9.1f}"
                     f"{row['declared_rps']:>9.1f}{_pct(row['rate_429']):>7}{_pct(row['rate_503']):>7}{_pct(row['rate_5xx']):>7}"
                     f"{_num(row['latency_p50_ms'], 0):>8}{_num(row['latency_p99_ms'], 0):>8}{_num(row['upstream_mean_ms']):>9}"
                     f"{_num(row['declared_latency_ms']):>8}  {_ratio(row)}")
    return lines


def render_text(document: dict[str, Any]) -> str:
    per = "workload (Service; kube-proxy picks the pod)" if document["balancing"] == "service" else "replica"
    lines = [f"netopt observe — stack {document['stack']} ({document['environment']}, target {document['target']}, "
             f"{document['algorithm']}), log {document['source']}", "", "Log:", *_log_lines(document["log"]), "",
             f"Per {per}:",
             f"  {'member':<22}{'requests':>9}{'share':>8}{'errors':>7}{'mean ms':>9}{'p50 ms':>8}{'p99 ms':>8}{'declared ms':>13}"]
    for row in document["members"]:
        lines.append(f"  {row['item']:<22}{row['requests']:>9}{_pct(row['share']):>8}{row['errors']:>7}{_num(row['mean_ms']):>9}"
                     f"{_num(row['p50_ms'], 0):>8}{_num(row['p99_ms'], 0):>8}{row['declared_ms']:>13g}")
    lines += ["", f"Per route (peak over {document['window_s']} s):",
              f"  {'route':<18}{'requests':>9}{'mean rps':>10}{'peak rps':>10}{'declared':>10}{'429':>7}{'503':>7}  split observed/declared"]
    for row in document["routes"]:
        split = ", ".join(f"{p['workload']} {_pct(p['observed'])}/{_pct(p['declared'])}" for p in row["split"])
        lines.append(f"  {row['route']:<18}{row['requests']:>9}{row['mean_rps']:>10.1f}{row['peak_rps']:>10.1f}"
                     f"{row['declared_peak_rps']:>10g}{_pct(row['rate_429']):>7}{_pct(row['rate_503']):>7}  {split}")
    if any(row["observed"] for row in document["calls"]):
        lines += _call_lines(document)
    elif document["calls"]:
        lines += ["", "Per call: no service proxy's line in the log (give their logs too, e.g. `docker logs <network>-<workload>-proxy`)."]
    declared, measured = document["scores"]["declared"], document["scores"]["measured"]
    lines += ["", "Scores (same formulas; measured t_i and peaks):", f"  {'score':<18}{'declared':>12}{'measured':>12}"]
    for key in ("load_balancing", "routing", "flow_control", "overall"):
        lines.append(f"  {key:<18}{declared[key]:>12.4f}{measured[key]:>12.4f}")
    lines += ["", f"Drift beyond ±{document['tolerance']:.0%}:"]
    lines += [f"  {d['message']}" for d in document["drift"]] or ["  none"]
    lines += ["", "Capacity at the observed peak, measured times (deployed split -> re-planned split):",
              f"  {'replica':<22}{'offered rps':>12}{'util':>7}{'latency ms':>12}   {'offered rps':>12}{'util':>7}{'latency ms':>12}"]
    replanned = {(r["workload"], r["replica"]): r for r in document["capacity"]["replanned"]["replicas"]}
    for row in document["capacity"]["observed"]["replicas"]:
        after = replanned.get((row["workload"], row["replica"]))
        flag = "  OVERLOADED now" if row["overloaded"] else ""
        right = "" if after is None else f"   {after['offered_rps']:>12.1f}{after['utilization']:>7.2f}{_num(after['mean_latency_ms']):>12}"
        lines.append(f"  {row['workload'] + '/' + str(row['replica']):<22}{row['offered_rps']:>12.1f}{row['utilization']:>7.2f}"
                     f"{_num(row['mean_latency_ms']):>12}{right}{flag}")
    if document.get("patch"):
        lines += ["", f"Patch written to {document['patch']} (review it, then merge into the stack file)."]
    return "\n".join(lines)
