"""The offline runner's patches of Pulumi SDK internals: each does the SDK's work in fewer steps, none changes what
the program registers (the recording, its order included, is compared with and without them in
tests/test_sdk_patches.py). They are applied only while `offline.program.run_program` runs a program, and only
on the SDK version that runner accepts (`offline.program.SDK_VERSION`, which it checks first); a function the
SDK no longer has is left alone (the run is then only slower). `pulumi preview`/`up` with the CLI never uses them.

Measured on bench/plan_scale.py's stack (README, "Offline plan at scale"):

- `rpc.transfer_properties`: one future per output property instead of four futures and a task (below);
- `_types.unwrap_type`: answered from a cache;
- `resource._get_stack_trace`: an empty trace, unless source positions are asked for
  (`NETOPT_OFFLINE_SOURCE_POSITIONS=1`, `run_program(..., source_positions=True)`).
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


_PLAIN = frozenset({type(None), str, int, float, bool})


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
        if not source_positions:
            patches.enter_context(_replaced(sdk_resource, "_get_stack_trace", lambda _: _empty_stack_trace))
        yield
