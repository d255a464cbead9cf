"""Run `__main__.py` under Pulumi's runtime mocks and record every resource it registers.

The recording keeps what the engine would see: type, name, URN, parent URN, custom or component, the input
properties, and the options that matter to reviewers (dependencies, delete-before-replace, protect).
"""

from __future__ import annotations

import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import empty_pb2
from pulumi.runtime import mocks, rpc, settings
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.sync_await import _sync_await

from offline.stack_config import PROJECT_DIR, cli_config, project_settings, stack_file


@dataclass
class RecordedResource:
    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    dependencies: list[str] = field(default_factory=list)
    delete_before_replace: bool = False
    protect: bool = False
    provider: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def parent_name(self) -> str:
        return self.parent.rsplit("::", 1)[-1] if self.parent else ""


class _NoMocks(mocks.Mocks):
    """Unused: the recording monitor answers registrations itself (outputs = inputs)."""

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def call(self, args: mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class _RecordingMonitor(mocks.MockMonitor):
    """A resource's outputs are its inputs, with a stable fake id: enough for the program to wire resources.

    The wire-form inputs are echoed back as they came, instead of MockMonitor's deserialize/serialize round
    trip, whose nested event-loop turn per registration makes large stacks quadratic.
    """

    def __init__(self) -> None:
        super().__init__(_NoMocks())
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
            inputs=rpc.deserialize_properties(request.object, keep_unknowns=True),
            dependencies=list(request.dependencies),
            delete_before_replace=request.deleteBeforeReplace,
            protect=request.protect,
            provider=request.provider,
        )
        self.recorded.append(record)
        self.by_urn[urn] = record
        resource_id = f"{request.name}-id" if request.custom else ""
        self.resources[urn] = mocks.MockMonitor.ResourceRegistration(urn, resource_id, record.inputs)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=resource_id, object=request.object)

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        record = self.by_urn.get(request.urn)
        if record is not None:
            record.outputs = rpc.deserialize_properties(request.outputs, keep_unknowns=True)
        return empty_pb2.Empty()


class ProgramError(Exception):
    """The program stopped with an error (e.g. invalid config reported through pulumi.RunError)."""


def run_program(config: dict[str, str], stack: str, project_dir: Path = PROJECT_DIR, preview: bool = True) -> list[RecordedResource]:
    """Run the project's program with `config` (CLI form) under mocks; return the registered resources."""
    monitor = _RecordingMonitor()
    settings.ROOT.set(None)  # a fresh root stack per run, so several stacks can run in one process
    project = project_settings(project_dir)["name"]
    mocks.set_mocks(monitor.mocks, project=project, stack=stack, preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(config)
    try:
        _sync_await(_run(project_dir / "__main__.py"))
    except pulumi.RunError as error:
        raise ProgramError(str(error)) from None
    return monitor.recorded


async def _run(program: Path) -> None:
    from pulumi.runtime.stack import run_pulumi_func, wait_for_rpcs

    def body() -> None:
        runpy.run_path(str(program), run_name="__main__")

    await run_pulumi_func(body)
    await wait_for_rpcs()


def run_stack(stack: str, project_dir: Path = PROJECT_DIR, preview: bool = True) -> list[RecordedResource]:
    return run_program(cli_config(stack_file(stack, project_dir)), stack, project_dir, preview)
