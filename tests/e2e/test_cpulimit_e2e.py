"""bench/cpulimit.py on the real cgroup filesystem (root): processes and threads that exit while being moved are
skipped, not a crash (issue 19: `bench/run.py --sections limited` died with ProcessLookupError)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bench.cpulimit import CpuQuota, available

# Root only (cgroup writes), so it runs in `make e2e`, the stage that runs as root, not in `make test`.
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(available() is not None, reason=f"bench/cpulimit.py: {available()}")]

# A child that starts a thread, prints its thread id, lets the thread end, then waits to be stopped.
_CHILD = ("import sys, threading, time\n"
          "t = threading.Thread(target=lambda: print(threading.get_native_id(), flush=True)); t.start(); t.join()\n"
          "time.sleep(60)\n")


@pytest.fixture
def child() -> Iterator[tuple[subprocess.Popen[str], int]]:
    process = subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    exited_thread = int(process.stdout.readline())
    try:
        yield process, exited_thread
    finally:
        process.kill()
        process.wait()


def _members(quota: CpuQuota) -> set[int]:
    with open(os.path.join(quota.dir, "cgroup.procs" if quota.v2 else "tasks")) as f:
        return {int(x) for x in f.read().split()}


def test_a_thread_that_exited_after_listing_is_skipped(child: tuple[subprocess.Popen[str], int], monkeypatch: pytest.MonkeyPatch) -> None:
    process, exited_thread = child
    real_listdir = os.listdir

    def listing_with_an_exited_thread(path: str) -> list[str]:
        """The race of issue 19, made certain: the listing still names a thread that has exited since."""
        names = real_listdir(path)
        return [*names, str(exited_thread)] if path == f"/proc/{process.pid}/task" else names

    monkeypatch.setattr(os, "listdir", listing_with_an_exited_thread)
    with CpuQuota("test-exited-thread", 0.5) as quota:
        quota.add([process.pid])
        assert process.pid in _members(quota)
        assert exited_thread not in _members(quota)


def test_a_process_that_exited_is_skipped(child: tuple[subprocess.Popen[str], int]) -> None:
    process, _ = child
    gone = subprocess.Popen(["true"])
    gone.wait()  # exited and reaped: its pid names nothing
    with CpuQuota("test-exited-process", 0.5) as quota:
        assert quota.add([gone.pid, process.pid]) >= 1
        assert process.pid in _members(quota)
    assert not os.path.exists(quota.dir)  # the group is removed once its members are given back
