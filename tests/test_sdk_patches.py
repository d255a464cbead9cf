"""offline/sdk_patches.py: the runner's replacements of Pulumi SDK internals do what the SDK's own functions do.

Each patch is compared with the SDK function it replaces (the oracle), and whole recordings are compared with the
patches applied and not applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import pulumi
import pulumi._types as sdk_types
import pulumi_command as command
import pulumi_docker as docker
import pytest
from pulumi.output import Unknown
from pulumi.runtime import rpc, settings

from bench.generate import generated_cli_config
from offline import sdk_patches
from offline.program import RecordedResource, run_program, run_stack


def _comparable(resources: list[RecordedResource]) -> list[dict[str, Any]]:
    """Every recorded field; dependency lists as sorted lists, since the SDK builds them from sets of resources
    (hashed by identity, so their order differs from run to run with or without the patches)."""
    def plain(value: Any) -> Any:
        if isinstance(value, Unknown):
            return "<unknown>"
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    rows = []
    for resource in resources:
        row = plain(dataclasses.asdict(resource))
        row["dependencies"] = sorted(row["dependencies"])
        row["property_dependencies"] = {k: sorted(v) for k, v in row["property_dependencies"].items()}
        rows.append(row)
    return rows


@contextlib.contextmanager
def _unpatched(*, source_positions: bool) -> Iterator[None]:
    yield


@pytest.mark.parametrize("source", ["dev", "prod", "generated"])
def test_the_recording_is_the_same_without_the_patches(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def record() -> list[RecordedResource]:
        return run_program(generated_cli_config(12), "scale") if source == "generated" else run_stack(source)

    patched = _comparable(record())
    monkeypatch.setattr(sdk_patches, "applied", _unpatched)
    stock = _comparable(record())
    assert [r["urn"] for r in patched] == [r["urn"] for r in stock], "registration order"
    assert patched == stock


class _Dummy(pulumi.CustomResource):
    """Stands in for a resource object: transfer_properties only sets attributes on it."""

    def __init__(self) -> None:  # no registration
        pass


def _resolved(transfer: Any, resolve: dict[str, Any]) -> dict[str, Any]:
    """Each property's Output after `transfer` made it and its resolver got `resolve[name]`: its resolved data, or
    the exception it raises. The Outputs are untracked afterwards (the SDK tracks every Output in a global set that
    a later program run waits for)."""
    async def run() -> dict[str, Any]:
        resource = _Dummy()
        resolvers = transfer(resource, dict.fromkeys(["urn", "id", *resolve]), True)
        assert set(resolvers) == set(resolve), "urn and id are left to the SDK"
        for name, args in resolve.items():
            resolvers[name](*args)
        result: dict[str, Any] = {}
        for name in resolve:
            try:
                data = await resource.__dict__[name]._data
                result[name] = (data.value, data.is_known, data.is_secret, {r is resource or r for r in data.resources})
            except Exception as error:  # the exception is the outcome compared
                result[name] = repr(error)
        # The SDK's resolver fails all four futures of a failed Output and only the value's is awaited: mark the others
        # retrieved, or they log "exception never retrieved" whenever they are collected (CPython 3.11 then reports a
        # SystemError if that happens inside `compile`, e.g. in pytest's assertion rewriting).
        for resolver in resolvers.values():
            for future in resolver.args[1:]:
                if isinstance(future, asyncio.Future) and future.done():
                    future.exception()
        settings.SETTINGS.outputs.clear()
        return result

    return asyncio.run(run())


def test_outputs_resolve_as_with_the_sdk_resolver() -> None:
    other = _Dummy()
    unknown = Unknown()  # type: ignore[no-untyped-call]
    cases = {
        "known": ("v", True, False, None, None),
        "secret": ({"a": [1, 2]}, True, True, {other}, None),
        "not_known": (None, False, False, set(), None),
        "contains_unknown": ({"a": unknown}, True, False, None, None),  # _OutputData makes it not known
        "failed": (None, False, False, None, ValueError("engine refused")),
    }
    assert _resolved(sdk_patches._transfer_properties, cases) == _resolved(rpc.transfer_properties, cases)


def test_none_is_serialized_as_by_the_sdk() -> None:
    fast = sdk_patches._none_first(rpc.serialize_property)

    async def both(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        return await fast(*args, **kwargs), await rpc.serialize_property(*args, **kwargs)

    for args, kwargs in [((None, [], "k"), {}), ((None, [], "k"), {"return_protobuf_value": True}),
                         ((None, [], "k", None, None, None, False, False, True), {}), (("x", [], "k"), {}), ((["a", None], [], "k"), {})]:
        mine, theirs = asyncio.run(both(*args, **kwargs))
        assert mine == theirs, (args, kwargs)


def test_unwrap_type_answers_as_the_sdk() -> None:
    """Every annotation of the resource classes the program uses, looked up twice (the second from the cache)."""
    cached = sdk_patches._memoized(sdk_types.unwrap_type)
    annotations = [hint for cls in (docker.Container, docker.Network, command.local.Command, docker.ContainerNetworksAdvancedArgs,
                                    docker.ContainerHealthcheckArgs)
                   for hint in sdk_types.resource_types(cls).values()]
    annotations += list(sdk_types.input_type_types(docker.ContainerNetworksAdvancedArgs).values())
    assert len(annotations) > 50
    for hint in annotations * 2:
        assert cached(hint) == sdk_types.unwrap_type(hint), hint
