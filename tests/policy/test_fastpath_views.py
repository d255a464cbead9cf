"""policies/fastpath_patch.py's lazy property views read exactly as the library's chain
(`unknown_checking_proxy(deserialize_properties(MessageToDict(struct)))`): every value of every resource of the shipped
stacks, and crafted properties with unknowns, secrets, assets and nested lists, compared read for read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pytest
from google.protobuf import json_format, struct_pb2
from pulumi_policy.deserialize import SPECIAL_ASSET_SIG, SPECIAL_SECRET_SIG, SPECIAL_SIG_KEY, deserialize_properties
from pulumi_policy.proxy import UNKNOWN_NUMBER_VALUE, UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from offline.analyzer import _struct
from offline.program import run_stack
from policies import fastpath_patch


def _read(view: Any) -> Any:
    """Everything a policy could read, each unknown as the error message it raises."""
    if isinstance(view, Mapping):
        result = {}
        for key in view:
            try:
                result[key] = _read(view[key])
            except UnknownValueError as error:
                result[key] = ("unknown", error.message, error.props)
        return ("dict", len(view), result)
    if isinstance(view, Sequence) and not isinstance(view, str):
        items = []
        for i in range(len(view)):
            try:
                items.append(_read(view[i]))
            except UnknownValueError as error:
                items.append(("unknown", error.message, error.props))
        try:
            iterated: Any = [_read(x) for x in view]  # iteration stops at the first unknown, as the library's does
        except UnknownValueError as error:
            iterated = ("unknown", error.message, error.props)
        return ("list", items, iterated, [_read(x) for x in view[0:2]] if len(view) and not _has_unknown(view) else None)
    if isinstance(view, pulumi.Asset | pulumi.Archive):
        return (type(view).__name__, vars(view))
    return (type(view).__name__, view)


def _has_unknown(view: Sequence[Any]) -> bool:
    try:
        list(view[0:2])
    except UnknownValueError:
        return True
    return False


def _library(message: struct_pb2.Struct) -> Any:
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(message)))


def _shipped_structs() -> list[tuple[str, struct_pb2.Struct]]:
    return [(f"{stack}:{r.name}", r.wire_inputs() or _struct(r.inputs)) for stack in ("dev", "prod") for r in run_stack(stack)]


@pytest.mark.parametrize(("name", "message"), _shipped_structs())
def test_views_read_as_the_library_on_the_shipped_stacks(name: str, message: struct_pb2.Struct) -> None:
    assert _read(fastpath_patch.properties_view(message)) == _read(_library(message)), name


CRAFTED: dict[str, dict[str, Any]] = {
    "plain": {"s": "x", "n": 3, "f": 2.5, "b": False, "none": None, "empty": {}, "list": []},
    "unknowns": {"top": UNKNOWN_STRING_VALUE, "nested": {"deep": [1, UNKNOWN_NUMBER_VALUE, {"k": UNKNOWN_STRING_VALUE}]}},
    "secret": {"password": {SPECIAL_SIG_KEY: SPECIAL_SECRET_SIG, "value": {"inner": [1, "two"]}}},
    "asset": {"file": {SPECIAL_SIG_KEY: SPECIAL_ASSET_SIG, "text": "hello"}},
    "lists": {"rows": [[1, [2, {"a": None}]], {"b": [True]}]},
}


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_views_read_as_the_library_on_crafted_properties(name: str) -> None:
    message = _struct(CRAFTED[name])
    assert _read(fastpath_patch.properties_view(message)) == _read(_library(message))


def test_a_missing_key_and_a_target_behave_as_the_library() -> None:
    message = _struct({"a": {"b": [1, 2]}, "c": "d"})
    view, library = fastpath_patch.properties_view(message), _library(message)
    for props in (view, library):
        with pytest.raises(KeyError):
            props["missing"]
        assert props.get("missing", 7) == 7 and "c" in props and "missing" not in props
    assert fastpath_patch.properties_view(message)["__target"] == deserialize_properties(json_format.MessageToDict(message))


def test_each_request_gets_the_runtime_settings_and_config_the_library_would_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """gRPC runs every request in a fresh context: the settings built once must still be set in each one, and a
    changed environment must be read again."""
    import contextvars

    from pulumi_policy.policy import _PolicyAnalyzerServicer

    def seen(stack: str) -> tuple[Any, ...]:
        monkeypatch.setenv("PULUMI_STACK", stack)
        for name, value in (("PULUMI_PROJECT", "netopt"), ("PULUMI_DRY_RUN", "true"), ("PULUMI_CONFIG", '{"netopt:x": "1"}')):
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("PULUMI_ORGANIZATION", raising=False)

        def request(configure: Any) -> tuple[Any, ...]:
            configure(None)
            return (pulumi.get_project(), pulumi.get_stack(), pulumi.get_organization(), pulumi.runtime.is_dry_run(),
                    pulumi.runtime.config.get_config("netopt:x"))
        fast = [contextvars.Context().run(request, fastpath_patch._configure_runtime_settings) for _ in range(2)]
        stock = contextvars.Context().run(request, _PolicyAnalyzerServicer._configure_runtime_settings)
        assert fast == [stock, stock]
        return stock

    assert seen("dev")[:3] == ("netopt", "dev", "organization")
    assert seen("prod")[1] == "prod", "a changed environment is read again"
