"""The fast path itself: memoised conversions and lazy unknown-checking proxies patched into `pulumi_policy.policy`.

Import it only through `policies.fastpath.install()`, which checks the library version first: this module
subclasses the library's private `_DictProxy`/`_ListProxy` at import time and replaces module globals in `apply()`.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from collections.abc import Callable
from typing import Any

from google.protobuf import struct_pb2
from pulumi_policy import proxy as _proxy

_SPECIAL_SIG = "4dabf18193072939515e22adb298388d"  # pulumi_policy.deserialize.SPECIAL_SIG_KEY
_UNKNOWNS = frozenset({_proxy.UNKNOWN_BOOLEAN_VALUE, _proxy.UNKNOWN_NUMBER_VALUE, _proxy.UNKNOWN_STRING_VALUE, _proxy.UNKNOWN_ARRAY_VALUE,
                       _proxy.UNKNOWN_ASSET_VALUE, _proxy.UNKNOWN_ARCHIVE_VALUE, _proxy.UNKNOWN_OBJECT_VALUE})  # as _proxy._is_unknown
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


def _provider_by_content(method: Callable[..., Any]) -> Callable[..., Any]:
    """The servicer's `_get_provider_resource`, converted once per distinct provider: the engine sends the resource's
    provider (type, URN, name, properties) with every request, so 5,000 resources of one Docker provider meant 5,000
    conversions of the same properties. The view is shared read-only, like the resource's properties view."""
    views: dict[tuple[str, str, str, bytes], Any] = {}

    def call(self: Any, request: Any) -> Any:
        if not request.HasField("provider"):
            return None
        provider = request.provider
        key = (provider.type, provider.urn, provider.name, provider.properties.SerializeToString(deterministic=True))
        view = views.get(key)
        if view is None:
            if len(views) >= 1_000:
                views.clear()
            view = views[key] = method(self, request)
        return view

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
        if isinstance(key, slice):  # as the library's list proxy: the elements unchecked (an unknown is returned)
            return [_lazy(self._raw[i], self._path, i, check=False) for i in range(*key.indices(len(self._raw)))]
        value = self._wrapped[key]
        if value is _UNSET:
            value = _lazy(self._raw[key], self._path, key)
            self._wrapped[key] = value
        return value

    def __len__(self) -> int:
        return len(self._raw)

    def __iter__(self) -> Any:  # Sequence's, without probing for the IndexError that ends it
        return (self[i] for i in range(len(self._raw)))


def _lazy(value: Any, path: list[str], key: Any, check: bool = True) -> Any:
    if check and _proxy._is_unknown(value):
        raise _proxy.UnknownValueError(value, [*path, str(key)])
    if isinstance(value, dict):
        return _LazyDict(value, [*path, str(key)])
    if isinstance(value, list):
        return _LazyList(value, [*path, str(key)])
    return value


def lazy_unknown_checking_proxy(props: dict[str, Any]) -> Any:
    return _LazyDict(props, [])


class _StructDict(_proxy._DictProxy):
    """The library's view of a resource's properties (`unknown_checking_proxy(deserialize_properties(
    MessageToDict(struct)))`), read straight from the protobuf Struct: a value is converted when a policy first
    reads it, so the properties no policy reads (most of a container's, most of the strategy report for a given
    gate) are never converted at all. Reads behave as through the library's chain: the same values, an unknown
    raises `UnknownValueError` with the same path, a special-signature object (secret, asset, archive) is
    deserialized by the library's own code. "__target" (and a write) materializes the whole converted dict."""

    def __init__(self, fields: Any, path: list[str]) -> None:
        self._fields = fields
        self._path = path
        self._wrapped: dict[str, Any] = {}
        self._raw: dict[str, Any] | None = None

    def __getitem__(self, key: Any) -> Any:
        value = self._wrapped.get(key, _UNSET)
        if value is not _UNSET:
            return value
        if key == "__target":
            return self._target()
        if self._raw is not None:
            value = _lazy(self._raw[key], self._path, key)
        elif key in self._fields:  # (indexing a protobuf map with a missing key would insert an empty Value)
            value = _view(self._fields[key], self._path, key)
        else:
            raise KeyError(key)
        self._wrapped[key] = value
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self._target()[key] = value
        self._wrapped.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in (self._fields if self._raw is None else self._raw)

    def __len__(self) -> int:
        return len(self._fields if self._raw is None else self._raw)

    def __iter__(self) -> Any:
        return iter(self._fields if self._raw is None else self._raw)

    def _target(self) -> dict[str, Any]:
        if self._raw is None:
            self._raw = _deserialized(self._fields)
        return self._raw


class _StructList(_proxy._ListProxy):
    def __init__(self, values: Any, path: list[str]) -> None:
        self._values = values
        self._path = path
        self._wrapped: list[Any] = [_UNSET] * len(values)

    def __getitem__(self, key: Any) -> Any:
        if key == "__target":
            return [_deserialize_value(v) for v in self._values]
        if isinstance(key, slice):  # as the library's list proxy: the elements unchecked (an unknown is returned)
            return [_view(self._values[i], self._path, i, check=False) for i in range(*key.indices(len(self._values)))]
        value = self._wrapped[key]
        if value is _UNSET:
            value = _view(self._values[key], self._path, key)
            self._wrapped[key] = value
        return value

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Any:  # Sequence's, without probing for the IndexError that ends it
        return (self[i] for i in range(len(self._values)))


