"""One service proxy per called workload: the calls into it, balanced, timed out, retried and limited per caller.

The proxy takes over the workload's name and port, so callers dial `<workload>:<port>` unchanged. Where the target
gives every call a network of its own ("link", Docker), the proxy has one server per caller, bound to its address
on that caller's network: the network a call arrives on names the caller, so no caller can spend another's limit.
Where callers share one address ("none", a Kubernetes Service), one server serves all and its limits are the
callee's totals (the sum of its callers' limits). Upstream members are the workload's replicas (or, under service
balancing, its pods' Service) and, with a `split`, the other versions', weighted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from components.plan.balancing import member_max_conns, member_max_fails, version_members, weighted_members
from components.plan.calls import CalleePolicy, Edge
from components.plan.deployment import Deployment
from components.plan.gateway import method
from components.plan.graph import propagate, proxy_name
from components.plan.ir import (
    DEFAULT_SERVER,
    ClientSettings,
    Keepalive,
    Limit,
    Location,
    Proxy,
    Route,
    Rule,
    Server,
    Timeouts,
    Upstream,
    UpstreamServer,
)
from components.plan.locations import match_steps
from components.plan.names import escape, upstream_name
from components.spec.schema import Spec

CALLER_KEEPALIVE_REQUESTS = 1_000_000
UNKNOWN_CALLER = "-"
"""The caller of a call whose proxy cannot tell callers apart (the access log's convention for "no value")."""


def service_proxies(spec: Spec, deployment: Deployment, calls: Sequence[Edge]) -> tuple[Proxy, ...]:
    """The service proxy of every called workload, in workload declaration order."""
    arrival = propagate(spec, {w.name: spec.workload_peak_rps(w.name) for w in spec.workloads})
    by_callee: dict[str, list[Edge]] = {}
    for edge in calls:
        by_callee.setdefault(edge.callee, []).append(edge)
    return tuple(_proxy(spec, deployment, by_callee[w.name], lambda name: arrival[name] or 0.0)
                 for w in spec.workloads if w.name in by_callee)


def status_port(spec: Spec, ports: set[int]) -> int:
    """The proxy's never-published health port: the gateway's, else the next one the proxy does not listen on."""
    port = spec.gateway.status_port
    while port in ports:
        port += 1
    return port


def _proxy(spec: Spec, deployment: Deployment, calls: list[Edge], load_rps: Callable[[str], float]) -> Proxy:
    """The proxy of one callee: the calls to its main port with its protocol's policy, then each other named port it is
    called on as a tcp pass-through (a server of its own port per caller)."""
    groups: dict[str | None, list[Edge]] = {}
    for edge in calls:
        groups.setdefault(edge.policy.port_name, []).append(edge)
    main = groups.get(None)
    policy = (main or calls)[0].policy
    upstreams, routes, limits, servers = [], [], [], []
    for port_name, group in sorted(groups.items(), key=lambda item: item[0] or ""):
        upstream = _upstream(spec, deployment, group[0].policy, load_rps)
        upstreams.append(upstream)
        for route, route_limits, server in _served(group, upstream, deployment):
            routes.append(route)
            limits += route_limits
            servers.append(server if port_name is None else replace(server, port=group[0].policy.port))
    gw = spec.gateway
    listen = {policy.port} if main else set()
    return Proxy(
        name=proxy_name(policy.workload),
        kind="service",
        workload=policy.workload,
        protocol=policy.protocol,
        environment=spec.environment,
        workers=1,
        listen_port=policy.port if main else 0,
        status_port=status_port(spec, listen | {s.port for s in servers if s.port is not None}),
        upstreams=tuple(upstreams),
        servers=tuple(servers),
        routes=tuple(routes),
        limits=tuple(sorted(limits, key=lambda l: l.kind != "rate")),
        timeouts=Timeouts(policy.connect_timeout_s, policy.timeout_s, policy.timeout_s),
        retries=policy.retries,
        # Callers are workloads of the stack: the network decides who reaches the proxy, the callee how large a
        # body it accepts; the client timeouts are the gateway's.
        # A caller keeps its connections (a gRPC client: one HTTP/2 connection for every call) for good: closing one
        # after 10,000 requests sends a GOAWAY that fails the calls in flight on it (bench/results/eastwest.md).
        client=ClientSettings(gw.client_timeouts.header_s, gw.client_timeouts.body_s, gw.client_timeouts.send_s,
                              gw.client_timeouts.keepalive_s, "0", ("0.0.0.0/0", "::/0"), keepalive_requests=CALLER_KEEPALIVE_REQUESTS),
        match_steps=match_steps(tuple(servers)),
    )


def _served(calls: list[Edge], upstream: Upstream, deployment: Deployment) -> list[tuple[Route, list[Limit], Server]]:
    """One route, its limits and its server per caller (callers told apart by their networks), or one for all
    callers holding the callee's totals (where callers are not told apart). Limits are named after the caller, and
    `<caller>:<port>` on another named port."""
    policy = calls[0].policy
    suffix = "" if policy.port_name is None else f":{policy.port_name}"
    if deployment.callers == "link":
        served = [(edge.caller, edge.name, edge.limit_rps, edge.burst, edge.max_concurrency) for edge in calls]
    else:
        rps = None if policy.protocol == "tcp" else round(sum((edge.limit_rps or 0.0) * 60 for edge in calls)) / 60  # exact per minute
        served = [(UNKNOWN_CALLER, f"{UNKNOWN_CALLER}.{policy.workload}{suffix}", rps, sum(e.burst for e in calls),
                   sum(e.max_concurrency for e in calls))]
    result = []
    for caller, name, rps, burst, concurrency in served:
        limit = f"{caller}{suffix}"
        route = Route(name=name, host=None, key=("prefix", "/"), methods=None, headers=(), upstream=upstream.name,
                      rate_limit=limit if rps is not None else None, concurrency_limit=limit, caller=caller)
        limits = [Limit(limit, "rate", "global", 1, rps=rps, burst=burst, nodelay=True)] if rps is not None else []
        limits.append(Limit(limit, "concurrency", "global", 1, connections=concurrency))
        location = Location("prefix", "/", True, (Rule(route, upstream.name, False),))
        result.append((route, limits, Server(DEFAULT_SERVER, (location,), caller=caller if deployment.callers == "link" else None)))
    return result


def _upstream(spec: Spec, deployment: Deployment, policy: CalleePolicy, load_rps: Callable[[str], float]) -> Upstream:
    shares = version_members(policy.versions, spec, policy.algorithm, deployment.balancing, load_rps)
    fails = member_max_fails(deployment.balancing)
    gw = spec.gateway
    servers = tuple(UpstreamServer(w, r, weight, member_max_conns(spec.workload(w), deployment.balancing),
                                   gw.passive_health.max_fails if fails is None else fails, gw.passive_health.fail_timeout_s, backup)
                    for w, r, weight, backup in weighted_members(shares, spec))
    split = len(policy.versions) > 1
    name = upstream_name([(v, weight if split else None) for v, weight in policy.versions])
    if policy.port_name is not None:  # a pass-through of another named port: its own members, on that port
        name = f"{name}_{escape(policy.port_name)}"
        servers = tuple(replace(server, port=policy.port) for server in servers)
    pool = None if policy.protocol == "tcp" else Keepalive(gw.keepalive.connections, gw.keepalive.timeout_s, gw.keepalive.requests)
    return Upstream(name, servers, method(policy.algorithm, policy.hash_key), pool)
