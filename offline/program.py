"""Run `__main__.py` under Pulumi's runtime mocks and record every resource it registers.

The recording keeps what the engine would see: type, name, URN, parent URN, custom or component, the input
properties, and the options that matter to reviewers and to updates (dependencies, per-property dependencies,
delete-before-replace, ignore-changes, protect).

How the runner runs the program is its own choice, and these choices keep a large stack's plan fast and linear
(see "Offline plan at scale" in the README; none changes what is registered or recorded):

- the cyclic garbage collector is paused while the program runs and run once at the end. The SDK keeps
  hundreds of live objects per registered resource (an Output and its future per output property, ~80 of them
  for a container), so each of the collector's full passes re-scans the whole, growing graph: at 1,000
  workloads they were half the run and grew faster than the stack;
- the SDK's resource graph is released when the run ends (the root stack resource holds every resource, and it
  outlived the run until the next one started, so its collection was charged to the next run);
- each run gets its own event loop, whose executor calls the in-process monitor inline: the SDK sends every
  monitor call through `loop.run_in_executor` so that a blocking gRPC call to the engine cannot stall the loop,
  but the recording monitor does no I/O, and a thread hop per registration only adds wake-ups;
- three SDK internals are replaced while the program runs by equivalents that do less work (offline/sdk_patches.py):
  each output property's Output is made from one future instead of four futures and a task, the type unwrapping
  done for every property is cached, and the per-resource call-stack capture (sent to the engine for diagnostics
  only; the recording monitor discards it) is skipped — `NETOPT_OFFLINE_SOURCE_POSITIONS=1` (or
  `run_program(..., source_positions=True)`) keeps it.

The recording monitor subclasses the SDK's `MockMonitor` and uses its URN and registration internals, and the runner
resets `pulumi.runtime.settings` state between runs: internals of the one SDK version it was written and tested for
(`SDK_VERSION`). `run_program` refuses any other installed version with a message saying what to do, instead of
recording something subtly different.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import importlib.metadata
import os
import runpy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import pulumi
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime import mocks, rpc, settings
from pulumi.runtime.proto import resource_pb2

from offline import sdk_patches
from offline.stack_config import PROJECT_DIR, cli_config, project_settings, stack_file


class _Properties:
    """A resource's input or output properties, kept in the wire form the SDK sent (a protobuf Struct) and decoded
    (`rpc.deserialize_properties`, unknowns kept) on first read, or set as a dict.

    Most of a large stack's recorded properties are never read as dicts: `make plan` lists resources by name and
    the policy pack is sent the wire form itself (offline/analyzer.py). Decoding them all as they were registered
    was ~6 % of a 1,000-workload plan. `wire(record)` is the Struct as the SDK sent it, or None once the dict has
    been read or replaced (it may then have been changed in place, so only the dict is the truth).
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.decoded, self.wire_name = f"_{name}", f"_wire_{name}"

    def __get__(self, record: Any, owner: type | None = None) -> Any:
        if record is None:
            return _EMPTY  # the dataclass field's default
        values = record.__dict__
        if self.decoded not in values:
            wire = values.pop(self.wire_name, None)
            values[self.decoded] = {} if wire is None else rpc.deserialize_properties(wire, keep_unknowns=True)
        values.pop(self.wire_name, None)
        return values[self.decoded]

    def __set__(self, record: Any, value: Any) -> None:
        values = record.__dict__
        values.pop(self.decoded, None)
        values.pop(self.wire_name, None)
        if isinstance(value, struct_pb2.Struct):
            values[self.wire_name] = value
        else:
            values[self.decoded] = {} if value is _EMPTY else value

    def wire(self, record: Any) -> struct_pb2.Struct | None:
        wire: struct_pb2.Struct | None = record.__dict__.get(self.wire_name)
        return wire


_EMPTY: Any = object()


@dataclass
class RecordedResource:
    """One registration. `inputs` and `outputs` may be given as the SDK's wire form (a protobuf Struct): they read as
    dicts (see _Properties)."""

    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    inputs: dict[str, Any] = _Properties()  # type: ignore[assignment]
    dependencies: list[str] = field(default_factory=list)
    delete_before_replace: bool = False
    protect: bool = False
    ignore_changes: list[str] = field(default_factory=list)
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    provider: str = ""
    outputs: dict[str, Any] = _Properties()  # type: ignore[assignment]

    @property
    def parent_name(self) -> str:
        return self.parent.rsplit("::", 1)[-1] if self.parent else ""

    def wire_inputs(self) -> struct_pb2.Struct | None:
        """The inputs exactly as the SDK sent them, while they have not been read or replaced as a dict."""
        return vars(RecordedResource)["inputs"].wire(self)  # type: ignore[no-any-return]

    def wire_outputs(self) -> struct_pb2.Struct | None:
        return vars(RecordedResource)["outputs"].wire(self)  # type: ignore[no-any-return]