def _view(value: struct_pb2.Value, path: list[str], key: Any, check: bool = True) -> Any:
    """One Value as the library's chain would present it: a scalar (an unknown raises, when `check`), or a lazy view."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":  # the commonest kind, and the only one an unknown sentinel is: checked here directly
        text = value.string_value
        if check and text in _UNKNOWNS:
            raise _proxy.UnknownValueError(text, [*path, str(key)])
        return text
    if kind == "struct_value":
        fields = value.struct_value.fields
        if _SPECIAL_SIG in fields:  # a secret, asset or archive: the library's deserialization, then its proxy
            return _lazy(_deserialize_value(value), path, key, check)
        return _StructDict(fields, [*path, str(key)])
    if kind == "list_value":
        return _StructList(value.list_value.values, [*path, str(key)])
    return _lazy(_value(value), path, key, check)


def _deserialized(fields: Any) -> dict[str, Any]:
    from pulumi_policy.deserialize import deserialize_properties

    return deserialize_properties({key: _value(fields[key]) for key in fields})


def _deserialize_value(value: struct_pb2.Value) -> Any:
    from pulumi_policy.deserialize import _deserialize_property

    return _deserialize_property(_value(value))


def properties_view(message: struct_pb2.Struct) -> Any:
    """A resource's properties as the policies see them (see _StructDict)."""
    return _StructDict(message.fields, [])


def _analyze(self: Any, request: Any, _context: Any) -> Any:
    """The library's `_PolicyAnalyzerServicer.Analyze` (1.21.0), but with the loop over the pack's policies decided
    once per resource type and config (`_resource_steps`), and the resource's views (its properties, options and
    provider) built the first time a policy needs them instead of looked up per policy."""
    library = _library()
    self._configure_runtime_settings()
    response = library.proto.AnalyzeResponse()
    views: tuple[Any, Any, Any] | None = None
    for policy, enforcement_level in _resource_steps(self, library, request.type):
        if enforcement_level is None:
            response.not_applicable.append(library.proto.PolicyNotApplicable(policy_name=policy.name, reason="Policy does not implement validate"))
            continue
        report_violation = self._create_report_violation(response, policy.name, policy.description, enforcement_level, policy.severity)
        if views is None:
            views = (properties_view(request.properties), self._get_resource_options(request), self._get_provider_resource(request))
        props, opts, provider = views
        config = self._get_policy_config(policy.name)
        args = library.ResourceValidationArgs(request.type, props, request.urn, request.name, opts, provider, config,
                                              self._PolicyAnalyzerServicer__stack_tags)
        _run_policy(self, library, policy, args, report_violation, response)
    return response


_STEPS: dict[str, tuple[Any, Any, list[tuple[Any, Any]]]] = {}


def _resource_steps(self: Any, library: Any, resource_type: str) -> list[tuple[Any, Any]]:
    """What the library's Analyze loop does for a resource of this type, in its order: (policy, None) where it
    reports "Policy does not implement validate", (policy, level) where it runs the policy at that level. A disabled
    policy or a stack policy is left out, as the library passes over it; so is a policy that says it reports nothing
    on this type (`framework.ResourceGatePolicy.skips`), which the library would call for nothing. Decided once per
    type for the pack's current configuration: `Configure` replaces both of the servicer's config dicts, so the
    cache holds them and is rebuilt when they are no longer the servicer's."""
    config = self._PolicyAnalyzerServicer__policy_pack_config
    levels = self._PolicyAnalyzerServicer__policy_pack_config_enforcement_level
    cached = _STEPS.get(resource_type)
    if cached is not None and cached[0] is config and cached[1] is levels:
        return cached[2]
    steps: list[tuple[Any, Any]] = []
    for policy in self._PolicyAnalyzerServicer__policies:
        enforcement_level = self._get_enforcement_level(policy)
        if enforcement_level == library.EnforcementLevel.DISABLED or not isinstance(policy, library.ResourceValidationPolicy):
            continue
        if not policy.has_validation():
            steps.append((policy, None))
            continue
        skips = getattr(policy, "skips", None)
        if skips is not None and skips(resource_type, self._get_policy_config(policy.name)):
            continue
        if enforcement_level == library.EnforcementLevel.REMEDIATE:
            enforcement_level = library.EnforcementLevel.MANDATORY
        steps.append((policy, enforcement_level))
    if len(_STEPS) > 1_000:
        _STEPS.clear()
    _STEPS[resource_type] = (config, levels, steps)
    return steps


