"""Shared fixtures: the shipped stacks as raw config and as validated specs, and a minimal valid config."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.plan.build import Plan, build_plan
from components.plan.deployment import deployment_of
from components.resources.pulumi_config import namespace_values
from components.spec.schema import Spec
from components.spec.validation import parse_spec
from offline.stack_config import cli_config, stack_file

pytest_plugins = ("tests.strict_skips",)  # under CI a skip fails

STACKS = ("dev", "staging", "prod")


def stack_raw(stack: str) -> dict[str, Any]:
    return namespace_values(cli_config(stack_file(stack)))


def stack_spec(stack: str) -> Spec:
    return parse_spec(stack_raw(stack))


def plan_of(spec: Spec) -> Plan:
    """The plan the program builds for a spec: under its target's balancing mode (`balancing.target_balancing`,
    the one mapping; tests never write a second)."""
    return build_plan(spec, deployment_of(spec))


MINIMAL: dict[str, Any] = {
    "environment": "test",
    "target": "docker",
    "network": {"name": "t", "subnet": "10.9.0.0/24"},
    "gateway": {"image": "nginx:1.27.3"},
    "workloads": [
        {"name": "api", "image": "api:1", "port": 8000, "replicas": 2, "response_time_ms": 50, "max_concurrency": 10},
        {"name": "web", "image": "web:1", "port": 3000, "response_time_ms": 20, "max_concurrency": 20},
    ],
    "routes": [
        {"name": "api", "match": {"path": "/api/"}, "backends": [{"workload": "api"}], "rate_limit": "per_ip"},
        {"name": "web", "match": {"path": "/"}, "backends": [{"workload": "web"}]},
    ],
    "rate_limits": [{"name": "per_ip", "rps": 10, "burst": 5}],
}


@pytest.fixture
def minimal() -> dict[str, Any]:
    return copy.deepcopy(MINIMAL)
