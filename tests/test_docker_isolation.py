"""Docker isolation by construction: who could open a connection to whom equals the declared graph, one way.

Read off the resources the program registers (under Pulumi's mocks), not off `docker_links`: which networks each
container joins at which address and alias, and where each nginx listens (the config its reload Command
delivers, parsed with crossplane). A backend is taken to listen on every address (an application usually does); a container reaches
another where they share a network and the other listens on its address there. The expectation is written out
from the stack file alone (`_expected`): the gateway → each routed workload, each caller → its callee's service
proxy (found by the callee's name), each proxy → the replicas it balances (the callee, or the versions of its
split), at exactly one address each. Proxies could also reach their callers' replicas (a bridge is not
directional and backends listen everywhere): asserted to be exactly that, nothing more. The real dockerd proof,
from inside every container, is tests/e2e/test_stacks_e2e.py.
"""

from __future__ import annotations

import ipaddress
import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import crossplane
import pytest

from components.spec.validation import SpecError, parse_spec
from offline.program import RecordedResource, run_program
from offline.stack_config import cli_config, stack_file

CONTAINER = "docker:index/container:Container"
COMMAND = "command:local:Command"
NETWORK = "docker:index/network:Network"
EVERY_ADDRESS = "*"


def _docker_config(stack: str) -> dict[str, str]:
    config = {**cli_config(stack_file(stack)), "netopt:target": "docker"}
    gateway = json.loads(config["netopt:gateway"])
    config["netopt:gateway"] = json.dumps({**gateway, "replicas": 1})  # one Docker host publishes its port once
    return config


def _role(inputs: dict[str, Any]) -> str:
    labels = {x["label"]: x["value"] for x in inputs["labels"]}
    if labels.get("netopt.role") == "gateway":
        return "gateway"
    if labels.get("netopt.role") == "service-proxy":
        return f"{labels['netopt.fronts']} proxy"
    return str(labels["netopt.workload"])


def _expected(config: dict[str, str]) -> tuple[set[tuple[str, str, int]], dict[str, set[str]], dict[str, set[str]]]:
    """From the stack file: (source role, destination role, port) of every hop; each proxy's callers; each caller
    workload's callees (the names it dials)."""
    workloads = {w["name"]: w for w in json.loads(config["netopt:workloads"])}
    hops = {("gateway", b["workload"], int(workloads[b["workload"]]["port"])) for r in json.loads(config["netopt:routes"]) for b in r["backends"]}
    callers: dict[str, set[str]] = defaultdict(set)
    callees: dict[str, set[str]] = defaultdict(set)
    for name, w in workloads.items():
        for call in w.get("calls", []):
            callee = workloads[call["workload"]]
            hops.add((name, f"{callee['name']} proxy", int(callee["port"])))
            split = (callee.get("traffic_policy") or {}).get("split") or [{"workload": callee["name"]}]
            hops |= {(f"{callee['name']} proxy", v["workload"], int(workloads[v["workload"]]["port"])) for v in split}
            callers[f"{callee['name']} proxy"].add(name)
            callees[name].add(callee["name"])
    return hops, callers, callees


