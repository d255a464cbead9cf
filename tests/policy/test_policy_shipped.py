"""The shipped stacks pass their environment's gates, at the levels each environment configures."""

from __future__ import annotations

import json

import pytest

from offline.analyzer import Analysis, policy_config_path
from policies.catalog import GATES

from .overlays import SHIPPED

CATEGORY = {gate.name: gate.category for gate in GATES}
EXPECTED_LEVEL = {  # the integrity gates verify the evidence the others judge: mandatory everywhere; drift prompts a re-plan
    "dev": {"integrity": "mandatory", **dict.fromkeys(("score", "capacity", "structure", "security", "observed"), "advisory")},
    "staging": {"integrity": "mandatory", "score": "advisory", "capacity": "advisory", "structure": "mandatory", "security": "mandatory",
                "observed": "advisory"},
    "prod": {**dict.fromkeys(("integrity", "score", "capacity", "structure", "security"), "mandatory"), "observed": "advisory"},
}
# Per-gate exceptions to the category's level: a workload without any probe (`health: {kind: none}`) is refused in
# prod only (issue: advisory elsewhere); a probe that cannot run (health-probes-valid) stays mandatory in staging.
# grpc-replicas-per-call stays advisory in prod: it flags every multi-replica gRPC callee behind a proxy on Kubernetes
# without a mesh (the proxy reaches the pods through their ClusterIP Service), a known gap (policies/README.md)
EXCEPTIONS = {("staging", "health-checks"): "advisory", ("staging", "grpc-replicas-per-call"): "advisory",
              ("prod", "grpc-replicas-per-call"): "advisory"}


@pytest.mark.parametrize("stack", SHIPPED)
def test_shipped_stack_has_no_mandatory_violation(shipped_analyses: dict[str, Analysis], stack: str) -> None:
    analysis = shipped_analyses[stack]
    assert analysis.mandatory() == []
    # Stronger: the shipped stacks pass every gate, advisory ones included, so a new advisory finding is visible.
    assert [f"{d.policy}: {d.message}" for d in analysis.diagnostics] == []
    assert analysis.analyzed > 10


@pytest.mark.parametrize("stack", SHIPPED)
def test_each_environment_sets_the_documented_level_per_category(shipped_analyses: dict[str, Analysis], stack: str) -> None:
    analysis = shipped_analyses[stack]
    assert set(analysis.policies) == set(CATEGORY)
    for name, policy in analysis.policies.items():
        assert policy["level"] == EXCEPTIONS.get((stack, name), EXPECTED_LEVEL[stack][CATEGORY[name]]), name


def test_config_files_name_every_policy_with_explicit_levels() -> None:
    for environment in EXPECTED_LEVEL:
        document = json.loads(policy_config_path(environment).read_text())
        assert set(document) == set(CATEGORY), environment
        assert all("enforcementLevel" in entry for entry in document.values())


def test_kubernetes_gates_are_not_applicable_on_docker_stacks(shipped_analyses: dict[str, Analysis]) -> None:
    for stack in ("dev", "staging"):  # docker target
        reasons = {n.policy: n.reason for n in shipped_analyses[stack].not_applicable}
        assert "no Kubernetes Deployments" in reasons["k8s-default-deny-network-policy"]
        assert "no Kubernetes Deployments" in reasons["k8s-pod-disruption-budget"]
    prod = {n.policy for n in shipped_analyses["prod"].not_applicable}  # kubernetes target
    assert "k8s-default-deny-network-policy" not in prod
    assert "backends-internal-only" in prod


def test_the_pack_makes_no_engine_calls(shipped_analyses: dict[str, Analysis]) -> None:
    # The Engine service the pack is given records Log calls; pulumi-policy never connects to it.
    assert all(analysis.engine_log == [] for analysis in shipped_analyses.values())