def _analyze_stack(self: Any, request: Any, _context: Any) -> Any:
    """The library's `AnalyzeStack` (1.21.0), but with the stack's resources (PolicyResource objects linked to their
    parents and dependencies) built once per request, the first time a policy needs them, and shared read-only by
    every stack policy: the library rebuilt all of them per policy (13 times 5,000 at 1,000 workloads)."""
    library = _library()
    self._configure_runtime_settings()
    response = library.proto.AnalyzeResponse()
    resources: list[Any] | None = None
    for policy in self._PolicyAnalyzerServicer__policies:
        enforcement_level = self._get_enforcement_level(policy)
        if enforcement_level == library.EnforcementLevel.DISABLED or not isinstance(policy, library.StackValidationPolicy):
            continue
        if enforcement_level == library.EnforcementLevel.REMEDIATE:
            enforcement_level = library.EnforcementLevel.MANDATORY
        report_violation = self._create_report_violation(response, policy.name, policy.description, enforcement_level, policy.severity)
        if resources is None:
            resources = _stack_resources(self, library, request)
        args = library.StackValidationArgs(resources, self._get_policy_config(policy.name), self._PolicyAnalyzerServicer__stack_tags)
        _run_policy(self, library, policy, args, report_violation, response)
    return response


def _stack_resources(self: Any, library: Any, request: Any) -> list[Any]:
    """The library's construction of the stack's PolicyResources, parents and dependencies linked by URN."""
    built = []
    for r in request.resources:
        props = properties_view(r.properties)
        resource = library.PolicyResource(r.type, props, r.urn, r.name, self._get_resource_options(r), self._get_provider_resource(r),
                                          None, [], {})
        built.append((resource, r.parent, list(r.dependencies), {k: list(v.urns) for k, v in r.propertyDependencies.items()}))
    by_urn = {resource.urn: resource for resource, _, _, _ in built}
    for resource, parent, dependencies, property_dependencies in built:
        if parent is not None and parent in by_urn:
            resource.parent = by_urn[parent]
        resource.dependencies.extend(by_urn[d] for d in dependencies if d in by_urn)
        for key, urns in property_dependencies.items():
            resource.property_dependencies[key] = [by_urn[d] for d in urns if d in by_urn]
    return [resource for resource, _, _, _ in built]


_RUNTIME_ENV = ("PULUMI_CONFIG", "PULUMI_PROJECT", "PULUMI_STACK", "PULUMI_DRY_RUN", "PULUMI_ORGANIZATION")
_RUNTIME: dict[tuple[str | None, ...], tuple[dict[str, Any], Any]] = {}


def _configure_runtime_settings(self: Any) -> None:
    """The library's (1.21.0): the stack config and runtime settings from the environment, set again for each
    request (gRPC runs each in a fresh context, where the SDK's settings are context variables), but parsed and
    built once per distinct environment instead of per request (a third of an empty pack's time per resource)."""
    import pulumi

    key = tuple(os.environ.get(name) for name in _RUNTIME_ENV)
    cached = _RUNTIME.get(key)
    if cached is None:
        settings = None
        if key[1] is not None and key[2] is not None and key[3] is not None:
            settings = pulumi.runtime.Settings(project=key[1], stack=key[2], dry_run=key[3] == "true",
                                               organization="organization" if key[4] is None else key[4])
        _RUNTIME.clear()
        cached = _RUNTIME[key] = (pulumi.runtime.get_config_env(), settings)
    config_env, settings = cached
    for k, v in config_env.items():
        pulumi.runtime.set_config(k, v)
    if settings is not None:
        pulumi.runtime.configure(settings)


def _run_policy(self: Any, library: Any, policy: Any, args: Any, report_violation: Any, response: Any) -> None:
    """One policy's validate, with the library's handling of async policies, unknown values and not-applicable."""
    try:
        result = policy.validate(args, report_violation)
        if result is not None and library.isawaitable(result):  # (a gate returns None: no awaitable to test for)
            loop = asyncio.new_event_loop()
            task = asyncio.Task(result, loop=loop)
            loop.run_until_complete(task)
            loop.close()
    except library.UnknownValueError as e:
        name, version = self._PolicyAnalyzerServicer__policy_pack_name, self._PolicyAnalyzerServicer__policy_pack_version
        response.diagnostics.append(library.proto.AnalyzeDiagnostic(
            policyName=policy.name, policyPackName=name, policyPackVersion=version,
            message=f"can't run policy '{policy.name}' from policy pack '{name}@v{version}' during preview: {e.message}",
            urn="", description=policy.description, enforcementLevel=self._map_enforcement_level(library.EnforcementLevel.ADVISORY)))
    except library._NotApplicableError as e:
        response.not_applicable.append(library.proto.PolicyNotApplicable(policy_name=policy.name, reason=e.reason or ""))


def _library() -> Any:
    from pulumi_policy import policy as library

    return library


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
    servicer = library._PolicyAnalyzerServicer
    servicer._get_provider_resource = _provider_by_content(servicer._get_provider_resource)  # type: ignore[method-assign]
    servicer._configure_runtime_settings = _configure_runtime_settings  # type: ignore[method-assign]
    servicer.Analyze = _analyze  # type: ignore[method-assign]
    servicer.AnalyzeStack = _analyze_stack  # type: ignore[method-assign]
    return True
