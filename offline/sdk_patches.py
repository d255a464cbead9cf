"""The offline runner's patches of Pulumi SDK internals: each does the SDK's work in fewer steps, none changes what
the program registers (the recording, its order included, is compared with and without them in
tests/test_sdk_patches.py). They are applied only while `offline.program.run_program` runs a program, and only
on the SDK version that runner accepts (`offline.program.SDK_VERSION`, which it checks first); a function the
SDK no longer has is left alone (the run is then only slower). `pulumi preview`/`up` with the CLI never uses them.

Measured on bench/plan_scale.py's stack (README, "Offline plan at scale"):

- `rpc.transfer_properties`: one future per output property instead of four futures and a task (below);
- `_types.unwrap_type`: answered from a cache;
- `resource._get_stack_trace`: an empty trace, unless source positions are asked for
  (`NETOPT_OFFLINE_SOURCE_POSITIONS=1`, `run_program(..., source_positions=True)`);
- `rpc.contains_unknowns`: one loop over the value, its strings, numbers and None passed at a glance;
- `resource_cycle_breaker._add_dep` and `_depends_on._resolve_depends_on`: a resource's dependencies collected in one
  set, not in a new copy per dependency (quadratic in a `depends_on` list: the gateway's lists every backend).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import pulumi
import pulumi._types as sdk_types
import pulumi.output as sdk_output
import pulumi.runtime.resource as sdk_resource
from pulumi.output import Unknown
from pulumi.runtime import _depends_on as sdk_depends_on
from pulumi.runtime import resource_cycle_breaker as sdk_cycle_breaker
from pulumi.runtime import rpc
from pulumi.runtime import settings as sdk_settings
from pulumi.runtime.proto import source_pb2


def _empty_stack_trace() -> source_pb2.StackTrace:
    """For `resource._get_stack_trace`, which walks the whole Python stack and builds a file URI per frame for every
    resource (3–12 % of a run, measured) for the engine's diagnostics; the recording monitor ignores it."""
    return source_pb2.StackTrace()


def _resolve_output_data(resource: pulumi.Resource, data: asyncio.Future[Any], value: Any, is_known: bool, is_secret: bool,
                         deps: set[pulumi.Resource] | None, failed: Exception | None) -> None:
    """The SDK's resolver (`do_resolve` in `rpc.transfer_properties`) with its four futures folded into the one
    future they feed: the same `_OutputData` (the dependencies plus the resource; value, known, secret, which it
    normalises as before), or the same exception."""
    if failed is not None:
        data.set_exception(failed)
        with sdk_settings.SETTINGS.lock:  # tracked now, so the run's end (wait_for_rpcs) raises it
            sdk_settings.SETTINGS.outputs.add(data)
        return
    resources = set(deps) if deps else set()
    resources.add(resource)
    data.set_result(sdk_output._OutputData(resources=resources, value=value, is_known=is_known, is_secret=is_secret))


def _transfer_properties(res: pulumi.Resource, props: Any, custom: bool) -> dict[str, Any]:
    """`rpc.transfer_properties`, making each property's Output straight from one future.

    The SDK gives every property of a new resource (a `docker.Container` passes ~80, most of them None) an Output
    made of four futures (value, known, secret, dependencies) and a task that awaits them and assembles the
    `_OutputData` the Output really holds. The engine's answer resolves all four at once, so this resolver sets
    that `_OutputData` directly: the Output is the same (`Output._from_data`, tracked like every other) and
    `urn`/`id` are still left to the SDK, but a container's registration no longer creates ~320 futures, ~80 tasks
    and their wake-ups (~40 % of its CPU time, measured).

    Nor is each Output tracked (`Output._track`: added to the SDK's set of pending outputs and removed by a done
    callback, so that the run's end awaits it and raises its error): the registration itself resolves every one
    of these futures, a value at once; one that fails is tracked then (`_resolve_output_data`), so its error still
    ends the run. That skips two set operations and a callback per property (~12 % of a large plan, measured).
    """
    resolvers: dict[str, Any] = {}
    for name in props:
        if name == "urn" or (name == "id" and custom):
            continue
        data: asyncio.Future[Any] = asyncio.Future()
        resolvers[name] = functools.partial(_resolve_output_data, res, data)
        output: pulumi.Output[Any] = object.__new__(pulumi.Output)
        output._data = data
        res.__dict__[name] = output
    return resolvers


def _memoized(unwrap_type: Any) -> Any:
    """`_types.unwrap_type` (Output[T] / Input[T] / Optional[T] -> T) with a cache.

    `rpc.serialize_property` calls it for every property of every resource before looking at the value, None
    included: ~75 times per container, each walking `typing.get_origin`/`get_args` over the same few dozen
    annotations (~7 % of a container's registration, measured). It is a pure function of its argument; an
    unhashable argument is passed through uncached.
    """
    cache: dict[Any, Any] = {}

    def cached(val: Any) -> Any:
        try:
            return cache[val]
        except KeyError:
            cache[val] = result = unwrap_type(val)
            return result
        except TypeError:
            return unwrap_type(val)

    return cached


