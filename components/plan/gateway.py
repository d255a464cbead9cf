"""The edge gateway as a `Proxy`: the spec's routes, limits and gateway settings, resolved once.

Everything the renderer used to look up in the spec is decided here: each route's upstream (one per distinct
weighted backend set, shared by the routes with that set, and its keepalive pool), member weights and backups,
`max_conns`/`max_fails` per balancing mode, the limits routes use, the balancing method, defaults and timeouts.
"""

from __future__ import annotations

import math

from components.plan.balancing import BalancingMode, member_max_conns, member_max_fails, upstream_members, weighted_members
from components.plan.ir import ClientSettings, Keepalive, Limit, Method, Proxy, Retries, Route, Timeouts, Upstream, UpstreamServer
from components.plan.locations import match_steps, servers_for
from components.plan.names import upstream_name
from components.spec import schema
from components.spec.base import Algorithm

GATEWAY_PROXY = "gateway"


def gateway_proxy(spec: schema.Spec, balancing: BalancingMode) -> Proxy:
    gw = spec.gateway
    upstreams, upstream_of = _upstreams(spec, balancing)
    retries = Retries(gw.retries.tries, tuple(gw.retries.conditions))
    routes = tuple(_route(route, upstream_of[route.name], retries) for route in spec.routes)
    servers = servers_for(routes)
    rated = {r.rate_limit for r in spec.routes}
    capped = {r.concurrency_limit for r in spec.routes}
    return Proxy(
        name=GATEWAY_PROXY,
        kind="gateway",
        workload=None,
        protocol="http",
        environment=spec.environment,
        workers=max(1, math.ceil(gw.resources.cpu)),
        listen_port=gw.listen_port,
        status_port=gw.status_port,
        upstreams=upstreams,
        servers=servers,
        routes=routes,
        limits=tuple([limit(l) for l in spec.rate_limits if l.name in rated] + [limit(l) for l in spec.concurrency_limits if l.name in capped]),
        timeouts=timeouts(gw.timeouts),
        retries=retries,
        client=ClientSettings(gw.client_timeouts.header_s, gw.client_timeouts.body_s, gw.client_timeouts.send_s,
                              gw.client_timeouts.keepalive_s, gw.client_max_body_size, tuple(str(c) for c in gw.allowed_sources)),
        match_steps=match_steps(servers),
    )


def timeouts(value: schema.Timeouts) -> Timeouts:
    return Timeouts(value.connect_s, value.read_s, value.send_s)


def limit(value: schema.RateLimit | schema.ConcurrencyLimit) -> Limit:
    if isinstance(value, schema.RateLimit):
        return Limit(value.name, "rate", value.key, value.retry_after_s, rps=value.rps, burst=value.burst, nodelay=value.nodelay)
    return Limit(value.name, "concurrency", value.key, value.retry_after_s, connections=value.connections)


def method(algorithm: Algorithm, hash_key: str | None) -> Method:
    """round_robin, weighted, latency_weighted and latency_optimal are nginx's weighted round robin (no directive);
    latency_optimal's `backup` servers need it (or least_conn): hash, ip_hash and random reject them."""
    if algorithm == "least_conn":
        return Method("least_conn")
    if algorithm == "ip_hash":
        return Method("ip_hash")
    if algorithm == "consistent_hash":
        return Method("hash", hash_key)
    return Method("round_robin")


def _route(route: schema.Route, upstream: str, retries: Retries) -> Route:
    """A route as the proxy runs it; `retry_non_idempotent` is the gateway's retries with POST/PATCH replayed too."""
    match = route.match
    return Route(
        name=route.name,
        host=match.host,
        key=match.key,
        methods=tuple(match.methods) if match.methods else None,
        headers=tuple(match.headers.items()),
        upstream=upstream,
        rate_limit=route.rate_limit,
        concurrency_limit=route.concurrency_limit,
        timeouts=timeouts(route.timeouts) if route.timeouts is not None else None,
        retries=Retries(retries.tries, retries.conditions, non_idempotent=True) if route.retry_non_idempotent else None,
    )


def _upstreams(spec: schema.Spec, balancing: BalancingMode) -> tuple[tuple[Upstream, ...], dict[str, str]]:
    """One upstream per distinct weighted backend set, shared by routes with the same set (one keepalive pool)."""
    gw = spec.gateway
    by_signature: dict[tuple[tuple[str, int, int, bool], ...], Upstream] = {}
    upstream_of: dict[str, str] = {}
    pool = Keepalive(gw.keepalive.connections, gw.keepalive.timeout_s, gw.keepalive.requests)
    for route in spec.routes:
        signature = weighted_members(upstream_members(route, spec, balancing), spec)
        if signature not in by_signature:
            # The same backends and weights give the same members, so a name stands for one signature.
            name = upstream_name([(b.workload, b.weight if len(route.backends) > 1 else None) for b in route.backends])
            fails = member_max_fails(balancing)
            servers = tuple(UpstreamServer(w, r, weight, member_max_conns(spec.workload(w), balancing),
                                           gw.passive_health.max_fails if fails is None else fails, gw.passive_health.fail_timeout_s, backup)
                            for w, r, weight, backup in signature)
            by_signature[signature] = Upstream(name, servers, method(gw.algorithm, gw.hash_key), pool)
        upstream_of[route.name] = by_signature[signature].name
    return tuple(by_signature.values()), upstream_of
