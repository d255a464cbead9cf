#!/usr/bin/env python3
"""netopt gateway benchmark (loopback only, bounded runs). See bench/README.md.

Sections (each point repeated --reps times, interleaved so background noise
hits every configuration alike; median and min..max reported):

1. throughput: wrk -t2 -c64 tiny responses against direct (one backend
   replica), the generated gateway (the project's renderer, access log on), the
   naive tutorial nginx config, HAProxy configured to do what the gateway does
   (and bare), and minimal nginx (the ceiling of any nginx config);
2. limited: the same proxies, each under the gateway's CPU limit (a CFS quota
   of gateway.resources.cpu, as the Docker and Kubernetes targets run it);
3. knobs: the generated config with one nginx knob changed at a time -- what
   each knob buys;
4. skew: one replica 5x slower, open-loop fixed-rate Poisson load, round_robin
   vs least_conn vs latency_weighted vs latency_optimal; p50/p99/errors and
   per-replica utilization/latency against components.plan.capacity's predictions.

Output: bench/results/results.md, results.json, summary.png (raw runs under
bench/results/raw/).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.wrk import WrkResult, run_wrk  # noqa: E402
from testbed.backend import LOOP as BACKEND_LOOP  # noqa: E402
from testbed.backend import BackendProcess, ReplicaConfig  # noqa: E402
from testbed.client import RequestSpec, fixed_rate, percentile, run  # noqa: E402
from testbed.gateway import free_port, host_runtime, parse_access_log  # noqa: E402
from testbed.haproxy_runner import HaproxyRunner  # noqa: E402
from testbed.nginx_runner import NginxRunner  # noqa: E402
from testbed.specs import make_spec  # noqa: E402
from testbed.stats import median  # noqa: E402
from testbed.tools import locate  # noqa: E402

RESULTS = os.path.join(ROOT, "bench", "results")


# ----------------------------------------------------------------------------
# Configurations
# ----------------------------------------------------------------------------

def bench_spec(algorithm: str = "round_robin", replicas: int = 2) -> Any:
    """The benchmark stack: one route to one workload, the renderer's defaults otherwise."""
    return make_spec({"svc": {"replicas": replicas, "response_time_ms": 1, "max_concurrency": 1024}},
                     [{"name": "main", "match": {"path": "/"}, "to": {"svc": 1}}],
                     gateway={"algorithm": algorithm, "keepalive": {"connections": 64, "timeout_s": 30}},
                     environment="bench")


def render_gateway(spec: Any, addresses: dict[str, list[str]], prefix: str, **runtime: Any) -> tuple[str, int]:
    from components.plan.build import build_plan
    from components.plan.deployment import deployment_of
    from components.render.nginx import render_proxy

    rt = host_runtime(prefix, worker_processes=runtime.pop("worker_processes", None), **runtime)
    return render_proxy(build_plan(spec, deployment_of(spec)).gateway, addresses, rt), rt.listen_port


def naive_conf(backends: list[str], port: int, workers: str | None = None) -> str:
    """The tutorial config: upstream with weight=1, no keepalive, nginx defaults
    elsewhere (1 worker, HTTP/1.0 to upstreams, unbuffered combined access log)."""
    servers = "\n".join(f"        server {b} weight=1;" for b in backends)
    wp = f"worker_processes {workers};\n" if workers else ""
    return f"""{wp}events {{}}
http {{
    access_log logs/access.log;
    upstream backend {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
        }}
    }}
}}
"""


def haproxy_cfg(backends: list[str], port: int, threads: int = 1, equivalent: bool = True) -> str:
    """HAProxy with the gateway's behaviour: same backends, roundrobin, keep-alive both sides, http-reuse always,
    one HTTP log line per request (to stdout, which the runner sends to a file), X-Forwarded-For/-Proto, and an
    X-Request-Id kept from the client or made from counters like the gateway's (no random bytes), logged.
    ``equivalent=False``: the bare proxy (no log, no header rewriting) -- HAProxy at its fastest."""
    servers = "\n".join(f"    server s{i} {b} maxconn 1024" for i, b in enumerate(backends))
    glog = "    log stdout format raw local0\n" if equivalent else ""
    dlog = "    log global\n" if equivalent else ""
    fe = ("    unique-id-format %{+X}o%ci:%cp_%fi:%fp_%Ts_%rt:%pid\n"
          "    http-request set-header X-Request-Id %[unique-id] unless { req.hdr(x-request-id) -m found }\n"
          "    option forwardfor\n"
          "    http-request set-header X-Forwarded-Proto http\n"
          "    log-format \"%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %tsc %{+Q}r id=%ID\"\n") if equivalent else ""
    return f"""global
    nbthread {threads}
    maxconn 8192
{glog}defaults
    mode http
{dlog}    option http-keep-alive
    timeout connect 2s
    timeout client 65s
    timeout server 30s
    timeout http-keep-alive 65s
frontend fe
    bind 127.0.0.1:{port}
{fe}    default_backend be
backend be
    balance roundrobin
    http-reuse always
{servers}
"""


def minimal_nginx_conf(backends: list[str], port: int, *, host: str = "127.0.0.1", grpc: bool = False) -> str:
    """The least nginx can do as this proxy: upstream keep-alive and nothing else (no log, no added headers, no
    limits, no health bookkeeping) -- the ceiling any nginx config reaches on this machine. `grpc`: over HTTP/2
    (`grpc_pass`), as a gRPC hop needs."""
    servers = "\n".join(f"        server {b};" for b in backends)
    listen = f"{host}:{port} http2" if grpc else f"{host}:{port} reuseport"
    passing = ("grpc_pass grpc://backend;" if grpc else
               'proxy_pass http://backend;\n            proxy_http_version 1.1;\n            proxy_set_header Connection "";')
    return f"""worker_processes 1;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 10000;
    upstream backend {{
{servers}
        keepalive 64;
        keepalive_requests 10000;
    }}
    server {{
        listen {listen};
        location / {{
            {passing}
        }}
    }}
}}
"""


