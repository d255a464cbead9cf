"""Convert each analyzed resource's properties once per request instead of once per policy.

pulumi-policy 1.21.0 (`_PolicyAnalyzerServicer.Analyze` and `AnalyzeStack`) runs
`unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(props)))` inside its loop over
policies, so a pack with P policies converts every resource P times (and, in `AnalyzeStack`, the whole stack P
times). For a 1,000-workload stack that alone is several seconds. This module memoises those three steps on the
identity of their argument, per thread: the servicer hands the same protobuf message (upb returns one wrapper
object per sub-message) to each policy, so the second and later policies get the already converted, read-only
view. The unknown-checking view itself is built lazily (`_LazyDict`): a value is wrapped when a policy reads it.
Nothing else about the servicer changes: which policies run, their levels, the diagnostics and the not-applicable
reasons are byte-for-byte what the unpatched library returns (tests/policy compares both).

Only the no-option call forms are memoised (`Remediate` asks for secret-preserving proxies and is left alone).
Set NETOPT_POLICY_NO_MEMO=1 to run the library unpatched.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from pulumi_policy import proxy as _proxy

_MAX_ENTRIES = 50_000  # one AnalyzeStack of a 1,000-workload stack holds ~3,000 of each kind


class _Memo(threading.local):
    def __init__(self) -> None:
        # id(argument) -> (argument, result): holding the argument keeps its id from being reused while cached.
        self.entries: dict[int, tuple[Any, Any]] = {}


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


class _JsonFormat:
    """Stands in for `google.protobuf.json_format` inside `pulumi_policy.policy` (it only calls MessageToDict)."""

    def __init__(self, module: Any, memo: _Memo) -> None:
        self._module = module
        self.MessageToDict = _memoised(module.MessageToDict, memo)

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


def install() -> bool:
    """Patch `pulumi_policy.policy` in this process; returns False when disabled or already installed."""
    if os.environ.get("NETOPT_POLICY_NO_MEMO") == "1":
        return False
    from pulumi_policy import policy as library

    names = vars(library)  # the module globals the servicer's Analyze/AnalyzeStack look these names up in
    if isinstance(names["json_format"], _JsonFormat):
        return False
    memo = _Memo()
    names["json_format"] = _JsonFormat(names["json_format"], memo)
    names["deserialize_properties"] = _memoised(names["deserialize_properties"], memo)
    names["unknown_checking_proxy"] = _memoised(lazy_unknown_checking_proxy, memo)
    return True
