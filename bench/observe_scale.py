"""`make observe` at scale: 1,000,000 access-log lines of the dev stack, one streaming pass, time, CPU and memory.

Writes the synthetic log (testbed/access_log_gen.py: every schema field, ~490 bytes a line) to a temporary file
first (not timed), then times `python -m offline.observe` on it end to end in a child process (start-up, stack
load, the pass, the report), and reads the child's peak RSS. The machine's load average is printed alongside,
since the machine is shared. Target: ≤ 10 s on the project's 2-core VM.

    .venv/bin/python bench/observe_scale.py [--lines 1000000] [--stack dev] [--repeat 3] [--nice 10] [--calls]

`--calls`: the log mixes the gateway's lines with the service proxies' lines of the calls each request makes
(`synthetic_traffic`), `--lines` lines in all, as `docker logs` of every proxy piped together would give.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.plan.addressing import docker_address_map  # noqa: E402
from components.resources.pulumi_config import namespace_values  # noqa: E402
from components.spec.validation import parse_spec  # noqa: E402
from offline.stack_config import cli_config, stack_file  # noqa: E402
from testbed.access_log_gen import synthetic_lines, synthetic_traffic  # noqa: E402

TIMES_MS = {("web", 0): 25.0, ("api", 0): 80.0, ("api-canary", 0): 45.0, ("auth", 0): 30.0, ("static", 0): 2.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--nice", type=int, default=0, help="time observe at nice -N, as bench/run.py (root; steadier on a shared machine)")
    parser.add_argument("--calls", action="store_true", help="the service proxies' lines too, mixed with the gateway's")
    args = parser.parse_args()
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, -abs(args.nice))
    spec = parse_spec(namespace_values(cli_config(stack_file(args.stack))))
    with tempfile.TemporaryDirectory(prefix="netopt-observe-bench-") as tmp:
        log = Path(tmp) / "access.log"
        addresses = docker_address_map(spec)
        lines = (itertools.islice((line for _, line in synthetic_traffic(spec, addresses, args.lines, 2000.0, TIMES_MS)), args.lines)
                 if args.calls else synthetic_lines(spec, addresses, args.lines, 2000.0, TIMES_MS))
        with log.open("w") as out:
            for line in lines:
                out.write(line + "\n")
        size_mb = log.stat().st_size / 1e6
        what = "gateway and service-proxy lines" if args.calls else "gateway lines"
        print(f"log: {args.lines} lines ({what}), {size_mb:.0f} MB; stack {args.stack}; cpus {os.cpu_count()}")
        for run in range(1, args.repeat + 1):
            load = os.getloadavg()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "offline.observe", "--stack", args.stack, "--log", str(log), "--format", "json"],
                                  cwd=ROOT, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - start
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            print(f"run {run}: {wall:.2f} s wall, {cpu:.2f} s CPU ({args.lines / wall:,.0f} lines/s wall), "
                  f"peak RSS {after.ru_maxrss / 1024:.0f} MB (max over runs), load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