# Knob variants: text changes to the generated config, one knob at a time. The
# renderer exposes only some of these (worker_processes, access_log via the
# runtime; keepalive pool via the spec), so the rest are edits of its output
# made here for measurement only.
def _sub(pattern: str, repl: str | Callable[[re.Match[str]], str], count: int = 0) -> Callable[[str], str]:
    def f(conf: str) -> str:
        new, n = re.subn(pattern, repl, conf, count=count, flags=re.M)
        if n == 0:
            raise ValueError(f"knob edit {pattern!r} matched nothing")
        return new
    return f


_LOG_MAPS = (("rate_limit", "rl"), ("rate_limit_key", "rl_key"), ("concurrency_limit", "cl"), ("concurrency_limit_key", "cl_key"))


def _unused_log_maps(conf: str) -> str:
    """A knob: what the renderer wrote for a proxy without limits before it left such maps out."""
    for name, suffix in _LOG_MAPS:
        conf = _sub(f'"{name}":"",', f'"{name}":"$netopt_log_{suffix}",')(conf)
    maps = "".join(f'    map $netopt_route $netopt_log_{suffix} {{\n        default "";\n    }}\n' for _, suffix in _LOG_MAPS)
    return _sub(r"^(    map \$netopt_route \$netopt_retry_after \{)", lambda m: maps + m.group(1), count=1)(conf)


KNOBS: list[tuple[str, str, Callable[[str], str]]] = [
    ("no upstream keepalive", "drop `keepalive N;` in upstream (new TCP connection per request)",
     _sub(r"^\s+keepalive \d+;\n", "")),
    ("upstream keepalive 8", "`keepalive 8;` instead of 64 (pool smaller than concurrency)",
     _sub(r"^(\s+)keepalive \d+;", r"\1keepalive 8;")),
    ("client keepalive_requests 100", "`keepalive_requests 100;` (pre-1.19.10 default) for clients",
     _sub(r"^(    )keepalive_requests \d+;", r"\1keepalive_requests 100;")),
    ("access log unbuffered", "`access_log ... netopt;` without `buffer=64k flush=1s`",
     _sub(r" buffer=64k flush=1s", "")),
    ("access log off", "`access_log off;`",
     _sub(r"^(\s+)access_log \S+ netopt[^;]*;", r"\1access_log off;")),
    ("no reuseport", "`listen ... default_server backlog=4096;` without `reuseport`",
     _sub(r" reuseport", "")),
    ("worker_processes 2", "`worker_processes 2;` instead of 1 (the gateway's 0.5-CPU limit; 2 = this host's cores)",
     _sub(r"^worker_processes \S+;", "worker_processes 2;")),
    ("multi_accept on", "`multi_accept on;` in events",
     _sub(r"^(\s+)worker_connections (\d+);", r"\1worker_connections \2;\n\1multi_accept on;")),
    ("tcp_nodelay off", "`tcp_nodelay off;`", _sub(r"tcp_nodelay on;", "tcp_nodelay off;")),
    ("proxy_buffering off", "`proxy_buffering off;` (stream responses, no buffers)",
     _sub(r"^(\s+)proxy_http_version 1.1;", r"\1proxy_http_version 1.1;\n\1proxy_buffering off;")),
    ("proxy_buffers 16x16k", "`proxy_buffer_size 16k; proxy_buffers 16 16k;`",
     _sub(r"^(\s+)proxy_http_version 1.1;", r"\1proxy_http_version 1.1;\n\1proxy_buffer_size 16k;\n\1proxy_buffers 16 16k;")),
    ("no X-Request-Id", "drop `proxy_set_header X-Request-Id $netopt_request_id;` (the counter-made id)",
     _sub(r"^\s+proxy_set_header X-Request-Id \$netopt_request_id;\n", "")),
    ("random X-Request-Id", "`$request_id` (nginx's 16 random bytes: a getpid() syscall + DRBG per request) for the id",
     _sub(r'^(\s+)default \$hostname-\S+;', r'\1default $request_id;')),
    ("no upstream zone", "drop `zone <name> 32k;` (per-worker instead of shared upstream state)",
     _sub(r"^\s+zone \S+ \S+;\n", "")),
    ("no geo deny list", "drop the `geo $netopt_denied` check (`if (...) { return 403; }`) and the allow/deny lines",
     lambda conf: _sub(r"^\s+(allow|deny) (0\.0\.0\.0/0|::/0|all);\n", "", count=3)(
         _sub(r"^\s+if \(\$netopt_denied\) \{ return 403; \}\n", "")(conf))),
    ("no client timeouts", "drop `client_header_timeout`, `client_body_timeout`, `send_timeout` (nginx's 60 s defaults)",
     _sub(r"^\s+(client_header_timeout|client_body_timeout|send_timeout) \S+;\n", "")),
    ("combined access log", "the JSON `netopt` log format (23 fields, 4 of them per-route maps) replaced by nginx's `combined`",
     _sub(r"^(\s+access_log \S+) netopt ", r"\1 combined ")),
    ("unused log maps rendered", "the per-route log maps no route sets (`$netopt_log_rl`, `_rl_key`, `_cl`, `_cl_key`: "
     "default-only) rendered and logged, as before they were left out",
     _unused_log_maps),
]



# ----------------------------------------------------------------------------
# Runners
# ----------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (nginx workers, HAProxy's worker)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes (all their threads), in seconds."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / _TICK


@dataclass
class Target:
    name: str
    url: str
    stop: Callable[[], None] = lambda: None
    runs: list[WrkResult] = field(default_factory=list)
    note: str = ""
    pid: int | None = None           # the proxy's main process (None: no proxy)
    cpu_us: list[float] = field(default_factory=list)          # proxy CPU us per request
    backend_cpu_us: list[float] = field(default_factory=list)  # backend CPU us per request
    conf: str = ""                   # the nginx config it runs, if nginx


