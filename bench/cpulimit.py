"""Run processes under a CPU limit: a CFS quota, the mechanism behind Docker's ``--cpus`` and Kubernetes' CPU limits.

>>> with CpuQuota("gateway", cpus=0.5) as quota:
...     quota.add(process_tree(pid))   # nginx master + workers, with their threads

Needs root and the cgroup ``cpu`` controller: cgroup v1 (``/sys/fs/cgroup/cpu``) or v2 (``cpu.max``).
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

__all__ = ["CpuQuota", "available"]

V1 = "/sys/fs/cgroup/cpu"
V2 = "/sys/fs/cgroup"
PERIOD_US = 100_000  # Docker's and Kubernetes' default CFS period


def _v2() -> bool:
    try:
        with open(os.path.join(V2, "cgroup.subtree_control")) as f:
            return "cpu" in f.read().split()
    except OSError:
        return False


def available() -> str | None:
    """None when quotas can be set here, else why not."""
    if os.geteuid() != 0:
        return "CPU quotas need root"
    if _v2() or os.path.exists(os.path.join(V1, "cpu.cfs_quota_us")):
        return None
    return "no cgroup cpu controller (v1 /sys/fs/cgroup/cpu or v2 cpu.max)"


class CpuQuota:
    def __init__(self, name: str, cpus: float):
        self.v2 = _v2()
        self.dir = os.path.join(V2 if self.v2 else V1, f"netopt-bench-{name}-{os.getpid()}")
        self.cpus = cpus

    def __enter__(self) -> CpuQuota:
        os.makedirs(self.dir, exist_ok=True)
        quota = int(self.cpus * PERIOD_US)
        if self.v2:
            self._write("cpu.max", f"{quota} {PERIOD_US}")
        else:
            self._write("cpu.cfs_period_us", str(PERIOD_US))
            self._write("cpu.cfs_quota_us", str(quota))
        return self

    def add(self, pids: Iterable[int]) -> int:
        """Move the processes with all their threads; children they fork later (a reload's workers) inherit it.

        A process or thread may exit between being listed and being moved (an nginx worker after a reload, a
        short-lived helper thread): the kernel then refuses the write (ESRCH), and it is skipped, since there is
        nothing left to limit. On cgroup v1 a thread started by a not yet moved thread lands outside, so each
        process's thread list is read again until every thread in it has been moved. Returns how many processes
        or threads were moved.
        """
        moved = 0
        for p in pids:
            if self.v2:
                moved += self._move("cgroup.procs", p)
                continue
            done: set[str] = set()
            while True:
                try:
                    tids = set(os.listdir(f"/proc/{p}/task")) - done
                except FileNotFoundError:  # the process exited
                    break
                if not tids:
                    break
                for tid in tids:
                    moved += self._move("tasks", int(tid))
                done |= tids
        return moved

    def _move(self, members: str, pid: int) -> int:
        """1 when `pid` was moved into the group, 0 when it had exited meanwhile."""
        try:
            self._write(members, str(pid))
        except (ProcessLookupError, FileNotFoundError):
            return 0
        return 1

    def __exit__(self, *exc: Any) -> None:
        """Give the processes back to the parent group (they may outlive the quota), then drop the group."""
        parent = os.path.dirname(self.dir)
        members = "cgroup.procs" if self.v2 else "tasks"
        try:
            with open(os.path.join(self.dir, members)) as f:
                for member in f.read().split():
                    try:
                        with open(os.path.join(parent, members), "w") as out:
                            out.write(member)
                    except OSError:
                        pass  # exited meanwhile
            os.rmdir(self.dir)
        except OSError:
            pass

    def _write(self, name: str, value: str) -> None:
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(value)
