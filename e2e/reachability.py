"""Who can open a TCP connection to whom on the e2e dockerd, from inside every container, against the stack file.

The expectation is written from the stack's `netopt:*` values (`declared`), not from the plan or `docker_links`:
the application's flows are the gateway → each routed workload and each declared call, caller → callee; on Docker
every call goes through the callee's service proxy, so the connections are these hops, in their direction only:

- the gateway → each replica of a routed workload, on the workload's port;
- a caller's replicas → the callee's service proxy, on the callee's port (by the callee's name: `call_through_proxies`);
- the callee's service proxy → the replicas of what it balances: the callee, or each version of its `split`.

A hop connects at exactly one address of its listener, the one on the link the two share: a caller reaches the
proxy only at its address on its own call link, never at another caller's (which would let it spend that caller's
limits). Nothing else connects: a callee never reaches its caller (a reverse pair), no backend reaches the gateway
or a proxy it does not call, two workloads with no declared call reach nothing of each other.

netopt's proxies are reported apart (`Matrix.proxy_reach`): Docker bridges are not directional and the backends
listen on every address, so a proxy could open a connection to its callers' replicas over their call links. nginx
only ever connects to its upstreams; the report says what else the network would let it reach.

Observed, not assumed: every address of every container (`docker inspect`) × every TCP port some socket listens on
inside that container (its /proc/net/tcp and tcp6; Docker's resolver at 127.0.0.11 excepted), so an undeclared
listener is probed too; each probe is a TCP connect from inside the source container (a python socket in the
backend image, bash's /dev/tcp in the nginx image; 2 s at most).
Replicas of one workload share their links by design and are not a flow of the graph: counted, not judged.
"""
from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e.apply import CONTAINER, Applied
from e2e.stack import role

GATEWAY = "gateway"
PROBE_TIMEOUT_S = 2
DOCKER_RESOLVER = ipaddress.ip_address("127.0.0.11")
CALL_PROBE = (Path(__file__).with_name("call_probe.py")).read_text()
# One TCP connect per "ip:port" argument, printed as "ip:port 1|0". In the nginx image (no python): bash's
# /dev/tcp, 32 at a time (bounded: each probe forks a few processes); in the backend image: python threads.
_SH_CONNECT = ("printf '%s\\n' \"$@\" | xargs -P 32 -I{} sh -c "
               f"'if timeout {PROBE_TIMEOUT_S} bash -c \"exec 3<>/dev/tcp/${{1%:*}}/${{1##*:}}\" 2>/dev/null; "
               "then echo \"$1 1\"; else echo \"$1 0\"; fi' sh {}")
_PY_CONNECT = ("import socket, sys\n"
               "from concurrent.futures import ThreadPoolExecutor\n"
               "def connects(target):\n"
               "    host, port = target.rsplit(':', 1)\n"
               "    try:\n"
               f"        socket.create_connection((host, int(port)), timeout={PROBE_TIMEOUT_S}).close()\n"
               "        return target + ' 1'\n"
               "    except OSError:\n"
               "        return target + ' 0'\n"
               "with ThreadPoolExecutor(64) as pool:\n"
               "    print('\\n'.join(pool.map(connects, sys.argv[1:])))\n")


def proxy_role(workload: str) -> str:
    """The role of the service proxy in front of `workload` (a space: no workload name, a DNS label, has one)."""
    return f"{workload} proxy"


@dataclass(frozen=True)
class Declared:
    """The graph as the stack file declares it."""

    routed: frozenset[str]
    calls: tuple[tuple[str, str], ...]  # (caller, callee) in declaration order
    versions: dict[str, tuple[str, ...]]  # callee -> what serves its calls: its split's workloads, or itself
    ports: dict[str, int]
    protocols: dict[str, str]

    def hops(self) -> set[tuple[str, str, int]]:
        """(source role, destination role, port) of every connection the application needs on Docker."""
        result = {(GATEWAY, w, self.ports[w]) for w in self.routed}
        for caller, callee in self.calls:
            result.add((caller, proxy_role(callee), self.ports[callee]))
            result |= {(proxy_role(callee), v, self.ports[v]) for v in self.versions[callee]}
        return result

    def flows(self) -> set[tuple[str, str]]:
        """The application's own flows (role pairs): the gateway to each routed workload, each call to what serves it."""
        return {(GATEWAY, w) for w in self.routed} | {(caller, v) for caller, callee in self.calls for v in self.versions[callee]}

    def proxy_callers(self) -> dict[str, set[str]]:
        callers: dict[str, set[str]] = {}
        for caller, callee in self.calls:
            callers.setdefault(proxy_role(callee), set()).add(caller)
        return callers