def start_nginx(name: str, conf: str, port: int, note: str = "") -> Target:
    n = NginxRunner(conf, listen=[("127.0.0.1", port)]).start()
    return Target(name, f"http://127.0.0.1:{port}/", n.stop, note=note, pid=n.pid, conf=conf)


def summarize(runs: list[WrkResult], cpu_us: list[float] | None = None,
              backend_cpu_us: list[float] | None = None) -> dict[str, Any]:
    rps = [r.rps for r in runs]
    p50 = [r.p50_ms or 0.0 for r in runs]
    p99 = [r.p99_ms or 0.0 for r in runs]
    return {
        "rps": median(rps), "rps_min": min(rps), "rps_max": max(rps),
        "p50_ms": median(p50), "p99_ms": median(p99), "p99_min": min(p99), "p99_max": max(p99),
        "errors": sum(r.errors for r in runs), "non2xx": sum(r.non2xx for r in runs),
        "cpu_us_per_req": median(cpu_us) if cpu_us else None,
        "cpu_us_min": min(cpu_us) if cpu_us else None, "cpu_us_max": max(cpu_us) if cpu_us else None,
        "backend_cpu_us_per_req": median(backend_cpu_us) if backend_cpu_us else None,
        "runs": [r.as_dict() for r in runs],
    }


def measure_once(t: Target, duration: float, backend_pid: int | None, log: Callable[[str], None],
                 label: str = "") -> WrkResult:
    """One wrk run against ``t``; appends the result and CPU us/request to ``t``."""
    pids = process_tree(t.pid) if t.pid else []
    c0 = cpu_seconds(pids)
    b0 = cpu_seconds([backend_pid]) if backend_pid else 0.0
    r = run_wrk(t.url, threads=2, connections=64, duration=duration)
    c1 = cpu_seconds(pids)
    b1 = cpu_seconds([backend_pid]) if backend_pid else 0.0
    t.runs.append(r)
    n = max(1, r.requests)
    if pids:
        t.cpu_us.append((c1 - c0) / n * 1e6)
    if backend_pid:
        t.backend_cpu_us.append((b1 - b0) / n * 1e6)
    cpu = f"  cpu {t.cpu_us[-1]:5.1f} us/req" if pids else ""
    log(f"  {label} {t.name:32s} {r.rps:10.0f} req/s  p50 {r.p50_ms:6.2f} ms  "
        f"p99 {r.p99_ms:6.2f} ms  err {r.errors} non2xx {r.non2xx}{cpu}")
    return r


def measure(targets: list[Target], reps: int, duration: float, log: Callable[[str], None],
            backend_pid: int | None = None) -> None:
    """wrk every target ``reps`` times, interleaved; also the CPU time the proxy
    (master + workers) and the backend spent per request -- far less sensitive
    than req/s to other load on a shared 2-core machine."""
    for t in targets:  # warm-up: connections, pools, page cache
        run_wrk(t.url, threads=2, connections=64, duration=1)
    for rep in range(reps):
        for t in targets:
            measure_once(t, duration, backend_pid, log, f"[{rep + 1}/{reps}]")


# ----------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------

def _start(name: str, addrs: list[str], prefix: str) -> Target:
    """Start one throughput configuration by its row name (the table's first column)."""
    p = free_port()

    def gateway(workers: str | None) -> Target:
        conf, port = render_gateway(bench_spec(), {"svc": addrs}, os.path.join(prefix, f"gw{workers or ''}"),
                                    worker_processes=workers)
        runtime = f"NginxRuntime(worker_processes='{workers}')" if workers else "renderer output"
        return start_nginx(name, conf, port, f"{runtime}, access log on")

    def haproxy(threads: int, equivalent: bool, note: str) -> Target:
        hap = HaproxyRunner(haproxy_cfg(addrs, p, threads=threads, equivalent=equivalent)).start()
        return Target(name, f"http://127.0.0.1:{p}/", hap.stop, note=note, pid=hap.pid)

    starters: dict[str, Callable[[], Target]] = {
        "direct (1 backend replica)": lambda: Target(name, f"http://{addrs[0]}/"),
        "generated gateway": lambda: gateway(None),
        "generated gateway, 2 workers": lambda: gateway("2"),
        "naive tutorial nginx": lambda: start_nginx(name, naive_conf(addrs, p), p,
                                                    "nginx defaults: 1 worker, no upstream keepalive, unbuffered log"),
        "naive + worker_processes auto": lambda: start_nginx(name, naive_conf(addrs, p, "auto"), p,
                                                             "Debian-stock style: the naive config with 2 workers"),
        "minimal nginx (ceiling)": lambda: start_nginx(name, minimal_nginx_conf(addrs, p), p,
                                                       "upstream keep-alive only: no log, no added headers, no limits"),
        "HAProxy 2.6 (equivalent)": lambda: haproxy(1, True, "nbthread 1 (= the gateway's workers), roundrobin, http-reuse "
                                                           "always, httplog + id to a file, X-Forwarded-For/-Proto, X-Request-Id"),
        "HAProxy 2.6 (equivalent), 2 threads": lambda: haproxy(2, True, "the same with nbthread 2"),
        "HAProxy 2.6 bare": lambda: haproxy(2, False, "nbthread 2, no log, no header rewriting: HAProxy at its fastest"),
        "HAProxy 2.6 bare, 1 thread": lambda: haproxy(1, False, "nbthread 1, no log, no header rewriting"),
    }
    return starters[name]()


THROUGHPUT_ROWS = ["direct (1 backend replica)", "generated gateway", "naive tutorial nginx", "naive + worker_processes auto",
                   "HAProxy 2.6 (equivalent)", "HAProxy 2.6 (equivalent), 2 threads", "HAProxy 2.6 bare",
                   "generated gateway, 2 workers", "minimal nginx (ceiling)"]
# Under the gateway's CPU limit every proxy gets the same budget: one worker / one thread each.
LIMITED_ROWS = ["generated gateway", "naive tutorial nginx", "HAProxy 2.6 (equivalent)", "HAProxy 2.6 bare, 1 thread",
                "minimal nginx (ceiling)"]


