"""Run recorded pulumi-command ``local.Command`` resources the way the provider does.

The provider runs ``create`` through ``interpreter`` (default ``/bin/sh -c``) in ``dir``, with the process
environment plus ``environment``, ``stdin`` on standard input; a non-zero exit fails the step with the
command's stderr. On an input change it runs ``update`` (or ``create`` again when there is none); on
deletion ``delete``. The Docker host is the harness's "provider config": ``DOCKER_HOST`` points at the
private dockerd, as ``docker:host`` / ``DOCKER_HOST`` would under ``pulumi up``.
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

COMMAND = "command:local:Command"
TIMEOUT_S = 120.0


class CommandFailedError(RuntimeError):
    """The command exited non-zero: the update fails with its output, as `pulumi up` reports it."""


@dataclass
class CommandPlan:
    urn: str
    name: str
    create: str
    update: str | None = None
    delete: str | None = None
    stdin: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    interpreter: list[str] = field(default_factory=lambda: ["/bin/sh", "-c"])
    dir: str | None = None


def command_plan(rec: Mapping[str, Any]) -> CommandPlan:
    """Validate one recorded Command; raises UnsupportedPropertyError on anything this harness cannot run."""
    from e2e.plans import UnsupportedPropertyError, _Props

    p = _Props(f"{COMMAND} {rec['name']!r}", rec.get("inputs") or {})
    create = p.get_str("create")
    if not create:
        raise UnsupportedPropertyError(f"{p.where}.create is required by this harness")
    plan = CommandPlan(
        urn=str(rec.get("urn") or rec["name"]), name=str(rec["name"]), create=create,
        update=p.get_str("update"), delete=p.get_str("delete"), stdin=p.get_str("stdin"),
        environment=p.strmap("environment") or {}, interpreter=p.strs("interpreter") or ["/bin/sh", "-c"],
        dir=p.get_str("dir"),
    )
    p._take("triggers")  # only decides update vs replace (components.targets.update_rules)
    p.reject("logging", "only the default logging is supported")
    p.reject("assetPaths", "assets are not collected by this harness")
    p.reject("archivePaths", "archives are not collected by this harness")
    p.reject("addPreviousOutputInEnv", "previous outputs are not kept by this harness")
    p.done()
    return plan


def run(plan: CommandPlan, script: str, docker_host: str | None) -> str:
    """Run one of the plan's scripts; return stdout, raise CommandFailedError with stderr on failure."""
    env = {**os.environ, **({"DOCKER_HOST": docker_host} if docker_host else {}), **plan.environment}
    proc = subprocess.run([*plan.interpreter, script], input=plan.stdin or "", env=env, cwd=plan.dir, text=True,
                          capture_output=True, timeout=TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise CommandFailedError(f"{plan.name}: exit {proc.returncode}\n{proc.stderr.strip()}")
    return proc.stdout
