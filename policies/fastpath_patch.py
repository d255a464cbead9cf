"""The fast path itself: memoised conversions and lazy unknown-checking proxies patched into `pulumi_policy.policy`.

Import it only through `policies.fastpath.install()`, which checks the library version first: this module
subclasses the library's private `_DictProxy`/`_ListProxy` at import time and replaces module globals in `apply()`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from google.protobuf import struct_pb2
from pulumi_policy import proxy as _proxy

_MAX_ENTRIES = 100_000  # one AnalyzeStack of a 1,000-workload stack holds ~5,000 of each of ~6 kinds


class _Memo(threading.local):
    def __init__(self) -> None:
        # id(argument) (or a (kind, method, id) tuple) -> (argument, result): holding the argument keeps its id from
        # being reused while cached.
        self.entries: dict[Any, tuple[Any, Any]] = {}


def _memoised(function: Callable[..., Any], memo: _Memo) -> Callable[..., Any]:
    def call(argument: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            return function(argument, *args, **kwargs)
        entry = memo.entries.get(id(argument))
        if entry is not None and entry[0] is argument:
            return entry[1]
        if len(memo.entries) >= _MAX_ENTRIES:
            memo.entries.clear()
        result = function(argument)
        memo.entries[id(argument)] = (argument, result)
        return result

    call.__wrapped__ = function  # type: ignore[attr-defined]
    return call


def _value(value: struct_pb2.Value) -> Any:
    """`json_format`'s conversion of a `Value` (`_Printer._ValueMessageToJsonObject`), for the kinds a Value has."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        if math.isinf(number):
            raise ValueError("Fail to serialize Infinity for Value.number_value, which would parse as string_value")
        if math.isnan(number):
            raise ValueError("Fail to serialize NaN for Value.number_value, which would parse as string_value")
        return number
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return _struct(value.struct_value)
    if kind == "list_value":
        return [_value(item) for item in value.list_value.values]
    return None  # null_value, or no kind set


def _struct(message: struct_pb2.Struct) -> dict[str, Any]:
    fields = message.fields
    return {key: _value(fields[key]) for key in fields}


def _struct_first(message_to_dict: Callable[..., Any]) -> Callable[..., Any]:
    """`json_format.MessageToDict`, converting a `Struct` (every resource's properties) directly: the same dict, in the
    same key order, as the library's generic printer, which looks up each field's descriptor and type per value and
    was a fifth of the pack's CPU time at 1,000 workloads. Any other message, or any option, goes to the library."""
    def call(message: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs or type(message) is not struct_pb2.Struct:
            return message_to_dict(message, *args, **kwargs)
        return _struct(message)

    return call


def _memoised_method(method: Callable[..., Any], memo: _Memo) -> Callable[..., Any]:
    """A servicer method of one request message, answered once per message (see `_memoised`)."""
    def call(self: Any, message: Any) -> Any:
        key = ("method", method.__name__, id(message))
        entry = memo.entries.get(key)
        if entry is not None and entry[0] is message:
            return entry[1]
        if len(memo.entries) >= _MAX_ENTRIES:
            memo.entries.clear()
        result = method(self, message)
        memo.entries[key] = (message, result)
        return result

    call.__wrapped__ = method  # type: ignore[attr-defined]
    return call


class _JsonFormat:
    """Stands in for `google.protobuf.json_format` inside `pulumi_policy.policy` (it only calls MessageToDict)."""

    def __init__(self, module: Any, memo: _Memo) -> None:
        self._module = module
        self.MessageToDict = _memoised(_struct_first(module.MessageToDict), memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


class _LazyDict(_proxy._DictProxy):
    """`unknown_checking_proxy` without the eager copy: children are wrapped when first read, not all up front.

    The library wraps every nested value of every resource (building a path list per value) before any policy
    runs; for a 1,000-workload report that is most of the work. Reads behave exactly as through the library's
    proxy: an unknown value raises `UnknownValueError` with the same path, "__target" yields the raw value.
    """

    def __init__(self, target: dict[str, Any], path: list[str]) -> None:
        self._raw = target
        self._path = path
        self._wrapped: dict[str, Any] = {}

    def __getitem__(self, key: Any) -> Any:
        if key == "__target":
            return self._raw
        if key in self._wrapped:
            return self._wrapped[key]
        value = _lazy(self._raw[key], self._path, key)
        self._wrapped[key] = value
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self._raw[key] = value
        self._wrapped.pop(key, None)

    def __len__(self) -> int:
        return len(self._raw)

    def __iter__(self) -> Any:
        return iter(self._raw)


_UNSET = object()


class _LazyList(_proxy._ListProxy):
    def __init__(self, target: list[Any], path: list[str]) -> None:
        self._raw = target
        self._path = path
        self._wrapped: list[Any] = [_UNSET] * len(target)

    def __getitem__(self, key: Any) -> Any:
        if key == "__target":
            return self._raw
        if isinstance(key, slice):
            return [self[i] for i in range(*key.indices(len(self._raw)))]
        value = self._wrapped[key]
        if value is _UNSET:
            value = _lazy(self._raw[key], self._path, key)
            self._wrapped[key] = value
        return value

    def __len__(self) -> int:
        return len(self._raw)


def _lazy(value: Any, path: list[str], key: Any) -> Any:
    if _proxy._is_unknown(value):
        raise _proxy.UnknownValueError(value, [*path, str(key)])
    if isinstance(value, dict):
        return _LazyDict(value, [*path, str(key)])
    if isinstance(value, list):
        return _LazyList(value, [*path, str(key)])
    return value


def lazy_unknown_checking_proxy(props: dict[str, Any]) -> Any:
    return _LazyDict(props, [])


def apply() -> bool:
    """Patch `pulumi_policy.policy` in this process; False when already patched."""
    from pulumi_policy import policy as library

    names = vars(library)  # the module globals the servicer's Analyze/AnalyzeStack look these names up in
    if isinstance(names["json_format"], _JsonFormat):
        return False
    memo = _Memo()
    names["json_format"] = _JsonFormat(names["json_format"], memo)
    names["deserialize_properties"] = _memoised(names["deserialize_properties"], memo)
    names["unknown_checking_proxy"] = _memoised(lazy_unknown_checking_proxy, memo)
    # The servicer builds a resource's options and provider view once per policy (AnalyzeStack: per stack policy
    # and resource, ~45,000 times at 1,000 workloads, each provider view a fresh conversion that also flushed the
    # memo above). Built once per message, they are shared read-only by the policies, like the properties view.
    servicer = library._PolicyAnalyzerServicer
    for method in ("_get_resource_options", "_get_provider_resource"):
        setattr(servicer, method, _memoised_method(getattr(servicer, method), memo))
    return True
