"""The prod stack (kubernetes target) under mocks and its manifests."""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

import pytest

from offline.manifests import manifests
from offline.program import RecordedResource, run_stack
from tests.conftest import MINIMAL

PROD = "prod"

KUBERNETES_MINIMAL: dict[str, Any] = {
    **copy.deepcopy(MINIMAL),
    "target": "kubernetes",
    "network": {"name": "t"},
}


@pytest.fixture
def k8s_minimal() -> dict[str, Any]:
    return copy.deepcopy(KUBERNETES_MINIMAL)


@pytest.fixture(scope="session")
def prod_resources() -> list[RecordedResource]:
    return run_stack(PROD)


@pytest.fixture(scope="session")
def prod_manifests(prod_resources: list[RecordedResource]) -> list[dict[str, Any]]:
    return manifests(prod_resources)


def by_kind(documents: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """kind -> metadata.name -> manifest."""
    found: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for manifest in documents:
        found[manifest["kind"]][manifest["metadata"]["name"]] = manifest
    return found
