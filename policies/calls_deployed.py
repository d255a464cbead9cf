"""What the deployed resources say about the calls between workloads: the pack's own reading, not the report's.

Each service proxy's deployed nginx.conf (every copy `deployed_configs.deployed_proxies` finds: the Docker
container's delivering Command's stdin, the ConfigMap its pods mount; the integrity gates hold the copies equal, so
each distinct text is read once), parsed by crossplane (`nginx_config.parse_config`), gives every call route it
serves — the value of `set $netopt_route` in an http or grpc location, or of the stream block's `map
$server_addr:$server_port $netopt_route` (or `$server_addr`) for the address a tcp server listens on — with what
nginx applies to it there: the forwarding directive (`proxy_pass`, `grpc_pass`, a stream `proxy_pass`), the timeouts
in force (the location's own, else the server's, else the http or stream block's), the `limit_req` and `limit_conn`
zones in force whose key counts the route (a zone keyed by a map of `$netopt_route` counts the routes the map sends
to a non-empty key; nginx does not account an empty one), and its upstream: the members' addresses, weights and
`backup` flags, the balancing method and whether connections are pooled.

Who serves a member is read from the deployed workloads too: on Docker the container that holds the member's
address on one of its networks (its `netopt.workload` and `netopt.replica` labels); on Kubernetes the Service the
member names (`<service>.<namespace>.svc...`), the Deployment or StatefulSet its selector picks and that
workload's `spec.replicas`. Nothing here imports `components`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policies.deployed_configs import DeployedCopy, stack_proxies
from policies.deployed_scores import ROUTE_VARIABLE, _Map, _map, _zones
from policies.model import DOCKER_CONTAINER, GATEWAY_ROLE, K8S_HPA, K8S_SERVICE, K8S_WORKLOADS, docker_labels, get, items, k8s_labels
from policies.nginx_config import Directive, parse_config
from policies.per_stack import per_stack

PROXY_SUFFIX = "-proxy"
SERVICE_PROXY_ROLE = "service-proxy"
UNKNOWN_CALLER = "-"
VARIES = "<varies>"  # a limit key that is no constant: one bucket per client (address, header), so no bound
_TIME = re.compile(r"(\d+)(ms|s|m|h|d|w|M|y)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "M": 2592000.0, "y": 31536000.0}


def nginx_seconds(value: str) -> float | None:
    """An nginx time ("1s", "500ms", "1m30s", "75"): seconds, or None when it is not one."""
    parts = _TIME.findall(value)
    if not value or "".join(n + (u or "") for n, u in parts) != value:
        return None
    return sum(int(n) * _UNITS[u or "s"] for n, u in parts)


@dataclass(frozen=True)
class Bucket:
    """One token bucket (limit_req) or connection counter (limit_conn) that counts a route: its zone and the key
    the route's requests are counted under (`VARIES` for a per-client key)."""

    zone: str
    key: str
    value: float  # requests/s of the zone's rate, or the connections `limit_conn` allows


@dataclass(frozen=True)
class Member:
    address: str
    weight: int
    backup: bool


@dataclass(frozen=True)
class DeployedUpstream:
    name: str
    members: tuple[Member, ...]
    method: tuple[str, ...]  # ("least_conn",), ("ip_hash",), ("hash", key, ...); () for round robin
    pooled: bool  # `keepalive`: connections to members are reused by later calls


@dataclass(frozen=True)
class DeployedCall:
    """One call route of a deployed service proxy, as nginx applies it."""

    proxy: str
    callee: str
    route: str
    urn: str | None  # the resource carrying the copy read
    where: str
    forward: str  # "proxy_pass" (http), "grpc_pass" (grpc), "stream" (tcp), or "" when the location forwards nowhere
    read_timeout_s: float | None  # explicit (None: nginx's default applies), the idle timeout for a stream
    connect_timeout_s: float | None
    rates: tuple[Bucket, ...]
    connections: tuple[Bucket, ...]
    upstream: DeployedUpstream | None
    problems: tuple[str, ...] = ()

    @property
    def caller(self) -> str:
        """Route names are `<caller>.<callee>`; workload names are DNS labels, so the first dot separates them."""
        return self.route.split(".", 1)[0]


def callee_of(proxy: str) -> str | None:
    return proxy.removesuffix(PROXY_SUFFIX) if proxy.endswith(PROXY_SUFFIX) and proxy != GATEWAY_ROLE else None


@per_stack
def deployed_calls(resources: Sequence[Any]) -> tuple[DeployedCall, ...]:
    """Every call route of every deployed service proxy config (the gateway's routes are not calls), read once per
    AnalyzeStack."""
    found: list[DeployedCall] = []
    for proxy in stack_proxies(resources):
        callee = callee_of(proxy.name)
        if proxy.role != SERVICE_PROXY_ROLE or callee is None:
            continue
        read: set[str] = set()
        for copy in proxy.copies:
            if copy.text not in read:
                read.add(copy.text)
                found += _calls_of(proxy.name, callee, copy)
    return tuple(found)


