"""bench/eastwest.py's tables: eastwest.md, written to be read alone and pasted into README (Benchmarks)."""
from __future__ import annotations

from typing import Any

GOALS = {
    "hop": "≤ 0.5 ms p99 added per hop on loopback (Istio's sidecars: ~2.65 ms p90 at 1,000 req/s, Istio's docs)",
    "balancing": "p99 through the proxy ≤ 0.5× direct (one HTTP/2 connection pinned to one replica)",
    "noisy": "the quiet caller's success ≥ 99.9 % and p99 ≤ 1.2× its p99 alone",
}


def _f(x: Any, nd: int = 2) -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "n/a"
    return f"{x:,.{nd}f}" if isinstance(x, float) else str(x)


def _range(spread: dict[str, float], nd: int = 2) -> str:
    return f"{_f(spread['median'], nd)} ({_f(spread['min'], nd)}..{_f(spread['max'], nd)})"


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in errors.items()) or "none"


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def _hop(h: dict[str, Any]) -> list[str]:
    lines = ["## Per-hop cost: service proxy vs direct", "", f"Goal: {GOALS['hop']}.", "",
             f"Open-loop Poisson at {h['rate']:,.0f} calls/s, {h['reps']} pair(s) of {h['duration_s']:g} s runs per protocol (direct "
             "and proxy back to back, order alternating); one replica that answers at once, so the difference is the hop. "
             "Added = proxy run minus the direct run of its pair (median of the pairs, min..max). Proxy CPU: nginx master + "
             "worker, from /proc (schedstat), per call. The backend's and the client's busy cores show neither is the "
             "bottleneck.", "",
             "| protocol | direct p50 / p99 ms | proxy p50 / p99 ms | added p50 ms | added p99 ms (min..max) | proxy CPU µs/call (min..max) "
             "| backend cores busy (max) | client cores busy (max) | failed calls | load avg (min..max) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    verdicts = []
    for protocol in ("http", "grpc"):
        p = h[protocol]
        lines.append(f"| {protocol} | {_f(p['direct']['p50']['median'], 3)} / {_f(p['direct']['p99']['median'], 3)} "
                     f"| {_f(p['proxy']['p50']['median'], 3)} / {_f(p['proxy']['p99']['median'], 3)} | {_f(p['added_p50_ms'], 3)} "
                     f"| {_range(p['added_p99'], 3)} | {_range(p['proxy_cpu_us_per_call'], 1)} | {_f(p['backend_cores_busy_max'])} "
                     f"| {_f(p['client_cores_busy_max'])} | {p['failed']} | {_range(p['load'])} |")
        verdicts.append(f"{protocol} {_f(p['added_p99_ms'], 3)} ms ({_met(p['added_p99_ms'] <= 0.5)})")
    lines += ["", "p99 added: " + "; ".join(verdicts) + ". Goal ≤ 0.5 ms.", ""]
    if all("relay" in h[protocol] for protocol in ("http", "grpc")):
        lines += ["The floor: a bare nginx relay (`bench/run.py` `minimal_nginx_conf`: upstream keep-alive and nothing else — no "
                  "log, no limits, no maps) over the same hop, in the same reps (direct, proxy and relay back to back, order "
                  "alternating). *Proxy over relay* is what the product's config adds to the least any nginx hop costs here.", "",
                  "| protocol | relay p50 / p99 ms | relay added p50 ms | relay added p99 ms (min..max) | relay CPU µs/call (min..max) "
                  "| proxy over relay p50 ms | proxy over relay p99 ms (min..max) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for protocol in ("http", "grpc"):
            p = h[protocol]
            lines.append(f"| {protocol} | {_f(p['relay']['p50']['median'], 3)} / {_f(p['relay']['p99']['median'], 3)} "
                         f"| {_f(p['relay_added_p50_ms'], 3)} | {_range(p['relay_added_p99'], 3)} | {_range(p['relay_cpu_us_per_call'], 1)} "
                         f"| {_f(p['proxy_over_relay_p50_ms'], 3)} | {_range(p['proxy_over_relay_p99'], 3)} |")
        lines.append("")
    return lines


def _balancing(b: dict[str, Any]) -> list[str]:
    times = "/".join(f"{t:g}" for t in b["times_ms"])
    lines = ["## gRPC balancing over a slow replica", "", f"Goal: {GOALS['balancing']}.", "",
             f"Replicas echo-0..2 at {times} ms (exponential), {b['concurrency']} calls in service each, FIFO beyond; one client "
             "channel (one HTTP/2 connection), open-loop Poisson, every call with the plan's timeout as deadline; "
             f"{b['reps']} run(s) of {b['duration_s']:g} s per row, rotated. Direct: the connection lands on one replica (what "
             "kube-proxy or Docker's DNS do with a gRPC client), each landing measured; *pooled* is the three landings "
             "together, each equally likely. A failed call counts at the time it failed (for a missed deadline a lower bound "
             "of its latency), so a p99 at the deadline means more than 1 % failed.", ""]
    for load, data in b.items():
        if not isinstance(data, dict) or "direct" not in data:
            continue
        names = list(data["least_conn"]["shares"])
        lines += [f"### {load}: {data['rate']:g} calls/s (deadline {data['timeout_s']:g} s)", "",
                  "| path | p50 ms | p99 ms (min..max) | success | failed calls | shares " + " / ".join(names) + " | p99 / direct pooled |",
                  "|---|---:|---:|---:|---|---|---:|"]
        direct = data["direct"]
        for i, name in enumerate(names):
            d = direct[f"direct-{i}"]
            lines.append(f"| direct, lands on {name} | {_f(d['p50_ms'])} | {_range(d['p99'])} | {d['success']:.4f} | {_errors(d['errors'])} "
                         f"| {' / '.join('1' if j == i else '0' for j in range(len(names)))} | |")
        pooled = direct["pooled"]
        lines.append(f"| **direct, pooled** | {_f(pooled['p50_ms'])} | {_range(pooled['p99'])} | {pooled['success']:.4f} "
                     f"| {_errors(pooled['errors'])} | ⅓ each | 1.00 |")
        for variant in ("least_conn", "latency_optimal"):
            v = data[variant]
            lines.append(f"| proxy, {variant} | {_f(v['p50_ms'])} | {_range(v['p99'])} | {v['success']:.4f} | {_errors(v['errors'])} "
                         f"| {' / '.join(_f(v['shares'][n], 3) for n in names)} | **{_range(v['p99_ratios'])}** |")
        lines += ["", f"p99 / direct pooled: least_conn {_f(data['least_conn']['p99_ratio'])} ({_met(data['least_conn']['p99_ratio'] <= 0.5)}), "
                  f"latency_optimal {_f(data['latency_optimal']['p99_ratio'])} ({_met(data['latency_optimal']['p99_ratio'] <= 0.5)}). "
                  f"Backend busy ≤ {_f(data['backend_cores_busy_max'])} cores, client ≤ {_f(data['client_cores_busy_max'])}; "
                  f"load average {_range(data['load'])}.", ""]
    return lines


def _noisy(n: dict[str, Any]) -> list[str]:
    quiet, loud = n["limits"]["orders"], n["limits"]["search"]
    lines = ["## Noisy neighbour", "", f"Goal: {GOALS['noisy']}.", "",
             f"`orders` (quiet) and `search` (noisy) call `inventory` (http, 2 replicas × 16 calls at {n['service_ms']:g} ms). Limits "
             f"from the plan's defaults (each caller's share of the callee's capacity by declared rate): orders "
             f"{quiet['limit_rps']:.1f}/s burst {quiet['burst']} concurrency {quiet['max_concurrency']}, search {loud['limit_rps']:.1f}/s "
             f"burst {loud['burst']} concurrency {loud['max_concurrency']}. The quiet caller sends its declared {n['quiet_rate']:g} "
             f"calls/s, the noisy one {n['noisy_factor']:g}× its limit ({n['noisy_rate']:,.0f}/s), {n['reps']} run(s) of {n['duration_s']:g} s "
             "per scenario, rotated; each client is an open-loop "
             "process of its own, sending from its caller's address to its caller's server. *One server for all* is the same "
             "proxy planned for callers it cannot tell apart (`Deployment(callers=\"none\")`, as on Kubernetes without a mesh: "
             "the callee's totals), for contrast.", "",
             "| scenario | quiet p50 ms | quiet p99 ms (min..max) | quiet success | quiet failed "
             "| neighbour sent (reached/s) | neighbour ok | neighbour refused | neighbour's client cores busy (max) |",
             "|---|---:|---:|---:|---|---:|---:|---|---:|"]
    for key, label in (("alone", "quiet caller alone"), ("noisy", "with the noisy caller (per-caller servers)"),
                       ("shared", "with the noisy caller, one server for all (contrast)")):
        q = n[key]
        nb = q.get("neighbour")
        lines.append(f"| {label} | {_f(q['p50_ms'])} | {_range(q['p99'])} | {q['success']:.4f} | {_errors(q['errors'])} "
                     + (f"| {nb['sent']:,} ({nb['achieved_rps']:,.0f}/s) | {nb['ok']:,} | {_errors(nb['errors'])} "
                        f"| {_f(nb['client_cores_busy_max'])} |" if nb else "| – | – | – | – |"))
    lines += ["", f"Quiet caller with the noisy one: success {n['quiet_success']:.4f} ({_met(n['quiet_success'] >= 0.999)}), "
              f"p99 {_range(n['quiet_p99_ratios'])}× its p99 alone ({_met(n['quiet_p99_ratio'] <= 1.2)}). "
              f"Backend busy ≤ {_f(n['backend_cores_busy_max'])} cores; load average {_range(n['load'])}.", ""]
    return lines


def _loads(section: Any) -> list[float]:
    """Every load average recorded in a section's summaries (their `load` spreads)."""
    if not isinstance(section, dict):
        return []
    found = [section["load"]["max"]] if isinstance(section.get("load"), dict) else []
    return found + [x for value in section.values() if isinstance(value, dict) for x in _loads(value)]


def write_markdown(data: dict[str, Any], path: str) -> str:
    lines = ["# East-west benchmarks: the service proxy on loopback", "",
             f"`{data['command']}` — {data['when']}, {data['host']}; grpcio {data['grpcio']}, Python {data['python']}, "
             f"niceness {data['niceness']}. Load average (1 min) before {data['loadavg_before']:.2f}, after "
             f"{data['loadavg_after']:.2f} (this machine has 2 cores; each table gives its runs' loads). Every proxy is "
             "`render_proxy` of the plan's service proxy for a small benchmark stack (`bench/eastwest.py`), unedited, on "
             "Debian's nginx with one worker; only paths, the port and the per-caller loopback addresses come from the "
             "runtime (`testbed/service_proxy.py`).", ""]
    loads = [x for key in ("hop", "grpc_balancing", "noisy") for x in _loads(data.get(key))]
    if loads and max(loads) > data.get("cpus", 2):
        lines += [f"**The load average reached {max(loads):.1f} during these runs, more than this machine's {data.get('cpus', 2)} cores: "
                  "other jobs shared the CPUs, and latency figures are inflated. Rerun on a quiet machine before quoting them.**", ""]
    if "hop" in data:
        lines += _hop(data["hop"])
    if "grpc_balancing" in data:
        lines += _balancing(data["grpc_balancing"])
    if "noisy" in data:
        lines += _noisy(data["noisy"])
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path
