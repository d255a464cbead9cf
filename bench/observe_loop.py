"""Closed loop: declare -> deploy -> observe -> re-plan -> deploy, on real nginx with loopback backends.

The skew setup of bench/run.py (`section_skew`): one route to 4 replicas whose real service times are exponential
with means 10/10/10/50 ms (testbed/backend.py, concurrency 8 each), `latency_optimal`, 1,000 req/s open-loop
Poisson load (testbed/client.py `fixed_rate`). Three phases, each a fresh nginx on the renderer's config:

1. mis-declared: every replica declared 10 ms, so latency_optimal splits evenly and the slow one gets a full share;
2. observed: the access log of phase 1 is read by observe (`components.observe.log_stats`, `components.observe.observation`),
   its patch (`components.observe.observation_patch`) applied to the stack values, the spec re-validated and re-rendered;
3. correct: declared 10/10/10/50 from the start (the reference).

Targets: p99(2) <= 0.5 x p99(1) and p99(2) <= 1.2 x p99(3); every replica's measured t_i (phase 1) within +-10 %
of its true mean (the backend's own summed service time / requests; the wall time its sleeps really took is shown
beside it, since a loaded machine wakes the backend late). Loopback only, bounded (--duration per phase).

    .venv/bin/python bench/observe_loop.py [--duration 15] [--reps 1] [--nice 10]   # --nice N: at nice -N, as bench/run.py
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.observe.log_stats import LogReader, LogStats  # noqa: E402
from components.observe.observation import DEFAULT_TOLERANCE, measure, member_addresses  # noqa: E402
from components.observe.observation_patch import apply_patch, patch_document  # noqa: E402
from components.plan.build import build_plan  # noqa: E402
from components.plan.deployment import deployment_of  # noqa: E402
from components.render.nginx import render_proxy  # noqa: E402
from components.spec.schema import Spec  # noqa: E402
from components.spec.validation import parse_spec  # noqa: E402
from testbed.backend import BackendProcess, ReplicaConfig  # noqa: E402
from testbed.client import RequestSpec, fixed_rate, percentile, run  # noqa: E402
from testbed.gateway import host_runtime  # noqa: E402
from testbed.nginx_runner import NginxRunner  # noqa: E402
from testbed.specs import make_spec  # noqa: E402

TRUE_MS = [10.0, 10.0, 10.0, 50.0]
CONCURRENCY = 8
RATE = 1000.0
RESULTS = ROOT / "bench" / "results"


def skew_spec(declared_ms: list[float]) -> Spec:
    return make_spec({"svc": {"replicas": len(declared_ms), "response_time_ms": declared_ms, "max_concurrency": CONCURRENCY}},
                     [{"name": "main", "match": {"path": "/"}, "to": {"svc": 1}}],
                     gateway={"algorithm": "latency_optimal", "keepalive": {"connections": 64, "timeout_s": 30}},
                     environment="bench-observe", traffic={"main": RATE})


def replanned(spec: Spec, stats: LogStats, tolerance: float) -> tuple[Spec, list[str]]:
    """The patch observe writes, applied to the stack values as a reviewer would, re-validated."""
    raw = {f"netopt:{key}": value for key, value in spec.model_dump(mode="json", exclude_unset=True).items()}
    patch, changes = patch_document(raw, spec, measure(spec, stats), tolerance)
    merged = apply_patch({"config": raw}, patch)["config"]
    return parse_spec({key.removeprefix("netopt:"): value for key, value in merged.items()}), changes


def _flush(nginx: NginxRunner, path: str) -> int:
    os.kill(nginx.pid, signal.SIGUSR1)  # reopen = flush the buffered access log
    time.sleep(0.3)
    return os.path.getsize(path) if os.path.exists(path) else 0


def phase(spec: Spec, backend: BackendProcess, addresses: list[str], duration: float, seed: int) -> dict[str, Any]:
    prefix = tempfile.mkdtemp(prefix="netopt-observe-loop-")
    runtime = host_runtime(prefix)
    nginx = NginxRunner(render_proxy(build_plan(spec, deployment_of(spec)).gateway, {"svc": addresses}, runtime), prefix=prefix,
                        listen=[("127.0.0.1", runtime.listen_port)]).start()
    log = os.path.join(prefix, "logs", "access.log")
    try:
        run(fixed_rate("127.0.0.1", runtime.listen_port, RATE / 4, 1.0, RequestSpec(path="/warm")))
        start = _flush(nginx, log)
        backend.reset()
        samples = run(fixed_rate("127.0.0.1", runtime.listen_port, RATE, duration, RequestSpec(path="/skew"),
                                 max_conns=512, poisson=True, seed=seed, timeout=10))
        truth = backend.stats()
    finally:
        nginx.stop()  # graceful: writes the rest of the log
    plan = build_plan(spec, deployment_of(spec))
    reader = LogReader(member_addresses({"svc": addresses}), {u.name for u in plan.gateway.upstreams})
    with open(log, "rb") as stream:
        stream.seek(start)
        for number, line in enumerate(stream, start=1):
            reader.feed(number, line)
    stats = reader.finish()
    ok = [s.latency * 1000.0 for s in samples if s.status == 200]
    return {
        "declared_ms": [t * 1000.0 for t in spec.workload("svc").replica_response_times_s()],
        "backup": [s.backup for s in plan.gateway.upstreams[0].servers],
        "sent": len(samples), "errors": len(samples) - len(ok),
        "p50_ms": percentile(ok, 50), "p99_ms": percentile(ok, 99),
        "replicas": [{"true_mean_ms": 1000.0 * t["busy_s"] / t["requests"] if t["requests"] else None,
                      "realized_mean_ms": 1000.0 * t["slept_s"] / t["requests"] if t["requests"] else None,
                      "requests": t["requests"],
                      "measured_mean_ms": stats.members[("svc", i)].times.mean(),
                      "measured_p99_ms": stats.members[("svc", i)].times.quantile(0.99),
                      "logged": stats.members[("svc", i)].served}
                     for i, t in enumerate(truth[f"svc-{i}"] for i in range(len(TRUE_MS)))],
        "log": {"requests": stats.requests, "malformed": stats.malformed, "unmapped": stats.unmapped_tries,
                "peak_rps": stats.routes["main"].rate.peak_rps() if "main" in stats.routes else None},
        "stats": stats,
    }


def _row(label: str, result: dict[str, Any]) -> str:
    declared = "/".join(f"{t:g}" for t in result["declared_ms"])
    backups = ",".join(str(i) for i, b in enumerate(result["backup"]) if b) or "-"
    shares = " ".join(f"{r['logged'] / max(1, result['log']['requests']):.3f}" for r in result["replicas"])
    return (f"| {label} | {declared} | {backups} | {result['p50_ms']:.1f} | {result['p99_ms']:.1f} | {result['errors']}/{result['sent']} "
            f"| {shares} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of load per phase")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    parser.add_argument("--nice", type=int, default=0, help="run everything at nice -N, as bench/run.py (root; steadier on a shared machine)")
    args = parser.parse_args()
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, -abs(args.nice))  # the backend, nginx and the client inherit it
    configs = [ReplicaConfig(f"svc-{i}", latency_ms=t, concurrency=CONCURRENCY, latency_dist="exp") for i, t in enumerate(TRUE_MS)]
    backend = BackendProcess(configs).start()
    lines = ["| phase | declared ms | backup | p50 ms | p99 ms | errors/sent | shares svc-0..3 |", "|---|---|---|---|---|---|---|"]
    runs: list[dict[str, Any]] = []
    verdicts: list[str] = []
    try:
        addresses = [backend.addresses[c.name] for c in configs]
        for rep in range(args.reps):
            load = os.getloadavg()
            wrong = phase(skew_spec([10.0] * 4), backend, addresses, args.duration, seed=rep + 1)
            patched_spec, changes = replanned(skew_spec([10.0] * 4), wrong["stats"], args.tolerance)
            patched = phase(patched_spec, backend, addresses, args.duration, seed=rep + 1)
            right = phase(skew_spec(TRUE_MS), backend, addresses, args.duration, seed=rep + 1)
            t_errors = [abs(r["measured_mean_ms"] / r["true_mean_ms"] - 1.0) for r in wrong["replicas"]]
            verdict = {
                "p99_observed_over_misdeclared": patched["p99_ms"] / wrong["p99_ms"],
                "p99_observed_over_correct": patched["p99_ms"] / right["p99_ms"],
                "max_t_error": max(t_errors),
                "pass": patched["p99_ms"] <= 0.5 * wrong["p99_ms"] and patched["p99_ms"] <= 1.2 * right["p99_ms"] and max(t_errors) <= 0.10,
            }
            lines += [_row(f"{rep + 1}: mis-declared", wrong), _row(f"{rep + 1}: after observe -> re-plan", patched),
                      _row(f"{rep + 1}: correct declarations", right)]
            notes = [f"  patch: {'; '.join(changes)}"]
            notes.append("  measured t_i (phase 1) vs true mean (the backend's drawn service times; in brackets the wall time its sleeps "
                  "really took): " + ", ".join(
                f"svc/{i} {r['measured_mean_ms']:.1f} vs {r['true_mean_ms']:.1f} ms ({r['measured_mean_ms'] / r['true_mean_ms'] - 1:+.1%}) "
                f"[{r['realized_mean_ms']:.1f}]" for i, r in enumerate(wrong["replicas"])))
            notes.append(f"  p99 ratios: {verdict['p99_observed_over_misdeclared']:.2f} x mis-declared (target <= 0.5), "
                  f"{verdict['p99_observed_over_correct']:.2f} x correct (target <= 1.2); max t_i error {verdict['max_t_error']:.1%} "
                  f"(target <= 10 %) -> {'PASS' if verdict['pass'] else 'FAIL'}; load average before {load[0]:.2f}")
            print("\n".join(lines[-3:] + notes))
            verdicts += notes
            runs.append({"changes": changes, "verdict": verdict, "load_average": load,
                         **{name: {k: v for k, v in result.items() if k != "stats"}
                            for name, result in (("misdeclared", wrong), ("observed", patched), ("correct", right))}})
    finally:
        backend.stop()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "observe_loop.json").write_text(json.dumps({"duration_s": args.duration, "rate_rps": RATE, "runs": runs}, indent=2))
    (RESULTS / "observe_loop.md").write_text("\n".join([*lines, "", *verdicts]) + "\n")
    return 0 if all(r["verdict"]["pass"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
