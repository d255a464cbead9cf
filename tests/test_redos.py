"""components/spec/redos.py: the ReDoS analyzer's agent is per process, so a forked child (multiprocessing, mutmut's
workers) never reads answers meant for its parent."""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

from components.spec import redos


def _child(queue: Any) -> None:
    agent = redos._agent()
    verdicts = [redos.check.__wrapped__(p).status for p in ("^/(a+)+$", "^/v[0-9]+/orders")]
    queue.put((os.getpid(), agent.owner if agent else None, verdicts))


def test_a_forked_child_starts_its_own_agent_and_gets_its_own_answers() -> None:
    parent = redos._agent()
    assert parent is not None, "recheck is installed by make venv"
    assert redos.check.__wrapped__("^/(a|a)*$").status == "vulnerable"
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    children = [context.Process(target=_child, args=(queue,)) for _ in range(2)]
    for child in children:
        child.start()
    answers = [queue.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=30)
    assert all(pid == owner and owner != parent.owner for pid, owner, _ in answers)
    assert [verdicts for _, _, verdicts in answers] == [["vulnerable", "safe"]] * 2
    assert redos._agent() is parent and redos.check.__wrapped__("^/x+$").status == "safe"
