"""offline/sdk_patches.py: the runner's replacements of Pulumi SDK internals do what the SDK's own functions do.

Each patch is compared with the SDK function it replaces (the oracle), and whole recordings are compared with the
patches applied and not applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
from collections.abc import Iterator
from typing import Any

import pulumi
import pulumi._types as sdk_types
import pulumi_command as command
import pulumi_docker as docker
import pytest
from pulumi.output import Unknown
from pulumi.runtime import _depends_on as sdk_depends_on
from pulumi.runtime import resource_cycle_breaker as sdk_cycle_breaker
from pulumi.runtime import rpc, settings

from bench.generate import generated_cli_config
from offline import program, sdk_patches
from offline.program import RecordedResource, run_program, run_stack
from offline.stack_config import cli_config, stack_file


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


class _Everything:
    def __contains__(self, item: object) -> bool:
        return True


@pytest.mark.parametrize("source", ["dev", "staging", "prod", "boutique", "boutique:docker", "generated", "prod:linkerd", "prod:istio"])
def test_echoing_only_the_outputs_the_program_reads_records_the_same(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner answers only ECHOED_TYPES' registrations with outputs: were any other type's output read into an
    input, that input would be unknown here and known with every output echoed."""
    stack, _, variant = source.partition(":")  # a mesh, or the other target

    def record() -> list[RecordedResource]:
        if stack == "generated":
            return run_program(generated_cli_config(12), "scale")
        config = cli_config(stack_file(stack))
        if variant == "docker":  # one Docker host publishes the gateway's port once
            config["netopt:target"] = "docker"
            config["netopt:gateway"] = json.dumps({**json.loads(config["netopt:gateway"]), "replicas": 1})
        elif variant:
            config["netopt:kubernetes"] = json.dumps({**json.loads(config.get("netopt:kubernetes", "{}")), "mesh": variant})
        return run_program(config, stack)

    default = _comparable(record())
    monkeypatch.setattr(program, "ECHOED_TYPES", _Everything())
    assert _comparable(record()) == default
    monkeypatch.setattr(program, "ECHOED_TYPES", frozenset())
    assert _comparable(record()) != default, "the program does read the echoed types' outputs"


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


class _Color(enum.StrEnum):
    RED = "red"


def test_plain_values_are_serialized_as_by_the_sdk() -> None:
    fast = sdk_patches._plain_first(rpc.serialize_property)

    async def both(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        return await fast(*args, **kwargs), await rpc.serialize_property(*args, **kwargs)

    values = [None, "x", "", 0, -3, 2**70, 1.5, float("-0.0"), True, False, rpc.UNKNOWN, _Color.RED, ["a", None, 1, 2.5, True],
              {"k": [None, {"n": 1}]}]
    for value in values:
        for args, kwargs in [((value, [], "k"), {}), ((value, [], "k"), {"return_protobuf_value": True}),
                             ((value, [], "k", None, None, None, False, False, True), {})]:
            mine, theirs = asyncio.run(both(*args, **kwargs))
            assert (type(mine), mine) == (type(theirs), theirs), (args, kwargs)


def test_a_failed_output_is_tracked_so_the_run_raises_it() -> None:
    async def run() -> tuple[int, int]:
        resource = _Dummy()
        resolvers = sdk_patches._transfer_properties(resource, {"good": None, "bad": None}, True)
        before = len(settings.SETTINGS.outputs)
        resolvers["good"]("v", True, False, None, None)
        resolvers["bad"](None, False, False, None, ValueError("engine refused"))
        tracked = len(settings.SETTINGS.outputs) - before
        with pytest.raises(ValueError, match="engine refused"):
            await resource.__dict__["bad"]._data
        settings.SETTINGS.outputs.clear()
        return before, tracked

    assert asyncio.run(run()) == (0, 1)


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


def test_dependencies_are_declared_as_by_the_sdk() -> None:
    """The same set of direct dependencies per resource after the same declarations, repeats and a chain included."""
    def declared(add_dep: Any) -> list[set[int]]:
        resources: list[pulumi.Resource] = [_Dummy() for _ in range(5)]
        for a, b in [(0, 1), (0, 2), (0, 1), (1, 2), (3, 0), (0, 4)]:
            add_dep(resources[a], resources[b])
        return [{resources.index(d) for d in sdk_cycle_breaker._deps(r)} for r in resources]

    assert declared(sdk_patches._add_dep) == declared(sdk_cycle_breaker._add_dep) == [{1, 2, 4}, {2}, set(), {0}, set()]


def test_depends_on_resolves_as_by_the_sdk() -> None:
    """Plain resources, Outputs of a resource (which carry dependencies of their own), None and repeats; the Output of
    the list itself may carry dependencies too."""
    async def resolved(resolve: Any) -> list[set[int]]:
        r = [_Dummy() for _ in range(6)]

        def output_of(value: Any, deps: set[Any]) -> pulumi.Output[Any]:
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            future.set_result(value)
            known: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            known.set_result(True)
            return pulumi.Output(deps, future, known)

        cases: list[Any] = [None, [], [r[0]], [r[0], r[1], r[0]], [r[2], output_of(r[3], {r[4]}), output_of(None, {r[5]})],
                            output_of([r[1], r[2]], {r[0]})]
        results = [await resolve(case) for case in cases]
        return [{r.index(d) for d in result} for result in results]

    async def both() -> tuple[list[set[int]], list[set[int]]]:
        return await resolved(sdk_patches._resolve_depends_on), await resolved(sdk_depends_on._resolve_depends_on)

    mine, theirs = asyncio.run(both())
    settings.SETTINGS.outputs.clear()
    assert mine == theirs == [set(), set(), {0}, {0, 1}, {2, 3, 4, 5}, {0, 1, 2}]


def test_unknowns_are_found_as_by_the_sdk() -> None:
    """Scalars, nesting, an Unknown deep in a list or a dict, shared and self-referencing containers, subclasses."""
    unknown = Unknown()  # type: ignore[no-untyped-call]
    shared: list[Any] = ["a", 1]
    cyclic: dict[str, Any] = {"x": 1}
    cyclic["self"] = cyclic
    cases: list[Any] = [None, "s", 0, 1.5, True, unknown, [], {}, [1, "a", None], {"a": {"b": [1, {"c": unknown}]}},
                        [shared, shared, {"k": shared}], cyclic, {"loop": cyclic, "later": [unknown]}, _Color.RED,
                        ("tuple", unknown), {"ports": [{"internal": 80, "external": unknown}]}]
    found = [sdk_patches._contains_unknowns(case) for case in cases]
    assert found == [rpc.contains_unknowns(case) for case in cases]
    assert found == [False, False, False, False, False, True, False, False, False, True, False, False, True, False, False, True]