def section_throughput(backend: BackendProcess, reps: int, duration: float, log: Callable[[str], None],
                       cpu_limit: float | None = None) -> dict[str, Any]:
    """wrk against every configuration. ``cpu_limit``: each proxy runs under that CFS quota (in CPUs), the way the
    Docker and Kubernetes targets run the gateway (`gateway.resources.cpu`), so the proxy is the bottleneck."""
    from bench.cpulimit import CpuQuota

    addrs = list(backend.addresses.values())
    prefix = tempfile.mkdtemp(prefix="netopt-bench-")
    with contextlib.ExitStack() as running:
        running.callback(shutil.rmtree, prefix, ignore_errors=True)
        targets: list[Target] = []
        for i, name in enumerate(LIMITED_ROWS if cpu_limit else THROUGHPUT_ROWS):
            targets.append(_start(name, addrs, prefix))
            running.callback(targets[-1].stop)
            if cpu_limit and targets[-1].pid:
                running.enter_context(CpuQuota(f"proxy{i}", cpu_limit)).add(process_tree(targets[-1].pid))
        measure(targets, reps, duration, log, backend.pid)
        with open(os.path.join(prefix, "gw", "logs", "access.log"), "rb") as f:
            logged = sum(1 for _ in f)
        return {"targets": {t.name: {**summarize(t.runs, t.cpu_us, t.backend_cpu_us), "note": t.note}
                            for t in targets},
                "gateway_conf": next(t.conf for t in targets if t.name == "generated gateway"),
                "gateway_access_log_lines": logged, "cpu_limit": cpu_limit}


def section_knobs(backend: BackendProcess, reps: int, duration: float, log: Callable[[str], None]) -> dict[str, Any]:
    addrs = list(backend.addresses.values())
    spec = bench_spec()
    targets: list[Target] = []
    prefix = tempfile.mkdtemp(prefix="netopt-knobs-")
    notes: dict[str, str] = {}
    try:
        conf, port = render_gateway(spec, {"svc": addrs}, os.path.join(prefix, "base"))
        targets.append(start_nginx("generated (baseline)", conf, port))
        for i, (name, desc, edit) in enumerate(KNOBS):
            c, port = render_gateway(spec, {"svc": addrs}, os.path.join(prefix, f"k{i}"))
            targets.append(start_nginx(name, edit(c), port))
            notes[name] = desc
        # Paired design: each variant run right after (or before) a baseline run
        # and compared with it, so slow drifts of the machine's other load cancel.
        base_t = targets[0]
        for t in targets:
            run_wrk(t.url, threads=2, connections=64, duration=1)  # warm-up
        ratios: dict[str, list[tuple[float, float]]] = {t.name: [] for t in targets[1:]}
        for rep in range(reps):
            for t in targets[1:]:
                order = (base_t, t) if rep % 2 == 0 else (t, base_t)
                for x in order:
                    measure_once(x, duration, backend.pid, log, f"[{rep + 1}/{reps}]")
                ratios[t.name].append((t.runs[-1].rps / base_t.runs[-1].rps, t.cpu_us[-1] / base_t.cpu_us[-1]))
        out = {t.name: {**summarize(t.runs, t.cpu_us, t.backend_cpu_us), "change": notes.get(t.name, "renderer output")}
               for t in targets}
        out[base_t.name]["rps_vs_baseline"] = out[base_t.name]["cpu_vs_baseline"] = 1.0
        for name, pairs in ratios.items():
            rr, cr = [p[0] for p in pairs], [p[1] for p in pairs]
            out[name].update(rps_vs_baseline=median(rr), rps_vs_baseline_min=min(rr), rps_vs_baseline_max=max(rr),
                             cpu_vs_baseline=median(cr), cpu_vs_baseline_min=min(cr), cpu_vs_baseline_max=max(cr))
        return {"variants": out}
    finally:
        for t in targets:
            t.stop()
        shutil.rmtree(prefix, ignore_errors=True)


SKEW_TIMES_MS = [10.0, 10.0, 10.0, 50.0]  # one replica 5x slower
SKEW_CONCURRENCY = 8                      # = max_concurrency declared in the spec
SKEW_RATE = 1000.0                        # offered load, req/s (Poisson)


def skew_spec(algorithm: str, rate: float = SKEW_RATE) -> Any:
    """One route to 4 replicas, one 5x slower; the declared peak is the offered load (latency_optimal splits by it)."""
    return make_spec(
        {"svc": {"replicas": len(SKEW_TIMES_MS), "response_time_ms": SKEW_TIMES_MS,
                 "max_concurrency": SKEW_CONCURRENCY}},
        [{"name": "main", "match": {"path": "/"}, "to": {"svc": 1}}],
        gateway={"algorithm": algorithm, "keepalive": {"connections": 64, "timeout_s": 30}},
        environment="bench-skew", traffic={"main": rate},
    )


# (label, algorithm rendered, edit of the rendered text or None)
SKEW_VARIANTS: list[tuple[str, str, Callable[[str], str] | None]] = [
    ("round_robin", "round_robin", None),
    ("least_conn", "least_conn", None),
    ("latency_weighted", "latency_weighted", None),
    ("latency_optimal", "latency_optimal", None),
    ("least_conn, no upstream zone", "least_conn", _sub(r"^\s+zone \S+ \S+;\n", "")),
    ("least_conn, no max_conns", "least_conn", _sub(r" max_conns=\d+", "")),
    ("round_robin, no max_conns", "round_robin", _sub(r" max_conns=\d+", "")),
]


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _flushed_size(target: Target, path: str) -> int:
    """Make nginx write its buffered access log (SIGUSR1) and return the file size."""
    import signal

    if target.pid:
        os.kill(target.pid, signal.SIGUSR1)
        time.sleep(0.3)
    return os.path.getsize(path) if os.path.exists(path) else 0