def _listens(content: str) -> list[tuple[str, int]]:
    """(address or EVERY_ADDRESS, port) of every `listen` of an nginx config (http and stream servers)."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "nginx.conf"
        path.write_text(content)
        parsed = crossplane.parse(str(path), single=True, check_ctx=False, check_args=False)
    assert not parsed["errors"], parsed["errors"]
    found = []

    def walk(block: list[dict[str, Any]]) -> None:
        for directive in block:
            if directive["directive"] == "listen":
                address, _, port = directive["args"][0].rpartition(":")
                found.append((address or EVERY_ADDRESS, int(port)))
            walk(directive.get("block", []))

    walk(parsed["config"][0]["parsed"])
    return found


def _reachable(records: list[RecordedResource], config: dict[str, str]) -> dict[tuple[str, str], set[tuple[str, int]]]:
    """(source container, destination container) -> the (address, port) pairs the source could connect to."""
    workloads = {w["name"]: w for w in json.loads(config["netopt:workloads"])}
    containers = [r.inputs for r in records if r.type == CONTAINER]
    on: dict[str, dict[str, str]] = {c["name"]: {n["name"]: n.get("ipv4Address", "") for n in c.get("networksAdvanced") or []} for c in containers}
    delivered = {r.inputs["environment"]["NETOPT_PROXY"]: r.inputs["stdin"] for r in records
                 if r.type == COMMAND and "NETOPT_PROXY" in (r.inputs.get("environment") or {})}
    listening: dict[str, list[tuple[str, int]]] = {}
    for c in containers:
        if "uploads" in c:  # the gateway and the service proxies: where the config their Command delivers listens
            listening[c["name"]] = _listens(delivered[c["name"]])
        else:
            listening[c["name"]] = [(EVERY_ADDRESS, int(workloads[_role(c)]["port"]))]
    result: dict[tuple[str, str], set[tuple[str, int]]] = defaultdict(set)
    for source in on:
        for target, nets in on.items():
            for net, address in nets.items():
                if target == source or net not in on[source]:
                    continue
                result[(source, target)] |= {(address, port) for bound, port in listening[target] if bound in (EVERY_ADDRESS, address)}
    return result


@pytest.mark.parametrize("stack", ["dev", "staging", "boutique"])
def test_containers_reach_each_other_exactly_along_the_declared_hops_one_way(stack: str) -> None:
    config = _docker_config(stack)
    records = run_program(config, stack, preview=False)
    roles = {r.inputs["name"]: _role(r.inputs) for r in records if r.type == CONTAINER}
    hops, callers, _ = _expected(config)
    reach = _reachable(records, config)
    wrong = []
    for (source, target), addresses in reach.items():
        rs, rt = roles[source], roles[target]
        if rs == rt or not addresses:
            continue  # replicas of one workload share their links: not a flow of the graph
        ports = {port for a, b, port in hops if (a, b) == (rs, rt)}
        if ports:
            if len(addresses) != 1 or next(iter(addresses))[1] not in ports:
                wrong.append(f"{source} -> {target}: a hop reaches exactly one address on {ports}, not {sorted(addresses)}")
        elif rt not in callers.get(rs, set()):
            wrong.append(f"{source} -> {target}: not a declared hop, yet reachable at {sorted(addresses)}")
    for a, b, _ in hops:
        for source in (s for s, r in roles.items() if r == a):
            assert any(reach.get((source, t)) for t, r in roles.items() if r == b), f"{source} cannot reach {b}"
    assert not wrong, "\n".join(wrong)
    # Proxies reach beyond their hops exactly their callers' replicas (bridges are not directional), nothing else.
    beyond = {(roles[s], roles[t]) for (s, t), a in reach.items() if a and roles[s].endswith(" proxy")
              and not any((roles[s], roles[t]) == (x, y) for x, y, _ in hops) and roles[s] != roles[t]}
    assert beyond == {(proxy, caller) for proxy, names in callers.items() for caller in names}


@pytest.mark.parametrize("stack", ["dev", "staging", "boutique"])
def test_a_caller_finds_its_callee_by_name_only_at_the_callee_proxy(stack: str) -> None:
    """Docker's resolver answers a name with the members that carry it as an alias on the asker's networks: on
    every network a caller's replica joins, the callee's name belongs to the callee's proxy alone."""
    config = _docker_config(stack)
    records = run_program(config, stack, preview=False)
    _, _, callees = _expected(config)
    containers = [r.inputs for r in records if r.type == CONTAINER]
    aliases: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))  # network -> alias -> roles
    for c in containers:
        for n in c.get("networksAdvanced") or []:
            for alias in n.get("aliases") or []:
                aliases[n["name"]][alias].add(_role(c))
    for c in containers:
        for callee in callees.get(_role(c), set()):
            answering = set().union(*(aliases[n["name"]].get(callee, set()) for n in c["networksAdvanced"]))
            assert answering == {f"{callee} proxy"}, (c["name"], callee, answering)


@pytest.mark.parametrize("stack", ["dev", "staging", "boutique"])
def test_links_are_internal_two_ended_and_inside_the_declared_subnet(stack: str) -> None:
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
    hops, _, _ = _expected(config)
    assert sorted(tuple(sorted(roles)) for name, roles in members.items() if name not in edge) == \
        sorted(tuple(sorted((a, b))) for a, b in {(a, b) for a, b, _ in hops}), "one network per hop, joined by its two ends"
    for name, ips in addresses.items():
        if name in edge:
            continue
        subnet = ipaddress.ip_network(networks[name]["ipamConfigs"][0]["subnet"])
        assert len(set(ips)) == len(ips) and all(ipaddress.ip_address(ip) in subnet for ip in ips), (name, ips)
    subnets = [ipaddress.ip_network(n["ipamConfigs"][0]["subnet"]) for name, n in networks.items() if name not in edge]
    declared = ipaddress.ip_network(json.loads(config["netopt:network"])["subnet"])
    assert all(s.subnet_of(declared) for s in subnets)  # type: ignore[arg-type]
    assert not any(a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1:])


def test_a_subnet_too_small_for_the_graph_says_how_large_it_must_be(minimal: dict[str, Any]) -> None:
    """By hand: api (2 replicas) and web, both routed, no calls. Each workload reserves an ingress and a serve block,
    so the layout spans api's ingress, api's (unused) serve block and web's ingress: 3 blocks of 8 addresses (api's
    ingress holds 2 replicas + the gateway + 3 reserved = 6), 24 addresses: a /27."""
    minimal["network"]["subnet"] = "10.9.0.0/29"
    with pytest.raises(SpecError) as caught:
        parse_spec(minimal)
    message = {issue.path: issue.message for issue in caught.value.issues}["netopt:network.subnet"]
    assert "too small for the service graph" in message and "use a /27 or larger (e.g. 10.9.0.0/27)" in message, message
    assert "3 blocks of 8 addresses" in message, message