def _recorded_form(properties: struct_pb2.Struct) -> Any:
    """The Struct itself when its values are plain data, which decode the same at any time; decoded now when they
    hold a special value (secret, resource reference, asset, output value), whose decoding depends on the run."""
    if _SPECIAL_SIG in properties.SerializeToString():
        return rpc.deserialize_properties(properties, keep_unknowns=True)
    return properties


_SPECIAL_SIG = rpc._special_sig_key.encode()


class _Registered(Mapping[str, Any]):
    """A registration's state for MockMonitor's `getResource` invoke: the record's inputs, decoded only if asked."""

    def __init__(self, record: RecordedResource) -> None:
        self._record = record

    def __getitem__(self, key: str) -> Any:
        return self._record.inputs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._record.inputs)

    def __len__(self) -> int:
        return len(self._record.inputs)


class _NoMocks(mocks.Mocks):
    """Unused: the recording monitor answers registrations itself (outputs = inputs)."""

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def call(self, args: mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


ECHOED_TYPES = frozenset({"docker:index/network:Network", "docker:index/volume:Volume", "kubernetes:core/v1:Namespace",
                          "kubernetes:core/v1:ConfigMap"})
"""The provider resource types whose outputs the program reads (a link network's `name` in its members'
`networksAdvanced`, a persistent volume's `name` in its container's `volumes`, the namespace's `metadata.name` in
every namespaced object, a proxy ConfigMap's in the volume that mounts it); components are always answered (their
properties are outputs the program reads, the report among them). tests/test_sdk_patches.py checks that echoing
every type's outputs records the same."""


class _RecordingMonitor(mocks.MockMonitor):
    """A resource's outputs are its inputs, with a stable fake id: enough for the program to wire resources.

    The wire-form inputs are echoed back as they came, instead of MockMonitor's deserialize/serialize round trip,
    whose nested event-loop turn per registration makes large stacks quadratic; and only for ECHOED_TYPES: the SDK
    decodes and resolves every property of an answer, and nothing reads the outputs of the thousands of containers
    of a large stack (~15 % of a 1,000-workload plan, measured). In a preview an output the answer leaves out is
    unknown, as an output the engine does not know yet.
    """

    def __init__(self) -> None:
        super().__init__(_NoMocks())
        self.echoed = ECHOED_TYPES
        self.recorded: list[RecordedResource] = []
        self.by_urn: dict[str, RecordedResource] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        record = RecordedResource(
            type=request.type,
            name=request.name,
            urn=urn,
            parent=request.parent,
            custom=request.custom,
            inputs=_recorded_form(request.object),
            # sorted: the SDK sends them in the order of a set of resources (hashed by address), which varies by run
            dependencies=sorted(request.dependencies),
            delete_before_replace=request.deleteBeforeReplace,
            protect=request.protect,
            ignore_changes=list(request.ignoreChanges),
            property_dependencies={key: sorted(deps.urns) for key, deps in request.propertyDependencies.items()},
            provider=request.provider,
        )
        self.recorded.append(record)
        self.by_urn[urn] = record
        resource_id = f"{request.name}-id" if request.custom else ""
        self.resources[urn] = mocks.MockMonitor.ResourceRegistration(urn, resource_id, _Registered(record))  # type: ignore[arg-type]
        if request.custom and request.type not in self.echoed:
            return resource_pb2.RegisterResourceResponse(urn=urn, id=resource_id)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=resource_id, object=request.object)

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        record = self.by_urn.get(request.urn)
        if record is not None:
            record.outputs = _recorded_form(request.outputs)
        return empty_pb2.Empty()


class ProgramError(Exception):
    """The program stopped with an error (e.g. invalid config reported through pulumi.RunError)."""


SDK_VERSION = "3.272.0"  # the pulumi SDK whose internals this runner uses (requirements.txt pins it)


def installed_sdk_version() -> str:
    return importlib.metadata.version("pulumi")


def require_sdk_version() -> None:
    """ProgramError unless the installed pulumi SDK is exactly SDK_VERSION."""
    installed = installed_sdk_version()
    if installed != SDK_VERSION:
        raise ProgramError(
            f"offline/program.py runs the program on internals of the Pulumi SDK (MockMonitor, runtime settings) written for "
            f"pulumi=={SDK_VERSION}, but pulumi {installed} is installed. Fix: install the pinned version "
            f"(.venv/bin/pip install pulumi=={SDK_VERSION}, as requirements.txt says), or port offline/program.py to {installed}, "
            "run tests/test_program.py and tests/policy, and update SDK_VERSION. `pulumi preview` with the CLI does not use this runner.")