def _upstream_times(target: Target, path: str, start: int) -> dict[str, list[float]]:
    """upstream address -> $upstream_response_time (ms) of the log lines written since ``start``."""
    _flushed_size(target, path)
    out: dict[str, list[float]] = {}
    with open(path, "rb") as f:
        f.seek(start)
        for entry in parse_access_log(f.read().decode(errors="replace")):
            urt = entry.fields["upstream_response_time"]
            if entry.upstream and "," not in entry.upstream and urt not in ("", "-"):
                out.setdefault(entry.upstream, []).append(float(urt) * 1000)
    return out


def section_skew(reps: int, duration: float, rate: float, log: Callable[[str], None]) -> dict[str, Any]:
    from components.plan.build import build_plan
    from components.plan.capacity import compute_capacity
    from components.plan.deployment import deployment_of

    algos = [v[0] for v in SKEW_VARIANTS]
    cfgs = [ReplicaConfig(f"svc-{i}", latency_ms=t, concurrency=SKEW_CONCURRENCY, latency_dist="exp")
            for i, t in enumerate(SKEW_TIMES_MS)]
    backend = BackendProcess(cfgs).start()
    prefix = tempfile.mkdtemp(prefix="netopt-skew-")
    gws: dict[str, tuple[Target, Any]] = {}
    results: dict[str, list[dict[str, Any]]] = {a: [] for a in algos}
    logs: dict[str, str] = {}
    model: dict[str, Any] = {}
    try:
        addrs = [backend.addresses[c.name] for c in cfgs]
        for i, (a, algorithm, edit) in enumerate(SKEW_VARIANTS):
            spec = skew_spec(algorithm, rate)
            conf, port = render_gateway(spec, {"svc": addrs}, os.path.join(prefix, f"v{i}"))
            gws[a] = (start_nginx(a, edit(conf) if edit else conf, port), spec)
            logs[a] = os.path.join(prefix, f"v{i}", "logs", "access.log")
            if edit is None:
                cap = compute_capacity(build_plan(spec, deployment_of(spec)))
                model[a] = [{"replica": f"{r.workload}-{r.replica}", "offered_rps": r.offered_rps,
                             "utilization": r.utilization, "mean_latency_ms": r.mean_latency_ms,
                             "overloaded": r.overloaded} for r in cap.replicas]
        for rep in range(reps):
            for a in algos:
                target, _ = gws[a]
                port = int(target.url.rsplit(":", 1)[1].strip("/"))
                run(fixed_rate("127.0.0.1", port, rate / 4, 0.5, RequestSpec(path="/warm")))
                backend.reset()
                log_start = _flushed_size(target, logs[a])
                t0 = time.monotonic()
                samples = run(fixed_rate("127.0.0.1", port, rate, duration, RequestSpec(path="/skew"),
                                         max_conns=512, poisson=True, seed=rep + 1, timeout=10))
                wall = time.monotonic() - t0
                stats = backend.stats()
                urt = _upstream_times(target, logs[a], log_start)
                ok = [s for s in samples if s.status == 200]
                lat = [s.latency * 1000 for s in ok]
                per = {}
                for c in cfgs:
                    mine = [s.latency * 1000 for s in ok if s.replica == c.name]
                    st = stats[c.name]
                    per[c.name] = {
                        "requests": st["requests"], "share": st["requests"] / max(1, len(ok)),
                        "rps": st["requests"] / duration,
                        "utilization": st["busy_s"] / (SKEW_CONCURRENCY * duration),
                        "mean_latency_ms": sum(mine) / len(mine) if mine else None,
                        "p99_ms": percentile(mine, 99) if mine else None,
                        "max_inflight": st["max_inflight"],
                        "upstream_mean_ms": _mean(urt.get(backend.addresses[c.name], [])),
                    }
                kinds: dict[str, int] = {}
                for x in samples:
                    if x.status != 200:
                        k = str(x.status) if x.status else (x.error or "error").split(":")[0]
                        kinds[k] = kinds.get(k, 0) + 1
                row = {"p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
                       "mean_ms": sum(lat) / len(lat) if lat else None,
                       "errors": len(samples) - len(ok), "error_kinds": kinds, "sent": len(samples),
                       "wall_s": wall, "replicas": per}
                results[a].append(row)
                log(f"  [{rep + 1}/{reps}] {a:34s} p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms  "
                    f"errors {row['errors']} {kinds or ''}  shares "
                    + " ".join(f"{per[c.name]['share']:.3f}" for c in cfgs))
        summary = {}
        for a in algos:
            rows = results[a]
            summary[a] = {
                "p50_ms": median([r["p50_ms"] for r in rows]),
                "p99_ms": median([r["p99_ms"] for r in rows]),
                "p99_min": min(r["p99_ms"] for r in rows), "p99_max": max(r["p99_ms"] for r in rows),
                "errors": sum(r["errors"] for r in rows), "sent": sum(r["sent"] for r in rows),
                "error_kinds": {k: sum(r["error_kinds"].get(k, 0) for r in rows)
                                for k in sorted({k for r in rows for k in r["error_kinds"]})},
                "replicas": {c.name: {k: median([r["replicas"][c.name][k] for r in rows
                                                 if r["replicas"][c.name][k] is not None] or [float("nan")])
                                      for k in ("share", "rps", "utilization", "mean_latency_ms", "p99_ms",
                                                "max_inflight", "upstream_mean_ms")}
                             for c in cfgs},
            }
        return {"rate": rate, "duration": duration, "times_ms": SKEW_TIMES_MS,
                "concurrency": SKEW_CONCURRENCY, "summary": summary, "model": model, "runs": results}
    finally:
        for t, _ in gws.values():
            t.stop()
        backend.stop()
        shutil.rmtree(prefix, ignore_errors=True)


# ----------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------

def _f(x: Any, nd: int = 2) -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "n/a"
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    return str(x)