def _calls_of(proxy: str, callee: str, copy: DeployedCopy) -> list[DeployedCall]:
    config = parse_config(copy.text)
    problems = tuple(f"crossplane: {e}" for e in config.errors)
    stream, http = config.stream(), config.http()
    block = stream if stream is not None and stream.block is not None else http
    if block is None or block.block is None:
        return [DeployedCall(proxy, callee, f"?.{callee}", copy.urn, copy.where, "", None, None, (), (), None,
                             (*problems, "neither a stream nor an http block"))]
    reader = _Reader(proxy, callee, copy.urn, copy.where, block, problems)
    return reader.stream_calls() if block is stream else reader.http_calls()


def _listened(source: str, listen: str) -> str:
    """What a stream map keyed by `source` sees for a connection to the server on `listen` (`address:port`): the
    address, the port or both (nginx's `$server_addr`, `$server_port`); "" for a source the pack does not follow."""
    address, _, port = listen.rpartition(":")
    seen = {"$server_addr": address, "$server_port": port, "$server_addr:$server_port": f"{address}:{port}"}
    return seen.get(source, "") if address else ""


class _Reader:
    """One proxy config's call routes; `block` is its stream block (tcp) or http block."""

    def __init__(self, proxy: str, callee: str, urn: str | None, where: str, block: Directive, problems: tuple[str, ...]) -> None:
        self.proxy, self.callee, self.urn, self.where, self.block = proxy, callee, urn, where, block
        self.problems = list(problems)
        self.maps: dict[str, _Map] = {d.args[1]: _map(d) for d in block.children("map") if len(d.args) == 2}
        self.rate_zones = _zones(block, self.problems)
        self.conn_zones = {_zone_arg(d.args): d.args[0] for d in block.children("limit_conn_zone") if d.args and _zone_arg(d.args)}
        self.upstreams = {u.args[0]: _upstream(u) for u in block.children("upstream") if u.args}

    def http_calls(self) -> list[DeployedCall]:
        calls = []
        for server in self.block.children("server"):
            for location in server.children("location"):
                routes = [d.args[1] for d in location.block or [] if d.name == "set" and len(d.args) == 2 and d.args[0] == ROUTE_VARIABLE]
                if not routes or not routes[-1] or routes[-1].startswith("$"):
                    continue
                route = routes[-1]
                scopes = [location.block or [], server.block or [], self.block.block or []]
                forward = next((d for d in location.block or [] if d.name in ("proxy_pass", "grpc_pass")), None)
                prefix = "grpc" if forward is not None and forward.name == "grpc_pass" else "proxy"
                target = forward.args[0].split("://", 1)[-1] if forward is not None and forward.args else ""
                calls.append(self._call(route, forward.name if forward is not None else "", scopes, f"{prefix}_read_timeout",
                                        f"{prefix}_connect_timeout", target))
        return calls

    def stream_calls(self) -> list[DeployedCall]:
        route_map = self.maps.get(ROUTE_VARIABLE)
        calls = []
        for server in self.block.children("server"):
            listen = next((d.args[0] for d in server.children("listen") if d.args), "")
            route = route_map.lookup(_listened(route_map.source, listen)) if route_map is not None else ""
            if not route or route == '""':
                self.problems.append(f"the stream server listening on {listen or '?'} maps to no {ROUTE_VARIABLE}")
                continue
            forward = next((d for d in server.children("proxy_pass") if d.args), None)
            calls.append(self._call(route, "stream" if forward is not None else "", [server.block or [], self.block.block or []],
                                    "proxy_timeout", "proxy_connect_timeout", forward.args[0] if forward is not None else ""))
        return calls

    def _call(self, route: str, forward: str, scopes: list[list[Directive]], read: str, connect: str, target: str) -> DeployedCall:
        return DeployedCall(
            proxy=self.proxy, callee=self.callee, route=route, urn=self.urn, where=self.where, forward=forward,
            read_timeout_s=_timeout(scopes, read), connect_timeout_s=_timeout(scopes, connect),
            rates=tuple(self._buckets(route, scopes, "limit_req")), connections=tuple(self._buckets(route, scopes, "limit_conn")),
            upstream=self.upstreams.get(target), problems=tuple(self.problems))

    def _buckets(self, route: str, scopes: list[list[Directive]], directive: str) -> list[Bucket]:
        """The zones of the innermost scope with `directive`s that count `route`, with the key it is counted under."""
        in_force = next(([d for d in scope if d.name == directive] for scope in scopes if any(d.name == directive for d in scope)), [])
        buckets = []
        for d in in_force:
            if directive == "limit_req":
                zone = _zone_arg(d.args)
                if zone not in self.rate_zones:
                    continue
                key, value = self.rate_zones[zone]
            else:
                zone = d.args[0] if len(d.args) == 2 else ""
                if zone not in self.conn_zones or not d.args[1].isdigit():
                    continue
                key, value = self.conn_zones[zone], float(d.args[1])
            counted = self._key(key, route)
            if counted != "":
                buckets.append(Bucket(zone, counted, value))
        return buckets

    def _key(self, key: str, route: str) -> str:
        """What a route's requests are counted under in a zone keyed by `key`: a constant, "" (not counted) or VARIES."""
        key_map = self.maps.get(key)
        if key_map is not None and key_map.source == ROUTE_VARIABLE:
            value = key_map.lookup(route).strip('"')
            return VARIES if "$" in value else value
        return VARIES if "$" in key else key


