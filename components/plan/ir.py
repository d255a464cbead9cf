"""The plan's intermediate representation: every proxy netopt runs, as typed, resolved, target-neutral objects.

A `Proxy` is one nginx instance: the edge gateway (`kind` "gateway": routes from outside) or a service proxy
(`kind` "service": the calls into one workload, one server per caller). Everything a renderer needs is here and
resolved — defaults applied, limits named, upstream members weighted — so `components/render` reads only these
objects, never the user's spec (as Envoy Gateway's translators read only its IR). Where a member or a listener
is reachable (an address) is the target's business: the renderer takes an address map beside the proxy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

Protocol = Literal["http", "grpc", "tcp"]
ProxyKind = Literal["gateway", "service"]
LocationKind = Literal["exact", "prefix", "regex"]
DEFAULT_SERVER = "_"


@dataclass(frozen=True)
class Timeouts:
    """Seconds to connect to a member, between two reads of its response, between two writes of the request."""

    connect_s: float
    read_s: float
    send_s: float


@dataclass(frozen=True)
class Retries:
    """Total tries per request (1 = none), on which outcomes, and whether a request that was sent is replayed."""

    tries: int
    conditions: tuple[str, ...]
    non_idempotent: bool = False


@dataclass(frozen=True)
class Keepalive:
    connections: int
    timeout_s: float
    requests: int


@dataclass(frozen=True)
class Method:
    """How nginx picks a member: weighted round robin (`round_robin`, nginx's default), `least_conn`, `ip_hash`, or
    `hash` of a request key (`client_ip`, `uri`, `header:<Name>`, `cookie:<name>`; consistent)."""

    kind: Literal["round_robin", "least_conn", "ip_hash", "hash"]
    key: str | None = None


@dataclass(frozen=True)
class UpstreamServer:
    workload: str
    replica: int  # index into the address map: the replica (gateway balancing) or 0, the workload's Service (service balancing)
    weight: int
    max_conns: int
    max_fails: int
    fail_timeout_s: float
    backup: bool = False  # nginx `backup`: takes requests only while every primary server of the upstream is unavailable
    port: int | None = None  # another named port of the member than the address map's (a pass-through's)


@dataclass(frozen=True)
class Upstream:
    name: str
    servers: tuple[UpstreamServer, ...]
    method: Method
    keepalive: Keepalive | None  # None: no pooled connections (a stream upstream)


@dataclass(frozen=True)
class Limit:
    """A flow-control rule: a token bucket (`rate`: `rps`, `burst`, `nodelay`) or a cap on requests in flight
    (`concurrency`: `connections`), counted per `key` (`client_ip`, `global`, `header:<Name>`)."""

    name: str
    kind: Literal["rate", "concurrency"]
    key: str
    retry_after_s: int
    rps: float = 0.0
    burst: int = 0
    nodelay: bool = True
    connections: int = 0


@dataclass(frozen=True)
class Route:
    """What one route or call does with a request it matched: where it goes, the limits it counts against, and the
    timeouts and retries that differ from the proxy's defaults (None: the proxy's)."""

    name: str
    host: str | None
    key: tuple[str, str]  # (kind, path) the route matches on: `spec.match_key`
    methods: tuple[str, ...] | None
    headers: tuple[tuple[str, str], ...]
    upstream: str
    rate_limit: str | None
    concurrency_limit: str | None
    timeouts: Timeouts | None = None
    retries: Retries | None = None
    caller: str | None = None  # a service proxy's route: the workload that makes the call

    @property
    def conditional(self) -> bool:
        return bool(self.methods or self.headers)

    def counts_against(self, limit: Limit) -> bool:
        return (self.rate_limit if limit.kind == "rate" else self.concurrency_limit) == limit.name

    @property
    def specificity(self) -> int:
        return len(self.headers) + (1 if self.methods else 0)


@dataclass(frozen=True)
class Rule:
    """One route inside a location; a conditional rule (methods or headers) is tested by the dispatch map."""

    route: Route
    upstream: str
    host_specific: bool

    @property
    def conditional(self) -> bool:
        return self.route.conditional


@dataclass(frozen=True)
class Location:
    """An nginx location and its dispatch chain: first matching rule wins, an unconditional rule ends the chain.

    The chain is the location's own routes, then — when none of them is unconditional — the chain of the location
    nginx would have chosen without this one (so `GET /auth/login` still reaches the `/auth/` route when the exact
    `/auth/login` route takes POST only). An empty chain answers 404.
    """

    kind: LocationKind
    path: str
    stops_regex: bool  # prefix rendered with ^~: no regex can match below it, so nginx stops searching
    rules: tuple[Rule, ...]

    @property
    def needs_dispatch(self) -> bool:
        return len(self.rules) > 1 or (len(self.rules) == 1 and self.rules[0].conditional)

    @property
    def has_fallback(self) -> bool:
        return bool(self.rules) and not self.rules[-1].conditional

    def owns(self, rule: Rule) -> bool:
        """Whether this is the route's own location (a prefix route's is `location /cart/`, not the bare `= /cart`)."""
        path = (self.path.rstrip("/") or "/") if self.kind == "prefix" else self.path
        return rule.route.key == (self.kind, path)

    @property
    def timeouts(self) -> Timeouts | None:
        return self.rules[0].route.timeouts

    @property
    def retries(self) -> Retries | None:
        """The first rule's own retries: a location's rules share them (validated for routes, one rule for calls)."""
        return next((rule.route.retries for rule in self.rules if rule.route.retries is not None), None)


@dataclass(frozen=True)
class Server:
    """A virtual server: the gateway's per Host (`host`, DEFAULT_SERVER for routes without one), a service proxy's
    per caller (`caller`; None when the target cannot tell callers apart, one server for all)."""

    host: str
    locations: tuple[Location, ...]  # render order: exact, prefix (sorted), regex (declaration order)
    caller: str | None = None
    port: int | None = None  # a service proxy's pass-through of another named port (tcp); None: the proxy's listen port


@dataclass(frozen=True)
class ClientSettings:
    """How long the proxy waits on a client, what it accepts, and from where (CIDRs; everyone by default)."""

    header_s: float
    body_s: float
    send_s: float
    keepalive_s: float
    max_body_size: str
    allowed_sources: tuple[str, ...]
    keepalive_requests: int = 10_000  # requests on one client connection before nginx closes it (an HTTP/2 GOAWAY)


@dataclass(frozen=True)
class Proxy:
    """One nginx: what it listens for, the upstreams it balances, its routes, limits, defaults and log identity."""

    name: str  # "gateway", or "<workload>-proxy" for the service proxy in front of a workload
    kind: ProxyKind
    workload: str | None  # the workload a service proxy fronts
    protocol: Protocol
    environment: str
    workers: int  # worker processes: one per CPU of the proxy's limit
    listen_port: int
    status_port: int
    upstreams: tuple[Upstream, ...]
    servers: tuple[Server, ...]
    routes: tuple[Route, ...]  # declaration order
    limits: tuple[Limit, ...]
    timeouts: Timeouts
    retries: Retries
    client: ClientSettings
    match_steps: Mapping[str, int]  # route name -> r_j of the routing score

    @property
    def ports(self) -> list[int]:
        """Every port the proxy binds: its listeners' and its status port."""
        return sorted({self.status_port, *(self.listen_port if s.port is None else s.port for s in self.servers)})

    @property
    def passthrough(self) -> tuple[Server, ...]:
        """The servers of other named ports a service proxy carries as plain tcp (in the stream module)."""
        return tuple(s for s in self.servers if s.port is not None)

    def part(self, servers: tuple[Server, ...]) -> Proxy:
        """The same proxy with only `servers`, and the routes, limits and upstreams they reach: what one nginx module
        (http or stream) of its config holds."""
        routes = {rule.route.name for server in servers for location in server.locations for rule in location.rules}
        kept = tuple(route for route in self.routes if route.name in routes)
        names = {(kind, name) for route in kept for kind, name in (("rate", route.rate_limit), ("concurrency", route.concurrency_limit))}
        upstreams = {route.upstream for route in kept}
        return replace(self, servers=servers, routes=kept, limits=tuple(l for l in self.limits if (l.kind, l.name) in names),
                       upstreams=tuple(u for u in self.upstreams if u.name in upstreams))

    def limit(self, kind: str, name: str) -> Limit:
        return next(limit for limit in self.limits if limit.kind == kind and limit.name == name)

    @property
    def route_upstreams(self) -> dict[str, str]:
        return {route.name: route.upstream for route in self.routes}