SOURCE_POSITIONS_ENV = "NETOPT_OFFLINE_SOURCE_POSITIONS"
"""Set to 1 to let the SDK capture each resource's call stack and source position, as it does under the engine."""


@contextlib.contextmanager
def _collector_paused(collect: bool) -> Iterator[None]:
    """Pause the cyclic garbage collector for the run (if it was enabled); at the end, collect once, or freeze.

    A run leaves millions of objects, most of them garbage in reference cycles (the SDK's futures and their
    callbacks). Collecting them walks every one (~2.5 s of a 1,000-workload plan, measured); a one-shot process
    (`make plan`) can instead freeze them (`gc.freeze`: moved out of the collector's sight, never walked again) and
    keep the memory it already holds (+2 % peak, measured). Many runs in one process (the tests) collect.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if collect:
                gc.collect()
            else:
                gc.freeze()
            gc.enable()


_P = ParamSpec("_P")
_T = TypeVar("_T")


class _InlineExecutor(concurrent.futures.ThreadPoolExecutor):
    """An executor that runs each call at once on the calling thread (the event loop's), and starts no thread.

    A ThreadPoolExecutor only because `loop.set_default_executor` accepts nothing else; like a worker thread, it
    hands any exception to the future.
    """

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> concurrent.futures.Future[_T]:
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # as in a worker thread: the caller sees it on the future
            future.set_exception(error)
        return future


@contextlib.contextmanager
def _own_event_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A new event loop (with the inline executor) as the thread's current loop for the run; the previous one after."""
    try:
        previous: asyncio.AbstractEventLoop | None = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:  # no current loop in this (non-main) thread
        previous = None
    loop = asyncio.new_event_loop()
    loop.set_default_executor(_InlineExecutor(max_workers=1))
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        loop.close()
        asyncio.set_event_loop(previous)


def _release_sdk_state() -> None:
    """Drop the SDK's references to this run's resource graph (the root stack holds every resource)."""
    settings.ROOT.set(None)
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()


def run_program(config: dict[str, str], stack: str, project_dir: Path = PROJECT_DIR, preview: bool = True,
                source_positions: bool | None = None, one_shot: bool = False,
                program_globals: dict[str, Any] | None = None) -> list[RecordedResource]:
    """Run the project's program with `config` (CLI form) under mocks; return the registered resources.

    ProgramError when the program fails or the installed pulumi SDK is not the one this runner was written for.

    `source_positions` (default: the NETOPT_OFFLINE_SOURCE_POSITIONS environment variable, off) keeps the SDK's
    per-resource stack capture; the recording is the same either way. `one_shot`: the process runs one program
    and exits (`make plan`): the run's garbage is frozen rather than collected (see _collector_paused).
    `program_globals` receives the program module's globals after the run (its `app`, the AppNetwork).
    """
    require_sdk_version()
    if source_positions is None:
        source_positions = os.environ.get(SOURCE_POSITIONS_ENV, "") == "1"
    monitor = _RecordingMonitor()
    with _collector_paused(collect=not one_shot), sdk_patches.applied(source_positions=source_positions), _own_event_loop() as loop:
        try:
            settings.ROOT.set(None)  # a fresh root stack per run, so several stacks can run in one process
            project = project_settings(project_dir)["name"]
            mocks.set_mocks(monitor.mocks, project=project, stack=stack, preview=preview, monitor=monitor)
            pulumi.runtime.set_all_config(config)
            finished = loop.run_until_complete(_run(project_dir / "__main__.py"))
            if program_globals is not None:
                program_globals.update(finished)
        except pulumi.RunError as error:
            raise ProgramError(str(error)) from None
        finally:
            _release_sdk_state()
    return monitor.recorded


async def _run(program: Path) -> dict[str, Any]:
    """Run the program as the engine's language host does; its module globals once every registration settled."""
    from pulumi.runtime.stack import run_pulumi_func, wait_for_rpcs

    finished: dict[str, Any] = {}

    def body() -> None:
        finished.update(runpy.run_path(str(program), run_name="__main__"))

    await run_pulumi_func(body)
    await wait_for_rpcs()
    return finished


def run_stack(stack: str, project_dir: Path = PROJECT_DIR, preview: bool = True) -> list[RecordedResource]:
    return run_program(cli_config(stack_file(stack, project_dir)), stack, project_dir, preview)
