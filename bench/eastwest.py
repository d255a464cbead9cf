#!/usr/bin/env python3
"""East-west benchmarks (issue 18, "Measured"): the service proxy the plan renders, on real nginx, on loopback.

Every proxy here is `render_proxy` of a `Proxy` from `build_plan` of a small benchmark stack (below), the config
netopt ships, with only the process-level runtime changed (`testbed/service_proxy.py`: scratch paths, a free port,
each caller's server on its own 127.0.0.x, one worker as the plan says). Three sections:

1. hop: service proxy vs direct, http and grpc, one replica answering at once, open-loop Poisson at 1,000 calls/s:
   p50/p99 added by the hop (proxy run minus the direct run beside it) and the proxy's CPU per call (/proc of the
   nginx master and worker). Goal ≤ 0.5 ms p99 added (Istio's sidecars: ~2.65 ms p90, Istio's docs). Beside them,
   the floor: a bare nginx relay over the same hop (`bench/run.py` `minimal_nginx_conf`: keep-alive, no log, no
   limits), so the table tells the product config's share of the hop from what any nginx hop costs on this machine.
2. balancing: a gRPC callee with three replicas, one 5× slower (10/10/50 ms, exponential, 8 calls in service each,
   FIFO beyond); one client, one HTTP/2 connection (one channel), open-loop Poisson. Direct: the connection lands on
   one replica, as kube-proxy or Docker's DNS would place it; each landing is measured and the three are pooled
   (each equally likely). Through the proxy: least_conn (the default) and latency_optimal (declared times). Two
   loads: "light" (any replica alone could serve it) and "heavy" (only a fast replica alone could). Goal: p99 ≤
   0.5× direct.
3. noisy: two callers of one http callee, each with its own server and limits (per-caller); the noisy one sends
   10× its limit, the quiet one its declared rate. Alone vs with the noisy neighbour; and, for contrast, one server
   for all callers (what the plan renders where callers cannot be told apart: the callee's totals). Goal: the
   quiet caller's success ≥ 99.9 %, p99 ≤ 1.2× its p99 alone.

Clients are open loop (latency from each call's due time, no coordinated omission); the backends' and the client's
CPU are recorded to show they are not the bottleneck. Every run records the 1-minute load average before and
after. Output: bench/results/eastwest.json (summaries and every run) and eastwest.md (the tables, pasteable).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.eastwest_report import write_markdown  # noqa: E402
from bench.proc import CpuMeter, load1  # noqa: E402
from bench.run import minimal_nginx_conf, process_tree  # noqa: E402
from testbed.backend import BackendProcess, ReplicaConfig  # noqa: E402
from testbed.client import RequestSpec, percentile  # noqa: E402
from testbed.client import fixed_rate as http_fixed_rate  # noqa: E402
from testbed.client import run as run_loop  # noqa: E402
from testbed.gateway import free_port  # noqa: E402
from testbed.grpc_backend import GrpcBackendProcess  # noqa: E402
from testbed.grpc_client import fixed_rate as grpc_fixed_rate  # noqa: E402
from testbed.nginx_runner import NginxRunner  # noqa: E402
from testbed.service_proxy import ServiceProxy  # noqa: E402
from testbed.specs import make_spec  # noqa: E402
from testbed.stats import median  # noqa: E402

RESULTS = os.path.join(ROOT, "bench", "results")
Log = Callable[[str], None]
RunFn = Callable[[int, float], list["Outcome"]]  # (seed, seconds) -> the calls of one run

HOP_RATE = 1000.0
BALANCE_TIMES_MS = [10.0, 10.0, 50.0]
BALANCE_CONCURRENCY = 8
BALANCE_LOADS = {"light": 100.0, "heavy": 400.0}
BALANCE_VARIANTS = ("least_conn", "latency_optimal")
NOISY_FACTOR = 10.0
NOISY_SERVICE_MS = 20.0


# ----------------------------------------------------------------------------
# The benchmark stacks
# ----------------------------------------------------------------------------

def hop_spec(rate: float = HOP_RATE) -> Any:
    """`client` calls `api` (http) and `rpc` (grpc), one replica each with room for far more than the offered load,
    so no limit is near: what is measured is the hop."""
    callee = {"replicas": 1, "response_time_ms": 1, "max_concurrency": 256}
    return make_spec({"client": {"calls": [{"workload": "api", "ratio": 1}, {"workload": "rpc", "ratio": 1}]},
                      "api": {"port": 8080, **callee}, "rpc": {"protocol": "grpc", "port": 5050, **callee}},
                     [{"name": "main", "match": {"path": "/"}, "to": {"client": 1}}], traffic={"main": rate},
                     environment="bench-eastwest")


def balancing_spec(algorithm: str, rate: float) -> Any:
    """`client` calls `echo` (grpc, replicas at 10/10/50 ms, 8 in service each) at `rate`, its declared peak."""
    return make_spec({"client": {"calls": [{"workload": "echo", "ratio": 1}]},
                      "echo": {"protocol": "grpc", "port": 5050, "replicas": len(BALANCE_TIMES_MS), "response_time_ms": BALANCE_TIMES_MS,
                               "max_concurrency": BALANCE_CONCURRENCY, "traffic_policy": {"balancing": algorithm}}},
                     [{"name": "main", "match": {"path": "/"}, "to": {"client": 1}}], traffic={"main": rate},
                     environment="bench-eastwest")


def noisy_spec() -> Any:
    """`orders` (200 calls/s declared) and `search` (40) call `inventory` (http, 2 replicas × 16 at 20 ms: 1,600
    calls/s). Each caller's default limits are its share of that capacity by declared rate: orders 5/6, search 1/6."""
    return make_spec({"orders": {"calls": [{"workload": "inventory", "ratio": 1}]},
                      "search": {"calls": [{"workload": "inventory", "ratio": 1}]},
                      "inventory": {"port": 8080, "replicas": 2, "response_time_ms": NOISY_SERVICE_MS, "max_concurrency": 16}},
                     [{"name": "orders", "match": {"path": "/orders"}, "to": {"orders": 1}},
                      {"name": "search", "match": {"path": "/search"}, "to": {"search": 1}}],
                     traffic={"orders": 200, "search": 40}, environment="bench-eastwest")


