"""e2e.apply's translation of recorded pulumi-docker inputs (no Docker needed)."""
from __future__ import annotations

import copy

import pytest

from e2e.apply import (
    ContainerPlan,
    NetworkPlan,
    UnsupportedPropertyError,
    UnsupportedResourceError,
    parse_duration,
    plan_docker_resources,
)
from e2e.sample_stack import BACKENDS, EDGE, GATEWAY, INTERNAL, recorded_stack


def _plans() -> dict[str, ContainerPlan | NetworkPlan]:
    return {p.name: p for p in plan_docker_resources(recorded_stack(18080))}  # type: ignore[misc]


def test_sample_stack_translates_one_to_one() -> None:
    plans = _plans()
    internal = plans[INTERNAL]
    assert isinstance(internal, NetworkPlan)
    assert internal.kwargs["internal"] is True
    assert internal.kwargs["ipam"]["Config"] == [{"Subnet": "10.89.1.0/24", "Gateway": "10.89.1.1"}]
    assert internal.kwargs["labels"] == {"netopt.role": "internal"}

    api0 = plans["api-0"]
    assert isinstance(api0, ContainerPlan)
    assert api0.host["mem_limit"] == 64 * 1024 * 1024
    assert api0.host["nano_cpus"] == 500_000_000
    assert api0.host["cap_drop"] == ["ALL"] and api0.host["read_only"] is True
    assert api0.host["restart_policy"] == {"Name": "unless-stopped"}
    assert api0.host["tmpfs"] == {"/tmp": "rw,noexec,nosuid,size=16m"}
    assert api0.create["user"] == "65534:65534"
    assert api0.create["healthcheck"]["interval"] == 500_000_000
    assert api0.create["healthcheck"]["retries"] == 3
    assert api0.networks == [(INTERNAL, {"aliases": ["api"], "ipv4_address": BACKENDS["api-0"]})]
    assert api0.wait and api0.must_run

    gw = plans[GATEWAY]
    assert isinstance(gw, ContainerPlan)
    assert [n for n, _ in gw.networks] == [EDGE, INTERNAL]
    assert gw.create["ports"] == [(8080, "tcp")]
    assert gw.host["port_bindings"] == {"8080/tcp": [("127.0.0.1", 18080)]}
    assert gw.uploads[0].path == "/etc/nginx/nginx.conf" and gw.uploads[0].mode == 0o644
    assert gw.create["use_config_proxy"] is False


def test_order_networks_before_containers_and_components_skipped() -> None:
    kinds = [type(p).__name__ for p in plan_docker_resources(recorded_stack(1))]
    assert kinds == ["NetworkPlan", "NetworkPlan", "ContainerPlan", "ContainerPlan", "ContainerPlan"]


@pytest.mark.parametrize("where, key", [
    ("container", "shmSizeTypo"),
    ("container", "gpus"),
    ("network", "ingress"),
    ("network", "scope"),
    ("healthcheck", "startInterval"),
    ("healthcheck", "intervall"),
    ("networksAdvanced", "macAddress"),
    ("networksAdvanced", "ipv4address"),
    ("ports", "hostIp"),
    ("uploads", "mode"),
    ("capabilities", "add"),
    ("labels", "key"),
])
def test_unknown_or_unsupported_property_raises(where: str, key: str) -> None:
    res = recorded_stack(18080)
    by_name = {r["name"]: r for r in res}
    gw = by_name[GATEWAY]["inputs"]
    target = {
        "container": gw,
        "network": by_name[INTERNAL]["inputs"],
        "healthcheck": gw["healthcheck"],
        "networksAdvanced": gw["networksAdvanced"][0],
        "ports": gw["ports"][0],
        "uploads": gw["uploads"][0],
        "capabilities": gw["capabilities"],
        "labels": gw["labels"][0],
    }[where]
    target[key] = "1.2.3.4" if key != "ingress" else True
    with pytest.raises(UnsupportedPropertyError, match=key):
        plan_docker_resources(res)


def test_harmless_values_of_unsupported_properties_pass() -> None:
    """Unset/empty values of properties the applier does not support change nothing in what it would create."""
    res = recorded_stack(18080)
    gw = next(r for r in res if r["name"] == GATEWAY)["inputs"]
    gw.update({"gpus": None, "attach": False, "devices": []})
    assert plan_docker_resources(res) == plan_docker_resources(recorded_stack(18080))


def test_unknown_resource_type_raises() -> None:
    res = [*recorded_stack(18080), {"type": "docker:index/remoteImage:RemoteImage", "name": "x", "inputs": {"name": "nginx"}}]
    with pytest.raises(UnsupportedResourceError):
        plan_docker_resources(res)
    res = [*recorded_stack(18080), {"type": "kubernetes:core/v1:Service", "name": "x", "inputs": {}}]
    with pytest.raises(UnsupportedResourceError):
        plan_docker_resources(res)


@pytest.mark.parametrize("key, value", [
    ("memory", 64.5),
    ("cpus", "half"),
    ("restart", "sometimes"),
    ("healthcheck", {"tests": ["CMD", "true"], "interval": "5 seconds"}),
    ("uploads", [{"file": "relative.conf", "content": "x"}]),
    ("uploads", [{"file": "/a", "content": "x", "contentBase64": "eA=="}]),
    ("ports", [{"external": 80.0}]),
])
def test_bad_values_raise(key: str, value: object) -> None:
    res = copy.deepcopy(recorded_stack(18080))
    res[-1]["inputs"][key] = value
    with pytest.raises(UnsupportedPropertyError):
        plan_docker_resources(res)


@pytest.mark.parametrize("text, ns", [
    ("5s", 5 * 10**9), ("1500ms", 1_500_000_000), ("1m30s", 90 * 10**9), ("0", 0), ("2h", 7200 * 10**9),
    ("0.5s", 500_000_000), ("250us", 250_000),
])
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "5", "s", "5 s", "5x", "-1s", "1s2"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UnsupportedPropertyError):
        parse_duration(text)
