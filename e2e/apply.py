"""Apply recorded pulumi-docker resources to a real Docker daemon.

:func:`apply_docker_resources` validates every record first (:mod:`e2e.plans`: each input property maps
one-to-one onto the Docker Engine API with the provider's semantics, anything else raises
:class:`UnsupportedPropertyError` before a Docker call), then creates networks and volumes, then containers
(created, uploads written, started, waited for) and runs commands, each once its dependencies are done. A failure midway
removes what was created. :class:`Applied` keeps what was applied, for :mod:`e2e.update` and ``teardown()``.
"""
from __future__ import annotations

import contextlib
import io
import tarfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from e2e.command import CommandFailedError, CommandPlan, run
from e2e.plans import (
    CONTAINER,
    NETWORK,
    VOLUME,
    ApplyError,
    ContainerPlan,
    NetworkPlan,
    Plan,
    UnsupportedPropertyError,
    UnsupportedResourceError,
    Upload,
    VolumePlan,
    _records,
    parse_duration,
    plan_docker_resources,
    plan_record,
)

PARALLEL = 10  # the engine's default is unbounded; ten is plenty for these stacks

# The harness's public names stay importable from e2e.apply.
__all__ = ["CONTAINER", "NETWORK", "VOLUME", "Applied", "ApplyError", "ContainerPlan", "NetworkPlan", "Plan",
           "UnsupportedPropertyError", "UnsupportedResourceError", "Upload", "VolumePlan", "apply_docker_resources",
           "parse_duration", "plan_docker_resources", "plan_record", "start_container"]


@dataclass
class Applied:
    """What :func:`apply_docker_resources` created; ``teardown()`` removes it all."""

    client: Any
    networks: dict[str, Any] = field(default_factory=dict)     # docker name -> Network model
    volumes: dict[str, Any] = field(default_factory=dict)      # docker name -> Volume model
    containers: dict[str, Any] = field(default_factory=dict)   # docker name -> Container model
    plans: dict[str, ContainerPlan] = field(default_factory=dict)
    commands: dict[str, CommandPlan] = field(default_factory=dict)  # urn -> the command as last run
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # urn -> the record applied (for updates)
    docker_host: str | None = None
    _torn_down: bool = False

    def __enter__(self) -> Applied:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def container(self, name: str) -> Any:
        c = self.containers[name]
        c.reload()
        return c

    def ip(self, container: str, network: str) -> str:
        nets = self.container(container).attrs["NetworkSettings"]["Networks"]
        return str(nets[network]["IPAddress"])

    def published(self, container: str, internal: int, proto: str = "tcp") -> list[tuple[str, int]]:
        ports = self.container(container).attrs["NetworkSettings"]["Ports"] or {}
        return [(b["HostIp"], int(b["HostPort"])) for b in (ports.get(f"{internal}/{proto}") or [])]

    def teardown(self) -> None:
        """Remove containers (reverse order), then networks and volumes; idempotent."""
        import docker.errors

        if self._torn_down:
            return
        self._torn_down = True
        errors = []
        for cmd in reversed(list(self.commands.values())):
            if cmd.delete:
                try:
                    run(cmd, cmd.delete, self.docker_host)
                except (CommandFailedError, OSError) as e:
                    errors.append(f"command {cmd.name}: {e}")
        for name in reversed(list(self.containers)):
            plan = self.plans.get(name)
            try:
                ctr = self.containers[name]
                if plan is not None and plan.destroy_grace is not None:
                    with contextlib.suppress(docker.errors.NotFound):
                        ctr.stop(timeout=plan.destroy_grace)
                ctr.remove(force=True, v=plan.remove_volumes if plan else True)
            except docker.errors.NotFound:
                pass
            except Exception as e:
                errors.append(f"container {name}: {e}")
        for kind, objs in (("network", self.networks), ("volume", self.volumes)):
            for name in reversed(list(objs)):
                try:
                    objs[name].remove()
                except docker.errors.NotFound:
                    pass
                except Exception as e:
                    errors.append(f"{kind} {name}: {e}")
        if errors:
            raise ApplyError("teardown: " + "; ".join(errors))


def _tar_one(up: Upload) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(up.path.rsplit("/", 1)[1])
        info.size, info.mode, info.mtime = len(up.data), up.mode, int(time.time())
        for attr, val in (("uid", up.owner), ("gid", up.group)):
            if val is None:
                continue
            if val.isdigit():
                setattr(info, attr, int(val))
            else:
                setattr(info, "uname" if attr == "uid" else "gname", val)
        tar.addfile(info, io.BytesIO(up.data))
    return buf.getvalue()