def _zone_arg(args: list[str]) -> str:
    """`zone=NAME[:SIZE]` of limit_req / limit_conn_zone."""
    return next((a[5:].split(":", 1)[0] for a in args if a.startswith("zone=")), "")


def _timeout(scopes: list[list[Directive]], name: str) -> float | None:
    for scope in scopes:
        found = [d.args[0] for d in scope if d.name == name and d.args]
        if found:
            return nginx_seconds(found[-1])
    return None


def _upstream(block: Directive) -> DeployedUpstream:
    members = []
    for server in block.children("server"):
        if not server.args:
            continue
        weight = next((int(a[7:]) for a in server.args[1:] if a.startswith("weight=") and a[7:].isdigit()), 1)
        members.append(Member(server.args[0], weight, "backup" in server.args[1:]))
    method = next(((d.name, *d.args) for d in block.block or [] if d.name in ("least_conn", "ip_hash", "hash", "random")), ())
    return DeployedUpstream(block.args[0], tuple(members), method, any(d.name == "keepalive" for d in block.block or []))


# -- who serves a member ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Served:
    """The replicas behind one upstream member: `workload` and which of its declared replicas (None: all `count`)."""

    workload: str
    replica: int | None
    count: int
    service: Mapping[str, Any] | None = None  # the Kubernetes Service the member names


@dataclass
class Workloads:
    """The deployed workloads: Docker containers by address, Kubernetes Services by name and workloads by pod labels."""

    by_address: dict[str, Served] = field(default_factory=dict)
    services: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # Service name -> its props
    pods: list[tuple[dict[str, str], str, int]] = field(default_factory=list)  # (pod template labels, workload, replicas)

    def serving(self, address: str) -> Served | None:
        """The replicas an upstream member reaches: a Docker container's address, or a Service's name."""
        host = address.rsplit(":", 1)[0]
        if host in self.by_address:
            return self.by_address[host]
        service = self.services.get(host.split(".", 1)[0])
        if service is None:
            return None
        selector = {str(k): str(v) for k, v in (get(service, "spec", "selector", default={}) or {}).items()}
        for labels, workload, count in self.pods:
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                return Served(workload, None, count, service)
        return None


@per_stack
def deployed_workloads(resources: Sequence[Any]) -> Workloads:
    """The deployed workloads, read once per AnalyzeStack. A Kubernetes workload without `spec.replicas` is scaled by
    its HorizontalPodAutoscaler: it runs at least `minReplicas` (1 when unset, the API's default), what admission is
    sized for (README)."""
    minimum = {str(get(h.props, "spec", "scaleTargetRef", "name")): int(float(get(h.props, "spec", "minReplicas", default=1)))
               for h in resources if h.resource_type == K8S_HPA}
    found = Workloads()
    for resource in resources:
        props = resource.props
        if resource.resource_type == DOCKER_CONTAINER:
            labels = docker_labels(props)
            workload = labels.get("netopt.workload")
            if workload is None or labels.get("netopt.role"):
                continue
            replica = int(labels["netopt.replica"]) if labels.get("netopt.replica", "").isdigit() else None
            for network in items(get(props, "networksAdvanced")):
                address = get(network, "ipv4Address")
                if address:
                    found.by_address[str(address)] = Served(workload, replica, 1)
        elif resource.resource_type == K8S_SERVICE:
            found.services[str(get(props, "metadata", "name", default=resource.name))] = props
        elif resource.resource_type in K8S_WORKLOADS:
            labels = k8s_labels(props, "spec", "template")
            workload = labels.get("app.kubernetes.io/name", "")
            declared = get(props, "spec", "replicas")
            name = str(get(props, "metadata", "name", default=resource.name))
            count = int(float(declared)) if declared is not None else minimum.get(name, 1)
            found.pods.append((labels, workload, count))
    return found
