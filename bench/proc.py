"""What the benchmarks read from /proc: CPU time of process trees (nanoseconds), and the load average.

CPU time comes from `/proc/<pid>/task/<tid>/schedstat` (time on CPU in ns, every thread), not from
`/proc/<pid>/stat` (clock ticks of 10 ms): a proxy spends ~30 µs a request, so a 10 s run at 1,000 req/s is 0.3 s of
CPU, 30 ticks — schedstat measures it to the nanosecond. Runs on a shared machine are only as good as their load:
every figure is recorded with the 1-minute load average before and after its run.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterable

__all__ = ["CpuMeter", "cpu_ns", "load1"]


def cpu_ns(pids: Iterable[int]) -> int:
    """Time on CPU of every thread of the processes, in ns (a process that exited counts 0)."""
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total


def load1() -> float:
    """The 1-minute load average."""
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


class CpuMeter:
    """CPU seconds each named group of processes spent between `start()` and `stop()`, the wall time, and the load
    average at both ends. A group is a list of PIDs (`process_tree(nginx_pid)`, or `[os.getpid()]` for the load client
    alone: its tree would include the proxies and backends it started; `bench.run.process_tree` gives a tree)."""

    def __init__(self, groups: dict[str, list[int]]):
        self.groups = groups
        self.before: dict[str, int] = {}
        self.cpu_s: dict[str, float] = {}
        self.wall_s = 0.0
        self.load: tuple[float, float] = (0.0, 0.0)
        self._t0 = 0.0

    def start(self) -> CpuMeter:
        self.before = {name: cpu_ns(pids) for name, pids in self.groups.items()}
        self.load = (load1(), 0.0)
        self._t0 = time.monotonic()
        return self

    def stop(self) -> CpuMeter:
        self.wall_s = time.monotonic() - self._t0
        self.cpu_s = {name: (cpu_ns(pids) - self.before[name]) / 1e9 for name, pids in self.groups.items()}
        self.load = (self.load[0], load1())
        return self