def declared(values: dict[str, Any]) -> Declared:
    """From a stack's parsed `netopt:*` values (keys without the namespace)."""
    workloads = {w["name"]: w for w in values["workloads"]}
    calls = tuple((w["name"], c["workload"]) for w in values["workloads"] for c in w.get("calls") or [])
    versions = {callee: tuple(b["workload"] for b in (workloads[callee].get("traffic_policy") or {}).get("split") or [])
                or (callee,) for _, callee in calls}
    return Declared(
        routed=frozenset(b["workload"] for r in values["routes"] for b in r["backends"]),
        calls=calls,
        versions=versions,
        ports={name: int(w["port"]) for name, w in workloads.items()},
        protocols={name: str(w.get("protocol", "http")) for name, w in workloads.items()},
    )


def role_of(inputs: dict[str, Any]) -> str:
    """gateway, `<workload> proxy`, or the workload of a replica: from the container's labels."""
    labels = {x["label"]: x["value"] for x in inputs.get("labels") or []}
    kind = role(inputs)
    if kind == "gateway":
        return GATEWAY
    if kind == "service-proxy":
        return proxy_role(labels["netopt.fronts"])
    return str(labels["netopt.workload"])


def addresses(app: Applied, name: str) -> dict[str, str]:
    """Docker network name -> the container's IPv4 address there, as Docker reports it."""
    return {net: str(ep["IPAddress"]) for net, ep in app.container(name).attrs["NetworkSettings"]["Networks"].items() if ep.get("IPAddress")}


def _exec(app: Applied, name: str, argv: list[str]) -> str:
    result = app.container(name).exec_run(argv)
    if result.exit_code != 0:
        raise AssertionError(f"{name}: {argv[:2]} exited {result.exit_code}: {result.output.decode(errors='replace')[-500:]}")
    return str(result.output.decode())


def listening(app: Applied, name: str) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket listening inside the container, Docker's resolver excepted."""
    return listening_sockets(_exec(app, name, ["cat", "/proc/net/tcp", "/proc/net/tcp6"]))


def listening_sockets(proc_net_tcp: str) -> set[tuple[str, int]]:
    """(address, port) of every socket in state 0A (LISTEN) of /proc/net/tcp and tcp6 text (IPv6 addresses in their
    compressed form; `0.0.0.0` and `::` for every address), but Docker's resolver (127.0.0.11)."""
    found = set()
    for line in proc_net_tcp.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[3] != "0A":
            continue
        hex_address, _, port = fields[1].partition(":")
        raw = bytes.fromhex(hex_address)  # the kernel prints each 32-bit word in host (little-endian) order
        address = ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))
        if address != DOCKER_RESOLVER:
            found.add((str(address), int(port, 16)))
    return found


def listening_ports(app: Applied, name: str) -> set[int]:
    return {port for _, port in listening(app, name)}


def connects(app: Applied, source: str, targets: list[str], python: bool) -> dict[str, bool]:
    """Whether `source` opens a TCP connection to each `ip:port`, from inside it, in one exec (`python`: the
    container has python3, the e2e backend image; else the shell tools of the nginx image)."""
    if not targets:
        return {}
    argv = ["python3", "-c", _PY_CONNECT] if python else ["sh", "-c", _SH_CONNECT, "sh"]
    text = _exec(app, source, [*argv, *targets])
    answers = dict(line.split() for line in text.splitlines())
    assert set(answers) == set(targets), (source, text[-500:])
    return {target: answers[target] == "1" for target in targets}


