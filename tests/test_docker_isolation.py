"""Docker isolation by construction: two containers share a network only where the graph declares a flow.

Read off the resources the program registers (under Pulumi's mocks), not off `docker_links`: which networks
each container joins, at which addresses. The real dockerd proof (connect / refused from inside every
container) is tests/e2e/test_stacks_e2e.py.
"""

from __future__ import annotations

import ipaddress
import json
from collections import defaultdict
from typing import Any

import pytest

from components.spec.validation import SpecError, parse_spec
from offline.program import run_program
from offline.stack_config import cli_config, stack_file

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"


def _docker_config(stack: str) -> dict[str, str]:
    config = {**cli_config(stack_file(stack)), "netopt:target": "docker"}
    gateway = json.loads(config["netopt:gateway"])
    config["netopt:gateway"] = json.dumps({**gateway, "replicas": 1})  # one Docker host publishes its port once
    return config


def _role(inputs: dict[str, Any]) -> str:
    labels = {x["label"]: x["value"] for x in inputs["labels"]}
    return "gateway" if labels.get("netopt.role") == "gateway" else labels["netopt.workload"]


def _declared(config: dict[str, str]) -> set[frozenset[str]]:
    """Unordered pairs the stack file declares: the gateway with each routed workload, each caller with its callee."""
    routes = json.loads(config["netopt:routes"])
    workloads = json.loads(config["netopt:workloads"])
    pairs = {frozenset({"gateway", b["workload"]}) for r in routes for b in r["backends"]}
    return pairs | {frozenset({w["name"], c["workload"]}) for w in workloads for c in w.get("calls", [])}


@pytest.mark.parametrize("stack", ["dev", "staging", "boutique"])
def test_containers_share_a_network_exactly_where_a_flow_is_declared(stack: str) -> None:
    config = _docker_config(stack)
    records = run_program(config, stack, preview=False)
    networks = {r.inputs["name"]: r.inputs for r in records if r.type == NETWORK}
    members: dict[str, set[str]] = defaultdict(set)
    addresses: dict[str, list[str]] = defaultdict(list)
    for rec in (r for r in records if r.type == CONTAINER):
        for attachment in rec.inputs.get("networksAdvanced") or []:
            members[attachment["name"]].add(_role(rec.inputs))
            addresses[attachment["name"]].append(attachment.get("ipv4Address", ""))
        if not rec.inputs.get("networksAdvanced"):
            assert rec.inputs["networkMode"] == "none", rec.inputs["name"]
    edge = [name for name, net in networks.items() if not net["internal"]]
    assert len(edge) == 1 and members[edge[0]] == {"gateway"}, "only the gateway is on the one non-internal network"
    shared = {frozenset(roles) for name, roles in members.items() if name not in edge}
    assert all(len(pair) == 2 for pair in shared), shared
    assert shared == _declared(config)
    for name, ips in addresses.items():
        if name in edge:
            continue
        subnet = ipaddress.ip_network(networks[name]["ipamConfigs"][0]["subnet"])
        assert len(set(ips)) == len(ips) and all(ipaddress.ip_address(ip) in subnet for ip in ips), (name, ips)
    subnets = [ipaddress.ip_network(n["ipamConfigs"][0]["subnet"]) for name, n in networks.items() if name not in edge]
    declared = ipaddress.ip_network(json.loads(config["netopt:network"])["subnet"])
    assert all(s.subnet_of(declared) for s in subnets)  # type: ignore[arg-type]
    assert not any(a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1:])


@pytest.mark.parametrize("stack", ["dev", "boutique"])
def test_a_caller_reaches_each_callee_by_its_name_on_their_shared_network(stack: str) -> None:
    """Docker's embedded DNS answers a network alias to the containers on that network: every caller (the gateway for
    a routed workload) shares a network on which every replica of the callee carries the callee's name as alias,
    the name callers are configured with (the boutique's `REDIS_ADDR: redis-cart:6379`)."""
    config = _docker_config(stack)
    records = [r for r in run_program(config, stack, preview=False) if r.type == CONTAINER]
    attached: dict[str, dict[str, list[set[str]]]] = defaultdict(lambda: defaultdict(list))  # network -> role -> aliases per container
    for rec in records:
        for attachment in rec.inputs.get("networksAdvanced") or []:
            attached[attachment["name"]][_role(rec.inputs)].append(set(attachment.get("aliases") or []))
    workloads = json.loads(config["netopt:workloads"])
    replicas = {w["name"]: w.get("replicas", 1) for w in workloads}
    flows = {("gateway", b["workload"]) for r in json.loads(config["netopt:routes"]) for b in r["backends"]}
    flows |= {(w["name"], c["workload"]) for w in workloads for c in w.get("calls", [])}
    for caller, callee in sorted(flows):
        shared = [net for net, roles in attached.items() if caller in roles and callee in roles]
        assert len(shared) == 1, (caller, callee, shared)
        aliases = attached[shared[0]][callee]
        assert len(aliases) == replicas[callee] and all(callee in names for names in aliases), (caller, callee, aliases)


def test_a_subnet_too_small_for_the_graph_says_how_large_it_must_be(minimal: dict[str, Any]) -> None:
    minimal["network"]["subnet"] = "10.9.0.0/29"
    with pytest.raises(SpecError) as caught:
        parse_spec(minimal)
    message = {issue.path: issue.message for issue in caught.value.issues}["netopt:network.subnet"]
    assert "too small for the service graph" in message and "use a /28 or larger (e.g. 10.9.0.0/28)" in message, message
