"""The Docker-target stacks (dev, staging), as the program declares them, applied to the private dockerd and
exercised through their gateway.

``__main__.py`` runs under Pulumi mocks (outputs = inputs); its pulumi-docker resources are applied verbatim
by e2e.apply. The stack's image references are tags of the locally built e2e images (gateway: Debian nginx;
workloads: testbed/backend.py, which answers ``X-Replica: $NETOPT_REPLICA`` on ``$PORT``).
"""
from __future__ import annotations

import ipaddress
import json
import time
from collections import Counter
from typing import Any

import pytest

from e2e.apply import CONTAINER, Applied, apply_docker_resources
from e2e.dockerd import Dockerd
from e2e.reachability import addresses, call_through_proxies, containers, declared, directional_matrix, listening
from e2e.stack import alias_images, is_gateway, record_stack
from offline.stack_config import cli_config, stack_file

pytestmark = pytest.mark.e2e

DOCKER_STACKS = ["dev", "staging"]  # prod targets Kubernetes


def _wait_healthy(app: Applied, names: list[str], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    pending = list(names)
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            state = app.container(name).attrs["State"]
            health = (state.get("Health") or {}).get("Status")
            if health == "healthy" or (health is None and state.get("Running")):  # a container without a probe: running
                pending.remove(name)
            elif not state.get("Running"):
                logs = app.containers[name].logs(tail=30).decode(errors="replace")
                pytest.fail(f"{name} stopped ({state.get('Status')}, exit {state.get('ExitCode')}):\n{logs}")
        time.sleep(0.25)
    if pending:
        report = {n: (app.container(n).attrs["State"].get("Health") or {}).get("Log", [])[-1:] for n in pending}
        logs = {n: app.containers[n].logs(tail=20).decode(errors="replace") for n in pending}
        pytest.fail(f"not healthy after {timeout}s: {report}\n{logs}")


@pytest.fixture(scope="module", params=DOCKER_STACKS)
def deployed(request: pytest.FixtureRequest, dockerd: Dockerd, e2e_images: dict[str, str]) -> Any:
    records = record_stack(request.param)
    containers = [r for r in records if r.type == CONTAINER]
    gateway = next(r for r in containers if is_gateway(r.inputs))
    alias_images(dockerd.client, records)
    dockerd.remove_all_objects()
    app = apply_docker_resources(dockerd.client, records, docker_host=dockerd.base_url)
    try:
        _wait_healthy(app, [r.inputs["name"] for r in containers])
        yield dockerd, app, records, gateway
    finally:
        app.teardown()
        dockerd.remove_all_objects()


def _published(app: Applied, gateway: Any) -> int:
    (port_spec,) = gateway.inputs["ports"]
    (binding,) = app.published(gateway.inputs["name"], int(port_spec["internal"]))
    assert binding == (port_spec["ip"], int(port_spec["external"]))
    return binding[1]


def test_every_container_runs_healthy_with_its_declared_address(deployed: Any) -> None:
    _, app, records, gateway = deployed
    for rec in (r for r in records if r.type == CONTAINER):
        name = rec.inputs["name"]
        attrs = app.container(name).attrs
        assert attrs["State"]["Health"]["Status"] == "healthy", name
        nets = attrs["NetworkSettings"]["Networks"]
        for na in rec.inputs["networksAdvanced"]:
            assert na["name"] in nets, (name, na["name"])
            if na.get("ipv4Address"):
                assert nets[na["name"]]["IPAddress"] == na["ipv4Address"], name
        published = [b for b in (attrs["NetworkSettings"]["Ports"] or {}).values() if b]
        assert bool(published) == (rec is gateway), f"{name}: only the gateway publishes a port"


def test_routes_reach_the_declared_workloads(deployed: Any) -> None:
    d, app, _, gateway = deployed
    port = _published(app, gateway)

    def workload(path: str, method: str = "GET", headers: dict[str, str] | None = None) -> str:
        """The workload that answered: its replica's name (NETOPT_REPLICA = <workload>-<n>) less the number."""
        conn = d.http_connection(port, timeout=10)
        try:
            conn.request(method, path, body=b"" if method == "POST" else None, headers=headers or {})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200, (path, resp.status, resp.getheaders())
            return str(resp.getheader("X-Replica")).rsplit("-", 1)[0]
        finally:
            conn.close()

    assert workload("/static/app.css") == "static"
    assert workload("/") == "web"
    assert workload("/some/page") == "web"
    assert workload("/auth/session") == "auth"
    assert workload("/auth/login", "POST") == "auth"
    assert workload("/v2/orders") == "api"
    assert workload("/api/items", headers={"X-Canary": "always"}) == "api-canary"
    split: Counter[str] = Counter()
    for _ in range(40):  # paced under the route's rate limit (50 r/s, burst 25)
        split[workload("/api/items")] += 1
        time.sleep(0.04)
    assert set(split) <= {"api", "api-canary"} and split["api"] > split["api-canary"], split


def test_rate_limit_answers_429_with_retry_after(deployed: Any) -> None:
    """Last in the module: it empties the login route's bucket (5 r/s, burst 5)."""
    d, app, _, gateway = deployed
    port = _published(app, gateway)
    statuses: Counter[int] = Counter()
    retry_after = set()
    for _ in range(20):
        conn = d.http_connection(port, timeout=10)
        try:
            conn.request("POST", "/auth/login", body=b"")
            resp = conn.getresponse()
            resp.read()
            statuses[resp.status] += 1
            if resp.status == 429:
                retry_after.add(resp.getheader("Retry-After"))
        finally:
            conn.close()
    assert statuses[200] >= 1 and statuses[429] >= 1 and set(statuses) <= {200, 429}, statuses
    assert retry_after == {"10"}, retry_after


def _stack_values(stack: str) -> dict[str, Any]:
    """The stack file's graph: its workloads and routes, as written (the e2e adaptation leaves them alone)."""
    config = cli_config(stack_file(stack))
    return {key: json.loads(config[f"netopt:{key}"]) for key in ("workloads", "routes")} | {
        "gateway": json.loads(config["netopt:gateway"]), "network": json.loads(config["netopt:network"])}


def test_from_inside_every_container_reachability_is_the_declared_graph_one_way(deployed: Any, request: pytest.FixtureRequest) -> None:
    _, app, records, _ = deployed
    _check_graph(app, records, request.node.callspec.params["deployed"])


def test_a_callee_put_on_its_callers_network_by_hand_is_caught_as_a_reverse_pair(deployed: Any, request: pytest.FixtureRequest) -> None:
    """The check can fail: the callee of the stack's first call joins its caller's call network by hand (what a
    bridge shared by both ends would be); the matrix then finds the callee reaching its caller. Undone afterwards."""
    d, app, records, _ = deployed
    graph = declared(_stack_values(request.node.callspec.params["deployed"]))
    roles = containers(records)
    caller, callee = graph.calls[0]
    caller_replica = next(name for name, r in roles.items() if r == caller)
    callee_replica = next(name for name, r in roles.items() if r == callee)
    proxy = next(name for name, r in roles.items() if r == f"{callee} proxy")
    (link,) = set(addresses(app, caller_replica)) & set(addresses(app, proxy))
    network = d.client.networks.get(link)
    network.connect(callee_replica)
    try:
        matrix = directional_matrix(app, records, graph)
    finally:
        network.disconnect(callee_replica)
    assert any(w.startswith(f"{callee_replica} ({callee}) -> {caller_replica} ({caller})") for w in matrix.reverse), matrix.summary()


@pytest.fixture(scope="module")
def boutique(dockerd: Dockerd, e2e_images: dict[str, str]) -> Any:
    """The boutique on the Docker target, every image stood in for by the e2e backend (e2e.stack.as_e2e); the graph
    (12 workloads, 9 grpc services, a tcp Redis, 23 calls) is the stack file's."""
    records = record_stack("boutique")
    alias_images(dockerd.client, records)
    dockerd.remove_all_objects()
    app = apply_docker_resources(dockerd.client, records, docker_host=dockerd.base_url)
    try:
        _wait_healthy(app, [r.inputs["name"] for r in records if r.type == CONTAINER])
        yield app, records
    finally:
        app.teardown()
        dockerd.remove_all_objects()


def test_the_boutique_example_is_isolated_by_its_graph_one_way_from_inside_every_container(boutique: Any) -> None:
    app, records = boutique
    _check_graph(app, records, "boutique")


def _check_graph(app: Applied, records: list[Any], stack: str) -> None:
    """Reachability from inside every container equals the stack file's graph in its direction (e2e.reachability),
    every declared call works by the callee's name through its proxy, and the gateway and the proxies listen only
    where they are meant to. The figures are printed with `-s`."""
    values = _stack_values(stack)
    graph = declared(values)
    roles = containers(records)
    count = Counter(roles.values())
    matrix = directional_matrix(app, records, graph)
    calls = call_through_proxies(app, records, graph)
    print(f"\n[e2e.reachability] {stack}: {json.dumps(matrix.summary())}\n"
          f"[e2e.reachability] {stack}: calls by name through the proxies: {calls.calls} {calls.by_protocol}, wrong: {len(calls.wrong)}")
    assert not matrix.wrong, f"{len(matrix.wrong)} of {matrix.pairs} pairs wrong:\n" + "\n".join(matrix.wrong)
    assert matrix.hops_connected == sum(count[a] * count[b] for a, b, _ in graph.hops()) and matrix.reverse_checked > 0, matrix.summary()
    assert not calls.wrong, "\n".join(calls.wrong)
    assert calls.calls == sum(count[caller] for caller, _ in graph.calls), calls
    assert matrix.proxy_reach == {p: c for p, c in graph.proxy_callers().items() if c}, "a proxy reaches nothing but its hops and its callers"
    _check_listeners(app, roles, values)


def _check_listeners(app: Applied, roles: dict[str, str], values: dict[str, Any]) -> None:
    """Inside the gateway, the only socket on a network address is its edge address (network.edge_subnet: the
    first address after the bridge's) on its listen port; inside each proxy, the callee's port on each address it
    has on a network it shares with a caller; everything else on loopback."""
    gateway = values["gateway"]
    edge = ipaddress.ip_network(values["network"]["edge_subnet"])
    by_role: dict[str, list[str]] = {}
    for name, r in roles.items():
        by_role.setdefault(r, []).append(name)
    ports = {w["name"]: int(w["port"]) for w in values["workloads"]}
    for name, r in roles.items():
        if r == "gateway":
            expected = {(str(edge.network_address + 2), int(gateway.get("listen_port", 8080)))}
        elif r.endswith(" proxy"):
            callee = r.removesuffix(" proxy")
            callers = {w["name"] for w in values["workloads"] if any(c["workload"] == callee for c in w.get("calls") or [])}
            caller_nets = {net for caller in callers for replica in by_role[caller] for net in addresses(app, replica)}
            expected = {(ip, ports[callee]) for net, ip in addresses(app, name).items() if net in caller_nets}
        else:
            continue
        sockets = {(a, p) for a, p in listening(app, name) if not ipaddress.ip_address(a).is_loopback}
        assert sockets == expected, (name, sorted(sockets), sorted(expected))