@dataclass
class Matrix:
    """The outcome of every probe, judged against the declared hops."""

    containers: int = 0
    pairs: int = 0  # ordered container pairs of different roles
    probes: int = 0
    hops_connected: int = 0  # pairs on a declared hop that connected at their one address
    reverse_checked: int = 0  # pairs whose reverse is a declared flow or hop, and which are not one themselves
    reverse: list[str] = field(default_factory=list)
    undeclared: list[str] = field(default_factory=list)
    wrong_hops: list[str] = field(default_factory=list)
    proxy_reach: dict[str, set[str]] = field(default_factory=dict)  # proxy role -> roles it could reach beyond its hops
    same_workload: tuple[int, int] = (0, 0)  # (pairs, connected)

    @property
    def wrong(self) -> list[str]:
        return self.wrong_hops + self.reverse + self.undeclared

    def summary(self) -> dict[str, object]:
        return {"containers": self.containers, "pairs": self.pairs, "probes": self.probes, "hops_connected": self.hops_connected,
                "reverse_checked": self.reverse_checked, "reverse_connected": len(self.reverse), "undeclared_connected": len(self.undeclared),
                "wrong_hops": len(self.wrong_hops), "same_workload_pairs": self.same_workload[0],
                "same_workload_connected": self.same_workload[1],
                "proxy_reach_beyond_hops": {p: sorted(r) for p, r in sorted(self.proxy_reach.items())}}


def containers(records: Iterable[Any]) -> dict[str, str]:
    """Container name -> role, for every container the stack registers."""
    return {r.inputs["name"]: role_of(r.inputs) for r in records if r.type == CONTAINER}


def directional_matrix(app: Applied, records: list[Any], graph: Declared) -> Matrix:
    """Probe every (source container, other container's address, listening port) and judge each pair."""
    roles = containers(records)
    hops = graph.hops()
    flows = graph.flows() | {(a, b) for a, b, _ in hops}
    beyond = graph.proxy_callers()
    ips = {name: sorted(set(addresses(app, name).values())) for name in roles}
    ports = {name: sorted(listening_ports(app, name)) for name in roles}
    matrix = Matrix(containers=len(roles))
    same = [0, 0]
    for source, rs in roles.items():
        targets = {name: [f"{ip}:{port}" for ip in ips[name] for port in ports[name]] for name in roles if name != source}
        answers = connects(app, source, [t for ts in targets.values() for t in ts], python=rs != GATEWAY and not rs.endswith(" proxy"))
        matrix.probes += len(answers)
        for target, rt in roles.items():
            if target == source:
                continue
            connected = sorted(t for t in targets[target] if answers[t])
            if rs == rt:
                same[0] += 1
                same[1] += bool(connected)
                continue
            matrix.pairs += 1
            declared_ports = {port for a, b, port in hops if (a, b) == (rs, rt)}
            where = f"{source} ({rs}) -> {target} ({rt})"
            if declared_ports:
                if len(connected) == 1 and int(connected[0].rsplit(":", 1)[1]) in declared_ports:
                    matrix.hops_connected += 1
                else:
                    matrix.wrong_hops.append(f"{where}: a declared hop must connect at exactly one address on port "
                                             f"{sorted(declared_ports)}, connected at {connected}")
                continue
            if rt in beyond.get(rs, set()):
                if connected:
                    matrix.proxy_reach.setdefault(rs, set()).add(rt)
                continue
            is_reverse = (rt, rs) in flows
            matrix.reverse_checked += is_reverse
            if connected:
                (matrix.reverse if is_reverse else matrix.undeclared).append(f"{where}: connected at {connected}")
    matrix.same_workload = (same[0], same[1])
    return matrix


@dataclass
class CallCheck:
    """Every declared call from every replica of its caller, by the callee's name, and what its proxy logged."""

    calls: int = 0
    wrong: list[str] = field(default_factory=list)
    by_protocol: dict[str, int] = field(default_factory=dict)