def _add_dep(from_resource: pulumi.Resource, to_resource: pulumi.Resource) -> None:
    """`resource_cycle_breaker._add_dep`, adding to the resource's set of direct dependencies in place.

    The SDK replaces that set with a copy one element larger on every dependency it declares, so a resource with n
    dependencies copies sets of 1, 2, ... n (and frees each old one): 0.08 s of the 1,000-workload plan, 0.65 s of the
    2,000 (profiled). Nothing else holds the set while a dependency is declared: the cycle check that reads it
    (`_reachable`) has finished, and the SDK reads it nowhere else.
    """
    deps = getattr(from_resource, sdk_cycle_breaker._DEPENDENCIES_PROPERTY, None)
    if deps is None:
        setattr(from_resource, sdk_cycle_breaker._DEPENDENCIES_PROPERTY, {to_resource})
    else:
        deps.add(to_resource)


async def _resolve_depends_on(depends_on: Any) -> set[pulumi.Resource]:
    """`_depends_on._resolve_depends_on`, growing one set instead of a new union per entry of `depends_on` (quadratic
    in its length: 0.11 s of the 1,000-workload plan, 0.88 s of the 2,000, profiled). The same set: what the outer
    Input depends on, then per entry what it depends on and the resource it resolves to."""
    if not depends_on:
        return set()
    outer = pulumi.Output._from_input_shallow(depends_on)
    all_deps = set(await outer.resources())  # a copy: the Output's own set is not to be grown
    for entry in await outer.future() or []:
        inner = pulumi.Output.from_input(entry)
        all_deps |= await inner.resources()
        direct = await inner.future()
        if direct is not None:
            all_deps.add(direct)
    return all_deps


_PLAIN = frozenset({type(None), str, int, float, bool})


def _contains_unknowns(val: Any) -> bool:
    """`rpc.contains_unknowns`: whether an Unknown is anywhere in the value (dicts and lists walked, each object once).

    The SDK asks it whenever an Output's value is read or a registration's outputs are resolved (~100,000 times in
    the 1,000-workload plan, ~400,000 nested steps: 6 % of the run, profiled), recursing with a generator per dict
    or list and an `is_unknown` and id bookkeeping for every string and number. This is one loop, and a str, int,
    float, bool or None (exactly those types: never an Unknown, and holding nothing) costs a type lookup.
    """
    pending = [val]
    seen: set[int] = set()
    while pending:
        value = pending.pop()
        if type(value) in _PLAIN:
            continue
        if isinstance(value, Unknown):
            return True
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def _plain_first(serialize_property: Any) -> Any:
    """`rpc.serialize_property`, answering None, a str, an int, a float or a bool (exactly those types: an enum
    or another subclass takes the SDK's path) with itself at once.

    `rpc.serialize_properties` serializes every property a resource passes, and a generated resource class
    passes all of them, unset ones as None (~75 per container); every string and number in a label, an
    environment variable or a healthcheck is serialized too. Each went through the full chain of type and value
    checks (an ABC `isinstance` for sequences, resource, asset, archive, awaitable, output, input type, mapping,
    protobuf Value, `isLegalProtobufValue`) before ending where it does here: the value itself (None, which
    serialize_properties drops). Anything else, and the protobuf form (`return_protobuf_value`, which wraps
    values in protobuf Values), takes the SDK's path.
    """

    async def serialize(value: Any, *args: Any, **kwargs: Any) -> Any:
        if type(value) in _PLAIN and not (args[7] if len(args) > 7 else kwargs.get("return_protobuf_value", False)):
            return value
        return await serialize_property(value, *args, **kwargs)

    return serialize


@contextlib.contextmanager
def _replaced(module: Any, name: str, replacement: Callable[[Any], Any]) -> Iterator[None]:
    """`module.name` is `replacement(the original)` for the duration."""
    original = getattr(module, name, None)
    if original is None:
        yield
        return
    setattr(module, name, replacement(original))
    try:
        yield
    finally:
        setattr(module, name, original)


@contextlib.contextmanager
def applied(*, source_positions: bool) -> Iterator[None]:
    """Every patch above for the duration; the SDK's own functions again afterwards (also on error)."""
    with contextlib.ExitStack() as patches:
        patches.enter_context(_replaced(rpc, "transfer_properties", lambda _: _transfer_properties))
        patches.enter_context(_replaced(sdk_types, "unwrap_type", _memoized))
        patches.enter_context(_replaced(rpc, "serialize_property", _plain_first))
        patches.enter_context(_replaced(rpc, "contains_unknowns", lambda _: _contains_unknowns))
        patches.enter_context(_replaced(sdk_cycle_breaker, "_add_dep", lambda _: _add_dep))
        patches.enter_context(_replaced(sdk_depends_on, "_resolve_depends_on", lambda _: _resolve_depends_on))
        if not source_positions:
            patches.enter_context(_replaced(sdk_resource, "_get_stack_trace", lambda _: _empty_stack_trace))
        yield
