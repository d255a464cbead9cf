"""The Docker-target stacks (dev, staging), as the program declares them, applied to the private dockerd and
exercised through their gateway.

``__main__.py`` runs under Pulumi mocks (outputs = inputs); its pulumi-docker resources are applied verbatim
by e2e.apply. The stack's image references are tags of the locally built e2e images (gateway: Debian nginx;
workloads: testbed/backend.py, which answers ``X-Replica: $NETOPT_REPLICA`` on ``$PORT``).
"""
from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest

from e2e.apply import CONTAINER, Applied, apply_docker_resources
from e2e.dockerd import Dockerd
from e2e.stack import alias_images, is_gateway, record_changed_stack, record_stack
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


# In parallel: an address Docker's internal-network rules drop (rather than one with no route) costs the timeout.
_CONNECT = ("import socket, sys\n"
            "from concurrent.futures import ThreadPoolExecutor\n"
            "def connects(target):\n"
            "    host, port = target.rsplit(':', 1)\n"
            "    try:\n        socket.create_connection((host, int(port)), timeout=2).close()\n        return 1\n"
            "    except OSError:\n        return 0\n"
            "with ThreadPoolExecutor(64) as pool:\n"
            "    print(*pool.map(connects, sys.argv[1:]))\n")
_CURL = 'for t in "$@"; do (curl -s -o /dev/null --connect-timeout 2 --max-time 3 "http://$t/" && echo "$t 1" || echo "$t 0") & done; wait'


def _connects(app: Applied, source: str, gateway: bool, targets: list[str]) -> list[bool]:
    """Whether `source` opens a TCP connection to each host:port, from inside it, in one exec (the gateway image
    has curl and no python)."""
    command = ["sh", "-c", _CURL, "sh", *targets] if gateway else ["python3", "-c", _CONNECT, *targets]
    result = app.container(source).exec_run(command)
    text = result.output.decode()
    answers = dict(line.split() for line in text.splitlines()) if gateway else dict(zip(targets, text.split(), strict=False))
    assert set(answers) == set(targets), (source, result.exit_code, text[-500:])
    return [answers[target] == "1" for target in targets]


def _stack_values(stack: str) -> dict[str, Any]:
    config = cli_config(stack_file(stack))
    return {key: json.loads(config[f"netopt:{key}"]) for key in ("workloads", "routes")}


def test_from_inside_every_container_declared_calls_connect_and_undeclared_pairs_fail(deployed: Any, request: pytest.FixtureRequest) -> None:
    _, app, records, _ = deployed
    _check_isolation(app, records, _stack_values(request.node.callspec.params["deployed"]))


def _as_e2e_backends(values: dict[str, Any]) -> None:
    """The boutique on the Docker target, every image stood in for by the e2e backend (an HTTP server on $PORT):
    each workload's probe is its HTTP one and the image's own command/args are not used. The graph is untouched."""
    values["target"] = "docker"
    values["gateway"] = {**values["gateway"], "replicas": 1}
    values["workloads"] = [{**{k: v for k, v in w.items() if k not in ("command", "args")}, "health": {"kind": "http", "path": "/healthz"}}
                           for w in values["workloads"]]


@pytest.fixture(scope="module")
def boutique(dockerd: Dockerd, e2e_images: dict[str, str]) -> Any:
    records = record_changed_stack("boutique", _as_e2e_backends)
    alias_images(dockerd.client, records)
    dockerd.remove_all_objects()
    app = apply_docker_resources(dockerd.client, records, docker_host=dockerd.base_url)
    try:
        _wait_healthy(app, [r.inputs["name"] for r in records if r.type == CONTAINER])
        yield app, records
    finally:
        app.teardown()
        dockerd.remove_all_objects()


def test_the_boutique_example_is_isolated_by_its_graph_from_inside_every_container(boutique: Any) -> None:
    app, records = boutique
    _check_isolation(app, records, _stack_values("boutique"))


def _check_isolation(app: Applied, records: list[Any], declared: dict[str, Any]) -> None:
    """Every workload replica and the gateway, against every other workload's every address on its port.

    Docker bridges are not directional: a callee could open a connection back to its caller over their link,
    so the reverse of a declared call is neither required nor checked here (Kubernetes forbids it: see
    tests/kubernetes/test_network_policies.py)."""
    containers = [r.inputs for r in records if r.type == CONTAINER]
    role = {c["name"]: "gateway" if is_gateway(c) else next(x["value"] for x in c["labels"] if x["label"] == "netopt.workload")
            for c in containers}
    workloads = {w["name"]: w for w in declared["workloads"]}
    allowed = {("gateway", b["workload"]) for r in declared["routes"] for b in r["backends"]}
    allowed |= {(name, c["workload"]) for name, w in workloads.items() for c in w.get("calls", [])}
    ips = {name: [n["IPAddress"] for n in app.container(name).attrs["NetworkSettings"]["Networks"].values()] for name in role}
    wrong, checked = [], 0
    for source, who in role.items():
        declared_calls = sorted({callee for caller, callee in allowed if caller == who and caller != "gateway"})
        undeclared = [(target, ip, other) for target, other in role.items()
                      if other not in (who, "gateway") and (who, other) not in allowed and (other, who) not in allowed for ip in ips[target]]
        targets = [f"{c}:{int(workloads[c]['port'])}" for c in declared_calls]
        targets += [f"{ip}:{int(workloads[other]['port'])}" for _, ip, other in undeclared]
        answers = _connects(app, source, who == "gateway", targets) if targets else []
        checked += len(targets)
        wrong += [f"{source} -> {c} (declared, by name): refused" for c, ok in zip(declared_calls, answers, strict=False) if not ok]
        wrong += [f"{source} -> {target} at {ip} (undeclared): connected"
                  for (target, ip, _), ok in zip(undeclared, answers[len(declared_calls):], strict=True) if ok]
    published = [name for name in role if any((app.container(name).attrs["NetworkSettings"]["Ports"] or {}).values())]
    assert published == [n for n, r in role.items() if r == "gateway"], f"only the gateway publishes a port: {published}"
    assert checked and not wrong, f"{len(wrong)} of {checked} checks wrong:\n" + "\n".join(wrong)