def call_through_proxies(app: Applied, records: list[Any], graph: Declared) -> CallCheck:
    """Each caller replica dials `<callee>:<port>` by name (`call_probe.py` inside it): the name resolves to the
    callee's proxy alone, the call is answered (http, tcp: by a replica of what the proxy balances; grpc: by the
    proxy's own gRPC status, the stand-in backend speaking HTTP/1.1 only), and the proxy's access log has the call
    with the right `caller`, the caller replica's address as `client`, and a replica it balances as the upstream."""
    roles = containers(records)
    members: dict[str, list[str]] = {}
    for name, r in roles.items():
        members.setdefault(r, []).append(name)
    ips = {name: addresses(app, name) for name in roles}
    check = CallCheck()
    expected_lines: list[tuple[str, str, str, set[str]]] = []  # (proxy container, caller, client address, upstream addresses)
    for caller, callee in graph.calls:
        (proxy,) = members[proxy_role(callee)]
        upstream_ips = {ip for v in graph.versions[callee] for name in members[v] for ip in ips[name].values()}
        protocol = graph.protocols[callee]
        for replica in members[caller]:
            (line,) = _exec(app, replica, ["python3", "-c", CALL_PROBE, f"{protocol}:{callee}:{graph.ports[callee]}"]).splitlines()
            answer = json.loads(line)
            check.calls += 1
            check.by_protocol[protocol] = check.by_protocol.get(protocol, 0) + 1
            where = f"{replica} -> {callee}:{graph.ports[callee]} ({protocol})"
            resolved = set(answer["resolved"])
            links = {net for net, ip in ips[proxy].items() if ip in resolved}
            if len(resolved) != 1 or len(links) != 1:
                check.wrong.append(f"{where}: the name resolved to {sorted(resolved)}, not to one address of the proxy {ips[proxy]}")
            if not answer["ok"]:
                check.wrong.append(f"{where}: {answer}")
            elif protocol != "grpc" and str(answer["replica"]).rsplit("-", 1)[0] not in graph.versions[callee]:
                check.wrong.append(f"{where}: answered by {answer['replica']}, not by a replica of {graph.versions[callee]}")
            client = next((ip for net, ip in ips[replica].items() if net in links), "")
            expected_lines.append((proxy, caller, client, upstream_ips))
    time.sleep(1.5)  # the proxies' access logs flush every second
    logs: dict[str, list[dict[str, str]]] = {}
    for proxy, caller, client, upstream_ips in expected_lines:
        if proxy not in logs:
            text = app.container(proxy).logs(stdout=True, stderr=False).decode(errors="replace")
            logs[proxy] = [json.loads(x) for x in text.splitlines() if x.startswith("{")]
        lines = [x for x in logs[proxy] if x.get("caller") == caller and x.get("client") == client]
        if not any(_tried(x, upstream_ips) for x in lines):
            check.wrong.append(f"{proxy}: no log line with caller {caller}, client {client} and an upstream in {sorted(upstream_ips)} "
                               f"(or none left): {lines[-3:]}")
    for proxy, lines in logs.items():  # each proxy reached a replica of what it balances at least once
        upstream_ips = {ip for p, _, _, ips in expected_lines if p == proxy for ip in ips}
        if not any(_tried(x, upstream_ips, replica=True) for x in lines):
            check.wrong.append(f"{proxy}: no call reached a replica in {sorted(upstream_ips)}")
    return check


def _tried(line: dict[str, str], upstream_ips: set[str], replica: bool = False) -> bool:
    """Whether the proxy's log line shows the call sent to a replica in `upstream_ips` or, unless `replica`, to no
    replica because none was left: nginx then logs the upstream's name (`up_…`). The stand-in backend speaks no
    gRPC, so every grpc call fails at the replica; after `max_fails` of them within `fail_timeout` nginx marks the
    replicas failed for a while, and later probes of that proxy find none left."""
    tried = [a.strip() for a in line.get("upstream_addr", "").split(",") if a.strip()]
    return any(a.rsplit(":", 1)[0] in upstream_ips or (not replica and a.startswith("up_")) for a in tried)