def _wait_state(client: Any, plan: ContainerPlan) -> None:
    api = client.api
    if plan.must_run:
        deadline = time.monotonic() + plan.running_timeout
        while True:
            st = api.inspect_container(plan.name)["State"]
            if st.get("Running"):
                break
            if time.monotonic() > deadline or st.get("Status") in ("exited", "dead"):
                logs = api.logs(plan.name, tail=30).decode(errors="replace")
                raise ApplyError(f"container {plan.name} is not running ({st.get('Status')}, "
                                 f"exit {st.get('ExitCode')}):\n{logs}")
            time.sleep(0.05)
    if plan.wait:
        deadline = time.monotonic() + plan.wait_timeout
        while True:
            st = api.inspect_container(plan.name)["State"]
            health = (st.get("Health") or {}).get("Status")
            if health is None:
                raise ApplyError(f"container {plan.name}: wait=true but it has no healthcheck")
            if health == "healthy":
                break
            if time.monotonic() > deadline or not st.get("Running"):
                log = (st.get("Health") or {}).get("Log") or []
                raise ApplyError(f"container {plan.name} not healthy within {plan.wait_timeout}s "
                                 f"({health}): {log[-1:] if log else ''}")
            time.sleep(0.1)


def _create_container(client: Any, plan: ContainerPlan) -> Any:
    api = client.api
    host = dict(plan.host)
    first: tuple[str, dict[str, Any]] | None = None
    rest = list(plan.networks)
    if plan.network_mode:
        host["network_mode"] = plan.network_mode
        if rest and rest[0][0] == plan.network_mode:
            first = rest.pop(0)
    elif rest:
        first = rest.pop(0)
        host["network_mode"] = first[0]
    networking = None
    if first is not None:
        networking = api.create_networking_config({first[0]: api.create_endpoint_config(**first[1])})
    host_config = api.create_host_config(**host)
    res = api.create_container(plan.image, host_config=host_config, networking_config=networking,
                               **plan.create)
    cid = res["Id"]
    for net_name, ep in rest:
        api.connect_container_to_network(cid, net_name, **ep)
    for up in plan.uploads:
        directory = up.path.rsplit("/", 1)[0] or "/"
        if not api.put_archive(cid, directory, _tar_one(up)):
            raise ApplyError(f"container {plan.name}: upload of {up.path} failed")
    return client.containers.get(cid)


def start_container(client: Any, applied: Applied, plan: ContainerPlan) -> None:
    """Create, start and wait for one container, as the provider's Create does."""
    applied.plans[plan.name] = plan
    applied.containers[plan.name] = _create_container(client, plan)
    if plan.start:
        client.api.start(plan.name)
        _wait_state(client, plan)


def _start(applied: Applied, plan: ContainerPlan | CommandPlan) -> None:
    if isinstance(plan, ContainerPlan):
        start_container(applied.client, applied, plan)
    else:
        run(plan, plan.create, applied.docker_host)
        applied.commands[plan.urn] = plan


def _after(dependencies: list[Future[None]], applied: Applied, plan: ContainerPlan | CommandPlan) -> None:
    for dependency in dependencies:
        dependency.result()  # a failed dependency fails this one too, as in the engine
    _start(applied, plan)


def _start_in_dependency_order(applied: Applied, plans: list[ContainerPlan | CommandPlan]) -> None:
    """As the engine does: each resource once its dependencies are done, independent ones concurrently.

    Plans come in declaration order, so a task only waits on tasks submitted (FIFO, hence started) before it. A
    record without a ``dependencies`` list (hand-written) waits for every record declared before it.
    """
    futures: dict[str, Future[None]] = {}
    with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="e2e-apply") as pool:
        for plan in plans:
            declared = applied.records.get(plan.urn, {}).get("dependencies")
            deps = list(futures.values()) if declared is None else [futures[u] for u in declared if u in futures]
            futures[plan.urn] = pool.submit(_after, deps, applied, plan)
        errors = [f.exception() for f in futures.values()]
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        raise first


def apply_docker_resources(client: Any, resources: Iterable[Any], *,
                           component_packages: Sequence[str] = ("netopt",), docker_host: str | None = None) -> Applied:
    """Create the recorded networks and volumes, then the containers and commands in dependency order.

    Raises :class:`UnsupportedPropertyError` / :class:`UnsupportedResourceError` before
    touching Docker if any record is not understood. If a Docker call fails
    midway, whatever was created is removed again before the error propagates.
    """
    records = _records(resources)
    plans = plan_docker_resources(records, component_packages=component_packages)
    applied = Applied(client, docker_host=docker_host)
    applied.records = {str(r.get("urn") or r["name"]): r for r in records}
    try:
        for plan in plans:
            if isinstance(plan, NetworkPlan):
                applied.networks[plan.name] = client.networks.create(plan.name, **plan.kwargs)
            elif isinstance(plan, VolumePlan):
                applied.volumes[plan.name] = client.volumes.create(plan.name, **plan.kwargs)
        _start_in_dependency_order(applied, [p for p in plans if isinstance(p, (ContainerPlan, CommandPlan))])
        return applied
    except BaseException:
        with contextlib.suppress(Exception):
            applied.teardown()
        raise
