"""e2e.update's step planning (pure, no daemon): the sequence `pulumi up` takes between two recordings."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from components.targets.update_rules import UnclassifiedInputError
from e2e.plans import UnsupportedPropertyError, _records
from e2e.stack import record_changed_stack, record_stack
from e2e.update import plan_update


def _applied(stack: str) -> dict[str, dict[str, Any]]:
    return {r["urn"]: r for r in _records(record_stack(stack))}


def _steps(stack: str, new: list[Any]) -> list[tuple[str, str]]:
    return [(s.name, s.action) for s in plan_update(_applied(stack), _records(new))]


def test_the_same_recording_takes_no_step() -> None:
    assert _steps("dev", record_stack("dev")) == []


def test_a_config_change_updates_only_the_gateway_config_command() -> None:
    def change(values: dict[str, Any]) -> None:
        values["rate_limits"][0]["rps"] = 7

    assert _steps("dev", record_changed_stack("dev", change)) == [("shop-dev-gateway-config", "update")]


def test_an_image_change_replaces_the_replicas_in_order_with_their_pauses() -> None:
    def change(values: dict[str, Any]) -> None:
        next(w for w in values["workloads"] if w["name"] == "api")["image"] = "ghcr.io/acme/shop-api:1.8.3"

    assert _steps("staging", record_changed_stack("staging", change)) == [
        ("shop-staging-api-0", "replace"), ("shop-staging-api-0-settle", "replace"), ("shop-staging-api-1", "replace")]


def test_a_new_gateway_container_gets_its_config_again() -> None:
    """The service proxies run the gateway's image, user and resources (README): they are replaced with it, and
    each one's config is delivered again after its new container."""
    def change(values: dict[str, Any]) -> None:
        values["gateway"]["resources"]["cpu"] = 0.75

    steps = _steps("dev", record_changed_stack("dev", change))
    nginxes = ("shop-dev-api-proxy", "shop-dev-auth-proxy", "shop-dev-gateway")
    assert sorted(steps) == sorted((name, "replace") for nginx in nginxes for name in (nginx, f"{nginx}-config")), steps
    assert all(steps.index((nginx, "replace")) < steps.index((f"{nginx}-config", "replace")) for nginx in nginxes), steps


def test_a_call_limit_change_updates_only_the_callee_proxy_config_command() -> None:
    def change(values: dict[str, Any]) -> None:
        next(w for w in values["workloads"] if w["name"] == "api")["calls"][0]["limit_rps"] = 50

    assert _steps("dev", record_changed_stack("dev", change)) == [("shop-dev-auth-proxy-config", "update")]


def test_a_memory_change_is_an_update_in_place() -> None:
    def change(values: dict[str, Any]) -> None:
        next(w for w in values["workloads"] if w["name"] == "web")["resources"]["memory_mb"] = 300

    assert _steps("dev", record_changed_stack("dev", change)) == [("shop-dev-web-0", "update")]


def test_a_removed_workload_is_deleted_last() -> None:
    def change(values: dict[str, Any]) -> None:
        values["routes"] = [r for r in values["routes"] if r["name"] != "static"]
        values["traffic"].pop("static")
        values["workloads"] = [w for w in values["workloads"] if w["name"] != "static"]

    steps = _steps("dev", record_changed_stack("dev", change))
    # The container, then the gateway's link to it (the network outlives its last member).
    assert steps[-2:] == [("shop-dev-static-0", "delete"), ("shop-dev.ingress.static", "delete")], steps
    # The gateway leaves that link, and pulumi-docker replaces a container whose networks change (README: Updates).
    assert steps[:2] == [("shop-dev-gateway", "replace"), ("shop-dev-gateway-config", "replace")], steps


def test_an_input_nobody_can_classify_fails_the_update_before_any_step() -> None:
    new = copy.deepcopy(_records(record_stack("dev")))
    container = next(r for r in new if r["type"] == "docker:index/container:Container")
    container["inputs"]["cgroupParent"] = "netopt"  # a real provider input, absent from the schema table
    with pytest.raises(UnclassifiedInputError, match="cgroupParent"):
        plan_update(_applied("dev"), new)
    container["inputs"]["noSuchInput"] = 1.0
    with pytest.raises(UnsupportedPropertyError, match="noSuchInput"):
        plan_update(_applied("dev"), new)