_RATIOS = [
    ("generated gateway", "naive tutorial nginx", "naive (1 worker)"),
    ("generated gateway", "naive + worker_processes auto", "naive (2 workers)"),
    ("generated gateway", "HAProxy 2.6 (equivalent)", "HAProxy equivalent (1 thread)"),
    ("generated gateway", "HAProxy 2.6 (equivalent), 2 threads", "HAProxy equivalent (2 threads)"),
    ("generated gateway", "HAProxy 2.6 bare", "HAProxy bare (2 threads, no log)"),
    ("generated gateway", "HAProxy 2.6 bare, 1 thread", "HAProxy bare (1 thread, no log)"),
    ("generated gateway", "direct (1 backend replica)", "direct"),
    ("minimal nginx (ceiling)", "HAProxy 2.6 (equivalent)", "HAProxy equivalent (1 thread)"),
    ("minimal nginx (ceiling)", "HAProxy 2.6 bare", "HAProxy bare (2 threads, no log)"),
    ("generated gateway, 2 workers", "naive + worker_processes auto", "naive (2 workers)"),
    ("generated gateway, 2 workers", "HAProxy 2.6 (equivalent), 2 threads", "HAProxy equivalent (2 threads)"),
]


def _throughput_tables(t: dict[str, Any]) -> list[str]:
    """The per-configuration table and the ratios between the configurations present."""
    lines = ["| configuration | req/s (median) | req/s min..max | p50 ms | p99 ms (min..max) "
             "| proxy CPU us/req (min..max) | backend CPU us/req | errors | non-2xx | notes |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in t.items():
        cpu = (f"{r['cpu_us_per_req']:.1f} ({r['cpu_us_min']:.1f}..{r['cpu_us_max']:.1f})"
               if r.get("cpu_us_per_req") is not None else "-")
        lines.append(f"| {name} | {r['rps']:,.0f} | {r['rps_min']:,.0f}..{r['rps_max']:,.0f} | {r['p50_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} ({r['p99_min']:.2f}..{r['p99_max']:.2f}) | {cpu} | "
                     f"{_f(r.get('backend_cpu_us_per_req'), 1)} | {r['errors']} | {r['non2xx']} | {r['note']} |")
    lines += ["", "| ratio | req/s | p99 | CPU efficiency (other's CPU/req over this one's) |", "|---|---:|---:|---:|"]
    for mine, other, label in _RATIOS:
        if mine not in t or other not in t:
            continue
        m, o = t[mine], t[other]
        eff = f"{o['cpu_us_per_req'] / m['cpu_us_per_req']:.2f}x" if o.get("cpu_us_per_req") else "-"
        short = mine.replace("generated ", "").replace(" (ceiling)", "")
        lines.append(f"| {short} / {label} | {m['rps'] / o['rps']:.2f}x | {m['p99_ms'] / o['p99_ms']:.2f}x | {eff} |")
    return lines


def write_report(data: dict[str, Any], out_dir: str) -> str:
    nice_note = f"; run at nice -{abs(data['nice'])}" if data.get("nice") else ""
    lines = ["# netopt gateway benchmark", "",
             f"Generated by `{data['command']}` on {data['when']} ({data['host']}).",
             f"{data['reps']} runs per throughput/knob point and {data['skew_reps']} per skew point, interleaved; "
             f"median with min..max. Loopback only; wrk -t2 -c64, {data['duration']:g} s per run, tiny responses. "
             f"Backend: testbed/backend.py ({data['backend_loop']}), 2 replicas in one process. "
             f"Load average before the run: {' '.join(data['loadavg_before'])}"
             f"{nice_note} "
             "(other jobs on this 2-core machine move req/s by +-20%; compare medians, and CPU us/req).", ""]
    for name, trace in data.get("crashed", {}).items():
        lines += [f"**Section {name} crashed**: `{trace.strip().splitlines()[-1]}` (traceback in results.json).", ""]
    tp = data.get("throughput")
    if tp:
        lines += ["## Throughput and latency", "",
                  "Proxy CPU = CPU time of the proxy's processes (master + workers / threads) per request, "
                  "from /proc: on a shared 2-core machine it is far steadier than req/s.", "",
                  *_throughput_tables(tp["targets"]),
                  "", f"Generated gateway access log lines written during the run: {tp['gateway_access_log_lines']:,}.", ""]
    lim = data.get("limited")
    if lim:
        lines += [f"## Throughput at the gateway's CPU limit ({lim['cpu_limit']:g} CPU)", "",
                  f"Each proxy in its own cgroup with a CFS quota of {lim['cpu_limit']:g} CPU per 100 ms period -- what "
                  "the Docker target (`--cpus`) and the Kubernetes target (limits) give the gateway from "
                  "`gateway.resources.cpu`. The proxy is then the bottleneck, as in production, and wrk and the backends "
                  "have the rest of the machine. p99 includes the quota's throttling stalls (up to one period).", "",
                  *_throughput_tables(lim["targets"]), ""]
    kn = data.get("knobs")
    if kn:
        v = kn["variants"]
        lines += ["## What each nginx knob buys", "",
                  "The generated config with one knob changed at a time (rendered, then that one line edited). "
                  "Paired runs: each variant run is compared with a baseline run right next to it; the ratios are "
                  "the median (min..max) over the pairs. req/s ratio < 1 or CPU ratio > 1 means the renderer's "
                  "setting is worth that much; a range that straddles 1 is noise.", "",
                  "| variant | change | req/s (median) | req/s vs baseline (min..max) | nginx CPU us/req "
                  "| CPU/req vs baseline (min..max) | p50 ms | p99 ms | errors |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, r in v.items():
            rr = (f"{r['rps_vs_baseline']:.2f} ({r['rps_vs_baseline_min']:.2f}..{r['rps_vs_baseline_max']:.2f})"
                  if "rps_vs_baseline_min" in r else "1")
            cr = (f"{r['cpu_vs_baseline']:.2f} ({r['cpu_vs_baseline_min']:.2f}..{r['cpu_vs_baseline_max']:.2f})"
                  if "cpu_vs_baseline_min" in r else "1")
            lines.append(f"| {name} | {r['change']} | {r['rps']:,.0f} | {rr} | {r['cpu_us_per_req']:.1f} | {cr} | "
                         f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors'] + r['non2xx']} |")
        lines.append("")
    sk = data.get("skew")
    if sk:
        s = sk["summary"]
        rr = s["round_robin"]["p99_ms"]
        lines += ["## Skewed backends", "",
                  f"Replica service times {sk['times_ms']} ms (exponential), {sk['concurrency']} requests in service per "
                  f"replica (= declared max_concurrency), Poisson arrivals at a fixed {sk['rate']:g} req/s for "
                  f"{sk['duration']:g} s (open loop: latency counted from each request's due time).", "",
                  "| variant | p50 ms | p99 ms (min..max) | p99 / round_robin | errors / sent | shares (svc-0..3) | utilization (svc-0..3) |",
                  "|---|---:|---:|---:|---:|---|---|"]
        for a, r in s.items():
            shares = " / ".join(f"{x['share']:.3f}" for x in r["replicas"].values())
            utils = " / ".join(f"{x['utilization']:.2f}" for x in r["replicas"].values())
            kinds = ", ".join(f"{k}: {n}" for k, n in r.get("error_kinds", {}).items())
            lines.append(f"| {a} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} ({r['p99_min']:.2f}..{r['p99_max']:.2f}) | "
                         f"{r['p99_ms'] / rr:.2f} | {r['errors']} / {r['sent']}{f' ({kinds})' if kinds else ''} | {shares} | {utils} |")
        lines += ["", "### Capacity model vs measurement", "",
                  "components.plan.capacity (M/M/c per replica) at the same offered load, against the measured "
                  "per-replica request rate, utilization (busy time / (c x T)) and mean latency (client-side, "
                  "includes the gateway).", "",
                  "| algorithm | replica | model rps | measured rps | model util | measured util | util error "
                  "| model mean ms | measured at nginx (upstream_response_time) ms | error | measured at client ms | error |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for a, rows in sk["model"].items():
            for m in rows:
                meas = s[a]["replicas"][m["replica"]]
                ue = meas["utilization"] - m["utilization"]
                def err(x: Any, model: float | None = m["mean_latency_ms"]) -> str:
                    if model is None or x is None or x != x:
                        return "n/a"
                    return f"{(x - model) / model:+.0%}"

                lines.append(f"| {a} | {m['replica']} | {m['offered_rps']:.0f} | {meas['rps']:.0f} | {m['utilization']:.2f} | "
                             f"{meas['utilization']:.2f} | {ue:+.2f} | {_f(m['mean_latency_ms'])}{' (overloaded)' if m['overloaded'] else ''} | "
                             f"{_f(meas.get('upstream_mean_ms'))} | {err(meas.get('upstream_mean_ms'))} | "
                             f"{_f(meas['mean_latency_ms'])} | {err(meas['mean_latency_ms'])} |")
        lines.append("")
    lines += ["![summary](summary.png)", ""]
    path = os.path.join(out_dir, "results.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def write_chart(data: dict[str, Any], out_dir: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        return None
    panels = [k for k in ("throughput", "limited", "knobs", "skew") if data.get(k)]
    if not panels:  # every section crashed: nothing to draw (the crash is reported)
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 5.5))
    if len(panels) == 1:
        axes = [axes]
    palette = {"direct": "#999999", "generated": "#2a9d5c", "minimal": "#8cc9a5", "naive": "#d1495b", "HAProxy": "#3b6fb6"}

    def color(name: str) -> str:
        return next((c for k, c in palette.items() if name.startswith(k)), "#777777")

    for ax, key in zip(axes, panels, strict=False):
        if key in ("throughput", "limited"):
            t = data[key]["targets"]
            names = list(t)
            vals = [t[n]["rps"] for n in names]
            err = [[t[n]["rps"] - t[n]["rps_min"] for n in names], [t[n]["rps_max"] - t[n]["rps"] for n in names]]
            y = range(len(names))
            ax.barh(y, vals, xerr=err, color=[color(n) for n in names], capsize=3)
            ax.set_yticks(list(y), names, fontsize=8)
            ax.invert_yaxis()
            ax.set_xlabel("req/s (median, min..max)")
            ax.set_title("Throughput, wrk -t2 -c64, tiny responses" if key == "throughput"
                         else f"Each proxy limited to {data[key]['cpu_limit']:g} CPU (gateway.resources.cpu)")
            for i, n in enumerate(names):
                ax.annotate(f" p99 {t[n]['p99_ms']:.1f} ms", (t[n]["rps_max"], i), va="center", fontsize=7)
            ax.set_xlim(0, max(t[n]["rps_max"] for n in names) * 1.3)
        elif key == "knobs":
            v = data["knobs"]["variants"]
            names = [n for n in v if n != "generated (baseline)"]
            vals = [v[n]["rps_vs_baseline"] for n in names]
            lo = [v[n]["rps_vs_baseline"] - v[n].get("rps_vs_baseline_min", v[n]["rps_vs_baseline"]) for n in names]
            hi = [v[n].get("rps_vs_baseline_max", v[n]["rps_vs_baseline"]) - v[n]["rps_vs_baseline"] for n in names]
            y = range(len(names))
            ax.barh(y, [x - 1 for x in vals], left=1, xerr=[lo, hi], capsize=3,
                    color=["#2a9d5c" if x >= 1 else "#d1495b" for x in vals])
            ax.axvline(1.0, color="k", lw=0.8)
            ax.set_yticks(list(y), names, fontsize=8)
            ax.invert_yaxis()
            ax.set_xlabel("req/s of the variant / req/s of the generated config (paired runs)")
            ax.set_title("One knob changed at a time (red: the generated setting wins)")
        else:
            s = data["skew"]["summary"]
            names = list(s)
            ys = list(range(len(names)))
            ax.barh([i - 0.2 for i in ys], [s[n]["p50_ms"] for n in names], 0.4, label="p50", color="#8fb8de")
            ax.barh([i + 0.2 for i in ys], [s[n]["p99_ms"] for n in names], 0.4, label="p99", color="#3b6fb6",
                    xerr=[[s[n]["p99_ms"] - s[n]["p99_min"] for n in names],
                          [s[n]["p99_max"] - s[n]["p99_ms"] for n in names]], capsize=3)
            ax.set_xscale("log")
            ax.set_yticks(ys, names, fontsize=8)
            ax.invert_yaxis()
            ax.set_xlabel("latency ms (log scale)")
            ax.set_title(f"One replica 5x slower, {data['skew']['rate']:g} req/s open loop")
            for i, n in enumerate(names):
                ax.annotate(f" {s[n]['p99_ms']:.0f} ms", (s[n]["p99_max"], i + 0.2), va="center", fontsize=7)
            ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path = os.path.join(out_dir, "summary.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------

def _loadavg() -> list[str]:
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5, help="runs per throughput/knob point (default 5)")
    ap.add_argument("--skew-reps", type=int, default=3, help="runs per skew point (default 3)")
    ap.add_argument("--duration", type=float, default=5, help="seconds per wrk run (default 5)")
    ap.add_argument("--knob-duration", type=float, default=2, help="seconds per knob run (default 2)")
    ap.add_argument("--knob-reps", type=int, default=3, help="baseline/variant pairs per knob (default 3)")
    ap.add_argument("--nice", type=int, default=0,
                    help="run everything at nice -N (root; steadier figures on a shared machine)")
    ap.add_argument("--skew-duration", type=float, default=6, help="seconds per skew run (default 6)")
    ap.add_argument("--skew-rate", type=float, default=SKEW_RATE, help="offered req/s in the skew section")
    ap.add_argument("--sections", default="throughput,limited,knobs,skew")
    ap.add_argument("--quick", action="store_true", help="1 run per point, short runs (smoke test)")
    ap.add_argument("--out", default=RESULTS)
    ap.add_argument("--replot", metavar="RAW_JSON", help="only rewrite results.md and summary.png from a raw run")
    a = ap.parse_args(argv)
    if a.replot:
        with open(a.replot) as f:
            raw = json.load(f)
        print(write_report(raw, a.out), write_chart(raw, a.out))
        return 0
    if a.quick:
        a.reps, a.skew_reps, a.knob_reps, a.duration, a.knob_duration, a.skew_duration = 1, 1, 1, 2, 1, 3
    if a.nice:
        os.setpriority(os.PRIO_PROCESS, 0, -abs(a.nice))  # children inherit it
    for tool in ("wrk", "nginx", "haproxy"):
        if locate(tool) is None:
            print(f"bench: {tool} is not installed (apt-get install {tool})", file=sys.stderr)
            return 2
    os.makedirs(os.path.join(a.out, "raw"), exist_ok=True)
    sections = set(a.sections.split(","))
    t_start = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - t_start:6.1f}s] {msg}", flush=True)

    backend = BackendProcess([ReplicaConfig("svc-0"), ReplicaConfig("svc-1")]).start()
    data: dict[str, Any] = {
        "command": "python bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "host": f"{platform.node()}, {os.cpu_count()} CPUs, {platform.platform()}, "
                + subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip().replace("nginx version: ", ""),
        "reps": a.reps, "skew_reps": a.skew_reps, "duration": a.duration, "nice": a.nice,
        "loadavg_before": _loadavg(),
        "backend_loop": BACKEND_LOOP,
    }
    crashed: dict[str, str] = {}

    def section(name: str, run: Callable[[], dict[str, Any] | None]) -> None:
        """Run one section; a crash is recorded (and fails the run at the end) instead of losing the other sections."""
        try:
            result = run()
        except Exception:
            crashed[name] = traceback.format_exc()
            log(f"{name}: CRASHED\n{crashed[name]}")
            return
        if result is not None:
            data[name] = result

    def limited() -> dict[str, Any] | None:
        from bench.cpulimit import available

        cpus = bench_spec().gateway.resources.cpu
        why_not = available()
        if why_not:
            log(f"limited: skipped, {why_not}")
            return None
        log(f"limited: each proxy under a {cpus:g}-CPU quota (gateway.resources.cpu)")
        return section_throughput(backend, a.reps, a.duration, log, cpu_limit=cpus)

    try:
        if "throughput" in sections:
            log("throughput: direct, generated gateway, naive nginx, HAProxy")
            section("throughput", lambda: section_throughput(backend, a.reps, a.duration, log))
        if "limited" in sections:
            section("limited", limited)
        if "knobs" in sections:
            log("knobs: generated config with one knob changed at a time")
            section("knobs", lambda: section_knobs(backend, a.knob_reps, a.knob_duration, log))
    finally:
        backend.stop()
    if "skew" in sections:
        log("skew: one replica 5x slower; round_robin vs least_conn vs latency_weighted vs latency_optimal")
        section("skew", lambda: section_skew(a.skew_reps, a.skew_duration, a.skew_rate, log))
    if crashed:
        data["crashed"] = crashed
    data["wall_s"] = time.monotonic() - t_start
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(a.out, "raw", f"run-{stamp}.json"), "w") as f:
        json.dump(data, f, indent=1, default=str)
    slim = json.loads(json.dumps(data, default=str))
    for sec in ("throughput", "limited", "knobs"):
        for row in (slim.get(sec, {}).get("targets") or slim.get(sec, {}).get("variants") or {}).values():
            for r in row.get("runs", []):
                r.pop("raw", None)
    for sec in ("throughput", "limited"):
        slim.get(sec, {}).pop("gateway_conf", None)
    if "skew" in slim:
        slim["skew"].pop("runs", None)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(slim, f, indent=1)
    md = write_report(data, a.out)
    png = write_chart(data, a.out)
    log(f"wrote {md}" + (f" and {png}" if png else "") + f" in {data['wall_s']:.0f} s")
    if crashed:
        print(f"bench/run.py: section(s) {', '.join(crashed)} crashed (tracebacks above and in results.json 'crashed')", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
