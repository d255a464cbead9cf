"""policies/fastpath_patch.py's Analyze and AnalyzeStack answer every request of a shipped stack byte for byte as the
library's own servicer methods do, in this process (no gRPC): with the shipped policy config, with a config the
framework rejects (a typo'd threshold: its violation on every resource, even those of types the gate does not read),
with a gate disabled, and after the pack is configured again (the per-type steps are decided anew)."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from google.protobuf import empty_pb2
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer

from offline.analyzer import _providers, _requests, _stack_resource, load_policy_config, policy_config_path, reconcile_policy_config
from offline.program import run_stack
from policies import fastpath_patch
from policies.catalog import all_policies
from policies.model import DOCKER_CONTAINER, K8S_WORKLOADS

PROJECT = "netopt"


@pytest.fixture(scope="module", params=["dev", "prod"])  # the docker and the kubernetes target
def shipped(request: pytest.FixtureRequest) -> tuple[list[analyzer_pb2.AnalyzeRequest], analyzer_pb2.AnalyzeStackRequest]:
    resources = run_stack(request.param)
    ordered = [_stack_resource(resources, request.param, PROJECT), *resources]
    return _requests(ordered, _providers(resources, request.param, PROJECT))


@pytest.fixture
def servicer(monkeypatch: pytest.MonkeyPatch) -> Iterator[_PolicyAnalyzerServicer]:
    for name, value in (("PULUMI_PROJECT", PROJECT), ("PULUMI_STACK", "prod"), ("PULUMI_DRY_RUN", "true"), ("PULUMI_CONFIG", "{}")):
        monkeypatch.setenv(name, value)
    yield _PolicyAnalyzerServicer("netopt", "0.0.1", all_policies(), EnforcementLevel.MANDATORY)


def _configure(servicer: _PolicyAnalyzerServicer, overrides: Mapping[str, Mapping[str, Any]]) -> None:
    document = load_policy_config(policy_config_path("prod"))
    reconciled = reconcile_policy_config(servicer.GetAnalyzerInfo(empty_pb2.Empty(), None), document)  # type: ignore[no-untyped-call]
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    for name, values in reconciled.items():
        values = {**values, **overrides.get(name, {})}
        entry = request.policyConfig[name]
        entry.enforcementLevel = analyzer_pb2.EnforcementLevel.Value(values["enforcementLevel"].upper())
        entry.properties.update({k: v for k, v in values.items() if k != "enforcementLevel"})
    servicer.Configure(request, None)  # type: ignore[no-untyped-call]


def _answers(method: Any, servicer: _PolicyAnalyzerServicer, request: Any) -> bytes:
    """One request answered in a context of its own, as gRPC runs each (the runtime settings are context variables)."""
    response = contextvars.Context().run(method, servicer, request, None)
    return bytes(response.SerializeToString(deterministic=True))


def _compare(servicer: _PolicyAnalyzerServicer, requests: list[analyzer_pb2.AnalyzeRequest],
             stack: analyzer_pb2.AnalyzeStackRequest) -> list[str]:
    """Assert both paths answer alike; the policies of the diagnostics, one entry per diagnostic."""
    policies: list[str] = []
    for request in requests:
        fast = _answers(fastpath_patch._analyze, servicer, request)
        assert fast == _answers(_PolicyAnalyzerServicer.Analyze, servicer, request), request.urn
        policies += [d.policyName for d in analyzer_pb2.AnalyzeResponse.FromString(fast).diagnostics]
    assert _answers(fastpath_patch._analyze_stack, servicer, stack) == _answers(_PolicyAnalyzerServicer.AnalyzeStack, servicer, stack)
    return policies


def test_analyze_answers_as_the_library_under_the_shipped_config(servicer: _PolicyAnalyzerServicer, shipped: Any) -> None:
    _configure(servicer, {})
    assert len(shipped[0]) > 20 and len({r.type for r in shipped[0]}) > 5
    _compare(servicer, *shipped)


def test_a_rejected_config_is_reported_on_every_resource_then_a_new_config_is_obeyed(servicer: _PolicyAnalyzerServicer,
                                                                                       shipped: Any) -> None:
    requests, stack = shipped
    _configure(servicer, {"images-pinned": {"forbiddenTagz": ["latest"]}, "min-replicas": {"enforcementLevel": "disabled"}})
    policies = _compare(servicer, requests, stack)
    assert policies.count("images-pinned") == len(requests), "the config error, on every resource whatever its type"
    assert "min-replicas" not in policies
    network = next(r for r in requests if r.type not in (DOCKER_CONTAINER, *K8S_WORKLOADS))
    response = analyzer_pb2.AnalyzeResponse.FromString(_answers(fastpath_patch._analyze, servicer, network))
    assert [d.policyName for d in response.diagnostics] == ["images-pinned"]
    assert "unknown property 'forbiddenTagz'" in response.diagnostics[0].message

    _configure(servicer, {"min-replicas": {"minimum": 99}})  # configured again: the typo fixed, min-replicas back and stricter
    policies = _compare(servicer, requests, stack)
    assert "images-pinned" not in policies
    assert policies.count("min-replicas") >= 1