# ----------------------------------------------------------------------------
# Runs
# ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    latency_s: float
    ok: bool
    kind: str  # HTTP status or gRPC status name; a transport error's exception name
    replica: str | None = None


def http_outcomes(target: str, rate: float, duration: float, *, source: str | None, seed: int, timeout: float,
                  path: str = "/eastwest") -> list[Outcome]:
    host, _, port = target.rpartition(":")
    samples = run_loop(http_fixed_rate(host, int(port), rate, duration, RequestSpec(path=path), source=source, poisson=True,
                                       seed=seed, timeout=timeout, max_conns=512))
    return [Outcome(s.latency, s.status == 200, str(s.status) if s.status else (s.error or "error").split(":")[0], s.replica)
            for s in samples]


def grpc_outcomes(target: str, rate: float, duration: float, *, seed: int, timeout: float) -> list[Outcome]:
    calls = asyncio.run(grpc_fixed_rate(target, rate, duration, poisson=True, seed=seed, timeout=timeout))
    return [Outcome(c.latency, c.ok, c.code, c.replica) for c in calls]


def summarize(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Latency over every call (a failed call at the time it failed: for a deadline, a lower bound) and success."""
    ms = [o.latency_s * 1000 for o in outcomes]
    ok = sum(1 for o in outcomes if o.ok)
    kinds: dict[str, int] = {}
    for o in outcomes:
        if not o.ok:
            kinds[o.kind] = kinds.get(o.kind, 0) + 1
    return {"sent": len(outcomes), "ok": ok, "success": ok / len(outcomes) if outcomes else 0.0,
            "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90), "p99_ms": percentile(ms, 99),
            "p999_ms": percentile(ms, 99.9), "mean_ms": sum(ms) / len(ms) if ms else None, "errors": kinds}


def metered(meter: CpuMeter, work: Callable[[], list[Outcome]]) -> tuple[list[Outcome], dict[str, Any]]:
    """Run `work` between the meter's readings; its summary with CPU per call (µs) and busy cores of every group."""
    meter.start()
    outcomes = work()
    meter.stop()
    row = summarize(outcomes)
    calls = max(1, len(outcomes))
    row["cpu_us_per_call"] = {name: cpu / calls * 1e6 for name, cpu in meter.cpu_s.items()}
    row["cores_busy"] = {name: cpu / meter.wall_s for name, cpu in meter.cpu_s.items()}
    row["wall_s"] = meter.wall_s
    row["load"] = list(meter.load)
    return outcomes, row


def _errors(runs: Sequence[dict[str, Any]]) -> dict[str, int]:
    """The failed calls of several runs by kind."""
    return {k: sum(r["errors"].get(k, 0) for r in runs) for k in sorted({k for r in runs for k in r["errors"]})}


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": median(values), "min": min(values), "max": max(values)}


# ----------------------------------------------------------------------------
# 1. Per-hop cost
# ----------------------------------------------------------------------------

def section_hop(reps: int, duration: float, rate: float, log: Log) -> dict[str, Any]:
    spec = hop_spec(rate)
    http_backend = BackendProcess([ReplicaConfig("api-0")]).start()
    grpc_backend = GrpcBackendProcess([ReplicaConfig("rpc-0")]).start()
    proxies: list[ServiceProxy] = []
    relays: list[NginxRunner] = []
    try:
        api = ServiceProxy(spec, "api", {"api": [http_backend.addresses["api-0"]]}).start()
        proxies.append(api)
        rpc = ServiceProxy(spec, "rpc", {"rpc": [grpc_backend.addresses["rpc-0"]]}).start()
        proxies.append(rpc)
        # The floor: a bare nginx relay (keep-alive, nothing else) over the same hop, what any nginx proxy costs here.
        api_relay, rpc_relay = free_port(), free_port()
        relays.append(NginxRunner(minimal_nginx_conf([http_backend.addresses["api-0"]], api_relay)).start())
        relays.append(NginxRunner(minimal_nginx_conf([grpc_backend.addresses["rpc-0"]], rpc_relay, grpc=True)).start())
        source = api.source("client")
        http_run: dict[str, RunFn] = {
            "direct": lambda seed, secs: http_outcomes(http_backend.addresses["api-0"], rate, secs, source=source, seed=seed, timeout=10),
            "proxy": lambda seed, secs: http_outcomes(api.address("client"), rate, secs, source=source, seed=seed, timeout=10),
            "relay": lambda seed, secs: http_outcomes(f"127.0.0.1:{api_relay}", rate, secs, source=source, seed=seed, timeout=10)}
        grpc_run: dict[str, RunFn] = {
            "direct": lambda seed, secs: grpc_outcomes(grpc_backend.addresses["rpc-0"], rate, secs, seed=seed, timeout=10),
            "proxy": lambda seed, secs: grpc_outcomes(rpc.address("client"), rate, secs, seed=seed, timeout=10),
            "relay": lambda seed, secs: grpc_outcomes(f"127.0.0.1:{rpc_relay}", rate, secs, seed=seed, timeout=10)}
        out: dict[str, Any] = {"rate": rate, "duration_s": duration, "reps": reps}
        for protocol, runs, proxy, relay, backend_pid in (("http", http_run, api, relays[0], http_backend.pid),
                                                          ("grpc", grpc_run, rpc, relays[1], grpc_backend.pid)):
            groups = {"proxy": process_tree(proxy.pid), "relay": process_tree(relay.pid), "backend": process_tree(backend_pid),
                      "client": [os.getpid()]}
            for run in runs.values():  # warm-up: connections, pools, the backend's code paths
                run(0, 1.0)
            rows: dict[str, list[dict[str, Any]]] = {"direct": [], "proxy": [], "relay": []}
            for rep in range(reps):
                for name in (("direct", "proxy", "relay") if rep % 2 == 0 else ("relay", "proxy", "direct")):
                    _, row = metered(CpuMeter(groups), partial(runs[name], rep + 1, duration))
                    rows[name].append(row)
                    log(f"  hop {protocol:4} [{rep + 1}/{reps}] {name:6} p50 {row['p50_ms']:6.3f} ms  p99 {row['p99_ms']:6.3f} ms  "
                        f"ok {row['ok']}/{row['sent']}  nginx {row['cpu_us_per_call']['proxy' if name != 'relay' else 'relay']:5.1f} µs/call  "
                        f"backend {row['cores_busy']['backend']:.2f} cores  client {row['cores_busy']['client']:.2f}  load {row['load'][0]:.2f}")
            out[protocol] = _hop_summary(rows)
            out[protocol]["config"] = proxy.conf
        return out
    finally:
        for proxy in proxies:
            proxy.stop()
        for relay in relays:
            relay.stop()
        http_backend.stop()
        grpc_backend.stop()


def _hop_summary(rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Added = a run through the proxy (or the bare relay) minus the direct run of its rep; `proxy_over_relay_*`: the
    proxy's run minus the relay's, what the product's config adds to the least any nginx hop costs here."""
    direct, proxy, relay = rows["direct"], rows["proxy"], rows["relay"]

    def minus(later: list[dict[str, Any]], base: list[dict[str, Any]], p: str) -> list[float]:
        return [b[f"{p}_ms"] - a[f"{p}_ms"] for a, b in zip(base, later, strict=True)]

    added = {p: minus(proxy, direct, p) for p in ("p50", "p99")}
    relay_added = {p: minus(relay, direct, p) for p in ("p50", "p99")}
    over_relay = {p: minus(proxy, relay, p) for p in ("p50", "p99")}
    every = direct + proxy + relay
    return {
        "direct": {k: _spread([r[f"{k}_ms"] for r in direct]) for k in ("p50", "p99")},
        "proxy": {k: _spread([r[f"{k}_ms"] for r in proxy]) for k in ("p50", "p99")},
        "relay": {k: _spread([r[f"{k}_ms"] for r in relay]) for k in ("p50", "p99")},
        "added_p50_ms": median(added["p50"]), "added_p99_ms": median(added["p99"]),
        "added_p50": _spread(added["p50"]), "added_p99": _spread(added["p99"]),
        "relay_added_p50_ms": median(relay_added["p50"]), "relay_added_p99_ms": median(relay_added["p99"]),
        "relay_added_p99": _spread(relay_added["p99"]),
        "proxy_over_relay_p50_ms": median(over_relay["p50"]), "proxy_over_relay_p99_ms": median(over_relay["p99"]),
        "proxy_over_relay_p99": _spread(over_relay["p99"]),
        "proxy_cpu_us_per_call": _spread([r["cpu_us_per_call"]["proxy"] for r in proxy]),
        "relay_cpu_us_per_call": _spread([r["cpu_us_per_call"]["relay"] for r in relay]),
        "backend_cores_busy_max": max(r["cores_busy"]["backend"] for r in every),
        "client_cores_busy_max": max(r["cores_busy"]["client"] for r in every),
        "failed": sum(r["sent"] - r["ok"] for r in every),
        "load": _spread([x for r in every for x in r["load"]]),
        "runs": rows,
    }


# ----------------------------------------------------------------------------
# 2. gRPC balancing over a slow replica
# ----------------------------------------------------------------------------

def _idle(backend: GrpcBackendProcess, timeout: float = 15.0) -> None:
    """Wait until no call is in service or queued (a direct run to the slow replica may leave a queue behind)."""
    deadline = time.monotonic() + timeout
    while any(s["inflight"] for s in backend.stats().values()) and time.monotonic() < deadline:
        time.sleep(0.2)


def section_balancing(reps: int, duration: float, loads: dict[str, float], log: Log) -> dict[str, Any]:
    cfgs = [ReplicaConfig(f"echo-{i}", latency_ms=t, concurrency=BALANCE_CONCURRENCY, latency_dist="exp")
            for i, t in enumerate(BALANCE_TIMES_MS)]
    backend = GrpcBackendProcess(cfgs).start()
    out: dict[str, Any] = {"times_ms": BALANCE_TIMES_MS, "concurrency": BALANCE_CONCURRENCY, "duration_s": duration, "reps": reps}
    try:
        addresses = [backend.addresses[c.name] for c in cfgs]
        for load_name, rate in loads.items():
            proxies = {v: ServiceProxy(balancing_spec(v, rate), "echo", {"echo": addresses}) for v in BALANCE_VARIANTS}
            try:
                for proxy in proxies.values():
                    proxy.start()
                timeout = proxies["least_conn"].plan.edges[0].policy.timeout_s
                targets = {f"direct-{i}": a for i, a in enumerate(addresses)} | {v: p.address("client") for v, p in proxies.items()}
                groups = {"backend": process_tree(backend.pid), "client": [os.getpid()]}
                rows: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
                pooled: list[dict[str, Any]] = []
                for rep in range(reps):
                    names = list(targets)
                    names = names[rep % len(names):] + names[:rep % len(names)]  # rotate: drift hits every target alike
                    landed: list[Outcome] = []
                    for name in names:
                        _idle(backend)
                        backend.reset()
                        proxy_groups = groups | ({"proxy": process_tree(proxies[name].pid)} if name in proxies else {})
                        outcomes, row = metered(CpuMeter(proxy_groups),
                                                partial(grpc_outcomes, targets[name], rate, duration, seed=rep + 1, timeout=timeout))
                        stats = backend.stats()
                        served = sum(s["requests"] for s in stats.values()) or 1
                        row["shares"] = {c.name: stats[c.name]["requests"] / served for c in cfgs}
                        row["utilization"] = {c.name: stats[c.name]["busy_s"] / (BALANCE_CONCURRENCY * row["wall_s"]) for c in cfgs}
                        rows[name].append(row)
                        if name.startswith("direct"):
                            landed += outcomes
                        log(f"  balancing {load_name} {rate:g}/s [{rep + 1}/{reps}] {name:15} p50 {row['p50_ms']:8.2f} ms  "
                            f"p99 {row['p99_ms']:8.2f} ms  success {row['success']:.4f}  shares "
                            + " ".join(f"{row['shares'][c.name]:.3f}" for c in cfgs) + f"  load {row['load'][0]:.2f}")
                    pooled.append(summarize(landed))
                out[load_name] = _balancing_summary(rate, timeout, rows, pooled, [c.name for c in cfgs])
            finally:
                for proxy in proxies.values():
                    proxy.stop()
        return out
    finally:
        backend.stop()


def _balancing_summary(rate: float, timeout: float, rows: dict[str, list[dict[str, Any]]], pooled: list[dict[str, Any]],
                       replicas: list[str]) -> dict[str, Any]:
    def stats(runs: list[dict[str, Any]]) -> dict[str, Any]:
        return {"p50_ms": median([r["p50_ms"] for r in runs]), "p99_ms": median([r["p99_ms"] for r in runs]),
                "p99": _spread([r["p99_ms"] for r in runs]), "success": sum(r["ok"] for r in runs) / sum(r["sent"] for r in runs),
                "errors": _errors(runs)}

    out: dict[str, Any] = {"rate": rate, "timeout_s": timeout,
                           "direct": {"pooled": stats(pooled)} | {name: stats(runs) for name, runs in rows.items() if name.startswith("direct")}}
    for variant in BALANCE_VARIANTS:
        ratios = [r["p99_ms"] / p["p99_ms"] for r, p in zip(rows[variant], pooled, strict=True)]
        out[variant] = stats(rows[variant]) | {
            "p99_ratio": median(ratios), "p99_ratios": _spread(ratios),
            "shares": {n: median([r["shares"][n] for r in rows[variant]]) for n in replicas},
            "utilization": {n: median([r["utilization"][n] for r in rows[variant]]) for n in replicas},
            "proxy_cpu_us_per_call": median([r["cpu_us_per_call"]["proxy"] for r in rows[variant]])}
    out["backend_cores_busy_max"] = max(r["cores_busy"]["backend"] for runs in rows.values() for r in runs)
    out["client_cores_busy_max"] = max(r["cores_busy"]["client"] for runs in rows.values() for r in runs)
    out["load"] = _spread([x for runs in rows.values() for r in runs for x in r["load"]])
    out["runs"] = rows
    return out


# ----------------------------------------------------------------------------
# 3. Noisy neighbour
# ----------------------------------------------------------------------------

def _client_job(target: str, rate: float, duration: float, source: str | None, seed: int, start_at: float, path: str) -> dict[str, Any]:
    """One open-loop HTTP caller in its own process (a noisy caller must not slow the quiet one's event loop)."""
    time.sleep(max(0.0, start_at - time.time()))
    t0, cpu0 = time.monotonic(), time.process_time()
    outcomes = http_outcomes(target, rate, duration, source=source, seed=seed, timeout=10, path=path)
    wall = time.monotonic() - t0
    return {"outcomes": [(o.latency_s, o.ok, o.kind) for o in outcomes], "wall_s": wall, "cores_busy": (time.process_time() - cpu0) / wall}


def section_noisy(reps: int, duration: float, log: Log) -> dict[str, Any]:
    from components.plan.deployment import Deployment

    spec = noisy_spec()
    backend = BackendProcess([ReplicaConfig(f"inventory-{i}", latency_ms=NOISY_SERVICE_MS, concurrency=16) for i in range(2)]).start()
    addresses = {"inventory": [backend.addresses["inventory-0"], backend.addresses["inventory-1"]]}
    per_caller = ServiceProxy(spec, "inventory", addresses)
    shared = ServiceProxy(spec, "inventory", addresses, deployment=Deployment("gateway", "none"))
    edges = {e.caller: e for e in per_caller.plan.edges}
    quiet_rate, noisy_rate = edges["orders"].declared_rps, NOISY_FACTOR * (edges["search"].limit_rps or 0)
    pool = ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn"))
    try:
        per_caller.start()
        shared.start()
        list(pool.map(time.sleep, [0.1, 0.1]))  # both workers up (imports done) before the first timed run
        groups = {"proxy": process_tree(per_caller.pid), "backend": process_tree(backend.pid)}
        scenarios = {"alone": (per_caller, False), "noisy": (per_caller, True), "shared": (shared, True)}
        rows: dict[str, list[dict[str, Any]]] = {name: [] for name in scenarios}
        for rep in range(reps):
            names = list(scenarios)
            for name in names[rep % 3:] + names[:rep % 3]:
                proxy, noisy = scenarios[name]
                meter = CpuMeter(groups | {"proxy": process_tree(proxy.pid)}).start()
                start_at = time.time() + 0.3
                quiet_job = pool.submit(_client_job, proxy.address("orders"), quiet_rate, duration, per_caller.source("orders"),
                                        rep + 1, start_at, "/orders")
                noisy_job = pool.submit(_client_job, proxy.address("search"), noisy_rate, duration, per_caller.source("search"),
                                        rep + 101, start_at, "/search") if noisy else None
                quiet, loud = quiet_job.result(), noisy_job.result() if noisy_job else None
                meter.stop()
                row = {"quiet": summarize([Outcome(lat, ok, kind) for lat, ok, kind in quiet["outcomes"]]), "quiet_wall_s": quiet["wall_s"],
                       "load": list(meter.load),
                       "cores_busy": {k: v / meter.wall_s for k, v in meter.cpu_s.items()} | {"quiet_client": quiet["cores_busy"]}}
                if loud is not None:
                    row["noisy"] = summarize([Outcome(lat, ok, kind) for lat, ok, kind in loud["outcomes"]])
                    row["noisy_wall_s"] = loud["wall_s"]
                    row["cores_busy"]["noisy_client"] = loud["cores_busy"]
                rows[name].append(row)
                q = row["quiet"]
                extra = f"  noisy ok {row['noisy']['ok']}/{row['noisy']['sent']} {row['noisy']['errors']}" if loud else ""
                log(f"  noisy [{rep + 1}/{reps}] {name:6} quiet p50 {q['p50_ms']:6.2f} ms  p99 {q['p99_ms']:6.2f} ms  "
                    f"success {q['success']:.4f}{extra}  load {row['load'][0]:.2f}")
        return _noisy_summary(rows, quiet_rate, noisy_rate, edges, per_caller.conf) | {"reps": reps, "duration_s": duration}
    finally:
        pool.shutdown()
        per_caller.stop()
        shared.stop()
        backend.stop()


def _noisy_summary(rows: dict[str, list[dict[str, Any]]], quiet_rate: float, noisy_rate: float, edges: dict[str, Any], conf: str) -> dict[str, Any]:
    def quiet(name: str) -> dict[str, Any]:
        runs = [r["quiet"] for r in rows[name]]
        return {"p50_ms": median([r["p50_ms"] for r in runs]), "p99_ms": median([r["p99_ms"] for r in runs]),
                "p99": _spread([r["p99_ms"] for r in runs]), "success": sum(r["ok"] for r in runs) / sum(r["sent"] for r in runs),
                "sent": sum(r["sent"] for r in runs), "errors": _errors(runs)}

    def noisy(name: str) -> dict[str, Any]:
        runs = [r["noisy"] for r in rows[name]]
        sent = sum(r["sent"] for r in runs)
        # An open-loop client that falls behind sends late: the rate it reached is what it sent over its wall time.
        return {"sent": sent, "ok": sum(r["ok"] for r in runs), "success": sum(r["ok"] for r in runs) / sent, "errors": _errors(runs),
                "achieved_rps": sent / sum(r["noisy_wall_s"] for r in rows[name]),
                "client_cores_busy_max": max(r["cores_busy"]["noisy_client"] for r in rows[name])}

    ratios = [n["quiet"]["p99_ms"] / a["quiet"]["p99_ms"] for a, n in zip(rows["alone"], rows["noisy"], strict=True)]
    limits = {c: {"limit_rps": e.limit_rps, "burst": e.burst, "max_concurrency": e.max_concurrency, "declared_rps": e.declared_rps}
              for c, e in edges.items()}
    return {
        "service_ms": NOISY_SERVICE_MS, "quiet_rate": quiet_rate, "noisy_rate": noisy_rate, "noisy_factor": NOISY_FACTOR, "limits": limits,
        "alone": quiet("alone"), "noisy": quiet("noisy") | {"neighbour": noisy("noisy")}, "shared": quiet("shared") | {"neighbour": noisy("shared")},
        "quiet_success": quiet("noisy")["success"], "quiet_p99_ratio": median(ratios), "quiet_p99_ratios": _spread(ratios),
        "load": _spread([x for runs in rows.values() for r in runs for x in r["load"]]),
        "backend_cores_busy_max": max(r["cores_busy"]["backend"] for runs in rows.values() for r in runs),
        "config": conf, "runs": rows,
    }


# ----------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sections", default="hop,balancing,noisy")
    parser.add_argument("--reps", type=int, default=5, help="paired direct/proxy runs per protocol in the hop section (default 5)")
    parser.add_argument("--duration", type=float, default=10, help="seconds per hop run (default 10)")
    parser.add_argument("--balance-reps", type=int, default=3)
    parser.add_argument("--balance-duration", type=float, default=10)
    parser.add_argument("--noisy-reps", type=int, default=3)
    parser.add_argument("--noisy-duration", type=float, default=10)
    parser.add_argument("--quick", action="store_true", help="1 short run per point: a smoke test, not figures")
    parser.add_argument("--out", default=RESULTS, help="directory for eastwest.json and eastwest.md (default bench/results)")
    args = parser.parse_args(argv)
    if args.quick:
        args.reps, args.balance_reps, args.noisy_reps, args.duration, args.balance_duration, args.noisy_duration = 1, 1, 1, 2, 3, 3
    sections = set(args.sections.split(","))
    t0 = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {message}", flush=True)

    import grpc

    data: dict[str, Any] = {
        "command": "python bench/eastwest.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "host": f"{platform.node()}, {os.cpu_count()} CPUs, {platform.platform()}, "
                + subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip().replace("nginx version: ", ""),
        "grpcio": grpc.__version__, "python": platform.python_version(), "niceness": os.nice(0),
        "loadavg_before": load1(), "cpus": os.cpu_count() or 1,
    }
    if "hop" in sections:
        log(f"hop: service proxy vs direct, http and grpc, {HOP_RATE:g} calls/s open loop")
        data["hop"] = section_hop(args.reps, args.duration, HOP_RATE, log)
    if "balancing" in sections:
        log("balancing: gRPC, replicas at 10/10/50 ms; one connection direct (each landing) vs the proxy")
        data["grpc_balancing"] = section_balancing(args.balance_reps, args.balance_duration, BALANCE_LOADS, log)
    if "noisy" in sections:
        log(f"noisy: a caller at {NOISY_FACTOR:g}x its limit beside a quiet one at its declared rate")
        data["noisy"] = section_noisy(args.noisy_reps, args.noisy_duration, log)
    data["loadavg_after"] = load1()
    data["wall_s"] = time.monotonic() - t0
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "eastwest.json"), "w") as f:
        json.dump(data, f, indent=1)
    md = write_markdown(data, os.path.join(args.out, "eastwest.md"))
    log(f"wrote {os.path.join(args.out, 'eastwest.json')} and {md} in {data['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
