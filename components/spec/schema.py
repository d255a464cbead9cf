"""The typed network spec: what a stack's `netopt:*` config means.

Every model forbids unknown keys so a typo is an error, not a silently ignored setting. Cross-references
(routes -> workloads, routes -> limits) are checked in `components.spec.validation`, which collects every problem
into one report; this module only states the shape of each object.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from components.spec.addresses import AnyAddress, AnySubnet, IPv4Subnet
from components.spec.regex import RegexError, compile_location_regex

DNS_LABEL = r"^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$"
IDENTIFIER = r"^[a-z][a-z0-9_-]{0,62}$"
HEADER_NAME = r"^[A-Za-z0-9-]{1,64}$"
HOST_NAME = r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
URI_PATH = r"^/[^\s;{}\"'\\]*$"
SIZE = r"^[0-9]{1,6}[kmKM]?$"
NON_ROOT_USER = r"^[1-9][0-9]{0,9}:[0-9]{1,10}$"  # uid:gid, uid 0 (root) excluded
DEFAULT_WORKLOAD_USER = "65532:65532"

Name = Annotated[str, Field(pattern=DNS_LABEL)]
Identifier = Annotated[str, Field(pattern=IDENTIFIER)]
LARGEST = 1_000_000_000
"""Ceiling of every count and amount: far above any real config, within nginx's and Docker's integer fields."""
Count = Annotated[int, Field(ge=1, le=LARGEST)]
Amount = Annotated[float, Field(gt=0, le=LARGEST)]
Seconds = Annotated[float, Field(gt=0, le=31_536_000)]  # up to a year
ResponseTimeMs = Annotated[float, Field(ge=0.001, le=3_600_000)]  # 1 µs to an hour
Port = Annotated[int, Field(ge=1, le=65535)]

Algorithm = Literal["round_robin", "weighted", "least_conn", "ip_hash", "consistent_hash", "latency_weighted", "latency_optimal"]
RetryCondition = Literal[
    "error", "timeout", "invalid_header", "http_500", "http_502", "http_503", "http_504", "http_429"
]
HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
PathType = Literal["exact", "prefix", "regex"]


def match_key(path_type: str, path: str) -> tuple[str, str]:
    """What a route matches on: a prefix without its trailing slashes (Gateway API PathPrefix: "/api/" is "/api", and
    matches /api, /api/ and /api/x by whole segments, never /apix); exact and regex paths as written."""
    return (path_type, path.rstrip("/") or "/") if path_type == "prefix" else (path_type, path)
Target = Literal["docker", "kubernetes"]


class Strict(BaseModel):
    """Base for every spec object: unknown keys are errors, values are immutable once validated.

    Types are strict: `true` is not the port 1, `"8080"` is not a number, NaN and infinity are not numbers;
    only a whole number still counts where a number with a fraction is expected.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Resources(Strict):
    """Per-container limits; Docker gets them as --cpus/--memory, Kubernetes as requests=limits."""

    cpu: Amount = 0.5
    memory_mb: Annotated[int, Field(ge=16, le=LARGEST)] = 128


class HealthCheck(Strict):
    """How often a replica is probed and how many failures take it out of rotation (shared by every kind)."""

    interval_s: Seconds = 5
    timeout_s: Seconds = 2
    retries: Count = 3


class HttpHealth(HealthCheck):
    """GET `path` on `port` (default: the workload's port); healthy on a 2xx/3xx answer."""

    kind: Literal["http"] = "http"
    path: Annotated[str, Field(pattern=URI_PATH)] = "/healthz"
    port: Port | None = None
    headers: dict[Annotated[str, Field(pattern=HEADER_NAME)], Annotated[str, Field(pattern=r"^[\x20-\x7e]{0,256}$")]] = {}


class GrpcHealth(HealthCheck):
    """The standard gRPC health service (grpc.health.v1.Health/Check) for `service` ("" = the whole server)."""

    kind: Literal["grpc"]
    service: Annotated[str, Field(pattern=r"^[A-Za-z0-9._/-]{0,256}$")] = ""
    port: Port | None = None


class TcpHealth(HealthCheck):
    """A TCP connection to `port` (default: the workload's port) is accepted."""

    kind: Literal["tcp"]
    port: Port | None = None


class ExecHealth(HealthCheck):
    """`command` run inside the container (argv, no shell) exits 0."""

    kind: Literal["exec"]
    command: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]


class NoHealth(Strict):
    """No probe at all: said explicitly, refused in prod by the health-checks policy."""

    kind: Literal["none"]


Health = Annotated[HttpHealth | GrpcHealth | TcpHealth | ExecHealth | NoHealth, Field(discriminator="kind")]
Protocol = Literal["http", "grpc", "tcp"]
_DEFAULT_HEALTH_KIND: dict[str, str] = {"http": "http", "grpc": "grpc", "tcp": "tcp"}


class Volume(Strict):
    """A writable directory under the read-only root filesystem.

    `persistent` keeps its data across restarts and replacements: a Docker named volume, a PersistentVolumeClaim
    (from a StatefulSet's volumeClaimTemplates) on Kubernetes, one per replica. `scratch` is emptied with the
    container: a tmpfs on Docker, an emptyDir on Kubernetes. `size_mb` is the claim's size, or the scratch limit.
    """

    name: Name
    path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$")]
    kind: Literal["persistent", "scratch"] = "persistent"
    size_mb: Annotated[int, Field(ge=1, le=1_048_576)] = 1024


class Call(Strict):
    """One edge of the service graph: this workload calls `workload`, `ratio` times per request it serves.

    A ratio above 1 is a fan-out (a page that asks the catalog for 3 items), below 1 a call made by some requests
    only (a cart lookup on 60 % of page views). Calls go service to service, not through the gateway.
    """

    workload: Name
    ratio: Amount = 1.0


class Workload(Strict):
    """One backend service, speaking `protocol` on `port` (http, grpc or plain tcp). `response_time_ms` and
    `max_concurrency` feed the scores and capacity model; `calls` are the workloads it calls itself (the only
    service-to-service traffic the network lets through). `health` defaults to the protocol's own probe.
    `command`/`args` replace the image's entrypoint/arguments; `volumes` are its writable (or persistent)
    directories; `singleton: true` declares one instance that holds the state (a cache, a database), which
    must not be multiplied into independent copies.

    `response_time_ms` is either one value for every replica or a list with one value per replica (a replica on
    slower hardware); latency_weighted and latency_optimal balancing use the per-replica values.
    """

    name: Name
    image: Annotated[str, Field(min_length=1)]
    port: Port
    replicas: Annotated[int, Field(ge=1, le=256)] = 1
    response_time_ms: ResponseTimeMs | list[ResponseTimeMs]
    max_concurrency: Count
    replica_weights: list[Count] | None = None
    idle_timeout_s: Seconds = 75
    resources: Resources = Resources()
    protocol: Protocol = "http"
    health: Health | None = None
    env: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str] = {}
    read_only_root_fs: bool = True
    calls: list[Call] = []
    volumes: list[Volume] = []
    command: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None = None
    args: list[str] | None = None
    singleton: bool = False
    run_as_user: Annotated[str, Field(pattern=NON_ROOT_USER)] | None = None  # None: `kubernetes.run_as_user` (65532:65532)

    @field_validator("health", mode="before")
    @classmethod
    def _health_kind_defaults_to_http(cls, value: object) -> object:
        """`{path: /health}` (no kind) is the http kind, `{command: [...]}` the exec kind, as before kinds existed."""
        if isinstance(value, dict) and "kind" not in value:
            return {"kind": "exec" if "command" in value else "http", **value}
        return value

    @model_validator(mode="after")
    def _health_is_explicit_when_given(self) -> Workload:
        if "health" in self.model_fields_set and self.health is None:
            raise ValueError("health: null is ambiguous; leave health out for the protocol's default probe, or say "
                             "health: {kind: none} to run without one")
        return self

    def persistent(self) -> bool:
        """Whether any volume keeps data: the workload then has per-replica storage (a StatefulSet on Kubernetes)."""
        return any(v.kind == "persistent" for v in self.volumes)

    def health_check(self) -> HttpHealth | GrpcHealth | TcpHealth | ExecHealth | NoHealth:
        """The probe this workload gets: its own `health`, else the default for its protocol."""
        if self.health is not None:
            return self.health
        kind = _DEFAULT_HEALTH_KIND[self.protocol]
        return HttpHealth() if kind == "http" else GrpcHealth(kind="grpc") if kind == "grpc" else TcpHealth(kind="tcp")

    @model_validator(mode="after")
    def _per_replica_lists_match_replicas(self) -> Workload:
        for field in ("response_time_ms", "replica_weights"):
            value = getattr(self, field)
            if isinstance(value, list) and len(value) != self.replicas:
                raise ValueError(f"{field} lists {len(value)} values but replicas is {self.replicas}; give one per replica")
        return self

    def replica_response_times_s(self) -> list[float]:
        """Declared response time of each replica, in seconds (the t_i of the load-balancing score)."""
        times = self.response_time_ms if isinstance(self.response_time_ms, list) else [self.response_time_ms] * self.replicas
        return [t / 1000.0 for t in times]


class Keepalive(Strict):
    """Upstream connection reuse. `timeout_s` must stay below every backend's idle timeout."""

    connections: Annotated[int, Field(ge=1, le=4096)] = 64
    timeout_s: Seconds = 60
    requests: Count = 10000


class PassiveHealth(Strict):
    max_fails: Annotated[int, Field(ge=0, le=LARGEST)] = 3
    fail_timeout_s: Seconds = 10


class Retries(Strict):
    """Total tries per request (1 = no retry). Non-idempotent methods are only retried where a route opts in."""

    tries: Annotated[int, Field(ge=1, le=10)] = 2
    conditions: list[RetryCondition] = ["error", "timeout", "http_502", "http_503", "http_504"]


class Timeouts(Strict):
    connect_s: Seconds = 2
    read_s: Seconds = 30
    send_s: Seconds = 30


class ClientTimeouts(Strict):
    """How long the gateway waits on a client: nginx's 60 s defaults let slow clients hold connections open.

    `header_s`: to receive the whole request header; `body_s`: between two reads of the body; `send_s`: between two
    writes of the response; `keepalive_s`: an idle keep-alive connection stays open.
    """

    header_s: Seconds = 10
    body_s: Seconds = 10
    send_s: Seconds = 10
    keepalive_s: Seconds = 65


class Publish(Strict):
    """Where the gateway's port is published on the Docker host (127.0.0.1 keeps a dev stack private)."""

    address: AnyAddress = ipaddress.IPv4Address("127.0.0.1")
    port: Port = 8080


class Gateway(Strict):
    """The load-balancing gateway (nginx) in front of every workload.

    `algorithm` spreads each route's workload share over the workload's replicas (the route split always holds):
    round_robin evenly; weighted by `replica_weights`; least_conn to the fewest active connections; ip_hash and
    consistent_hash by a key; latency_weighted with weights ∝ service rate μ_i = max_concurrency / response time
    (equal utilization); latency_optimal with the shares that minimize the mean response time at the workload's
    declared peak λ_w (Σ over routes of `traffic.<route>.peak_rps` × the workload's part of the route split), each
    replica the capacity model's M/M/c queue (c = max_concurrency, service time = its response time): the used
    replicas share one marginal cost d/dλ[λ·W_i(λ)], and a replica whose response time exceeds it gets nothing
    (water-filling, `balancing.latency_optimal_split`). A replica left out is an nginx `backup` server: it takes
    requests only while every primary is down or at max_conns. From λ_w ≥ Σ μ (overload) the shares are ∝ μ;
    equal response times give equal shares.
    """

    image: Annotated[str, Field(min_length=1)]
    algorithm: Algorithm = "round_robin"
    hash_key: str | None = None
    listen_port: Port = 8080
    status_port: Port = 8081
    publish: Publish = Publish()
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    keepalive: Keepalive = Keepalive()
    passive_health: PassiveHealth = PassiveHealth()
    retries: Retries = Retries()
    timeouts: Timeouts = Timeouts()
    client_timeouts: ClientTimeouts = ClientTimeouts()
    allowed_sources: list[AnySubnet] = [
        ipaddress.IPv4Network("0.0.0.0/0"),
        ipaddress.IPv6Network("::/0"),
    ]
    client_max_body_size: Annotated[str, Field(pattern=SIZE)] = "1m"
    resources: Resources = Resources()
    replicas: Annotated[int, Field(ge=1, le=64)] = 1
    run_as_user: Annotated[str, Field(pattern=r"^[0-9]{1,10}(:[0-9]{1,10})?$")] = "101:101"
    health_command: Annotated[list[str], Field(min_length=1)] | None = None

    @field_validator("hash_key")
    @classmethod
    def _hash_key_form(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"client_ip|uri|header:[A-Za-z0-9-]+|cookie:[A-Za-z0-9_]+", value):
            raise ValueError("hash_key must be one of client_ip, uri, header:<Name>, cookie:<name>")
        return value

    @model_validator(mode="after")
    def _hash_key_with_consistent_hash(self) -> Gateway:
        if self.algorithm == "consistent_hash" and self.hash_key is None:
            raise ValueError("algorithm consistent_hash needs hash_key (client_ip, uri, header:<Name> or cookie:<name>)")
        if self.algorithm != "consistent_hash" and self.hash_key is not None:
            raise ValueError(f"hash_key is only used by algorithm consistent_hash, not {self.algorithm}; remove it")
        if self.listen_port == self.status_port:
            raise ValueError(f"listen_port and status_port are both {self.listen_port}; give the status port another number")
        return self


class RouteMatch(Strict):
    host: Annotated[str, Field(pattern=HOST_NAME)] | None = None
    path: Annotated[str, Field(min_length=1)] = "/"
    path_type: PathType = "prefix"
    headers: dict[Annotated[str, Field(pattern=HEADER_NAME)], Annotated[str, Field(pattern=r"^[\x21-\x7e]{1,256}$")]] = {}
    methods: list[HttpMethod] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return match_key(self.path_type, self.path)

    @model_validator(mode="after")
    def _path_is_valid_for_its_type(self) -> RouteMatch:
        if self.path_type == "regex":
            if '"' in self.path or "\\\\" in self.path or not self.path.isprintable():
                raise ValueError("a regex path may not contain a double quote, a double backslash or a control character")
            try:
                compile_location_regex(self.path)  # PCRE2 as nginx compiles it, not Python's re
            except RegexError as err:
                raise ValueError(f"path is not a valid regex (PCRE2, as nginx compiles it): {err}") from None
        elif not re.fullmatch(URI_PATH, self.path):
            raise ValueError("path must start with / and contain no spaces, quotes, ';', '{' or '}'")
        return self

    @model_validator(mode="after")
    def _header_names_are_distinct(self) -> RouteMatch:
        """Header names are case-insensitive: `X-A: 1` and `x-a: 2` would be one header that must equal both."""
        seen: dict[str, str] = {}
        for name in self.headers:
            if name.lower() in seen:
                raise ValueError(f"headers {seen[name.lower()]!r} and {name!r} name the same header (names are case-insensitive), "
                                 "so no request can match both values; keep one")
            seen[name.lower()] = name
        return self


class RouteBackend(Strict):
    workload: Name
    weight: Count = 1


class Route(Strict):
    """A routing rule: where matching requests go, with which split, limits and timeouts."""

    name: Identifier
    match: RouteMatch = RouteMatch()
    backends: Annotated[list[RouteBackend], Field(min_length=1)]
    rate_limit: Identifier | None = None
    concurrency_limit: Identifier | None = None
    timeouts: Timeouts | None = None
    retry_non_idempotent: bool = False


LimitKey = Annotated[str, Field(pattern=r"^(client_ip|global|header:[A-Za-z0-9-]{1,64})$")]


class RateLimit(Strict):
    """A token bucket: `rps` sustained, `burst` extra; over it the client gets 429 with Retry-After."""

    name: Identifier
    rps: Amount
    burst: Annotated[int, Field(ge=0, le=LARGEST)] = 0
    nodelay: bool = True
    key: LimitKey = "client_ip"
    retry_after_s: Count = 1

    @field_validator("rps")
    @classmethod
    def _rps_expressible_in_nginx(cls, value: float) -> float:
        if not float(value).is_integer() and not float(value * 60).is_integer():
            raise ValueError("rps must be a whole number per second or per minute (e.g. 5 or 0.5)")
        return value


class ConcurrencyLimit(Strict):
    """At most `connections` requests in flight per key; more get 429 with Retry-After."""

    name: Identifier
    connections: Annotated[int, Field(ge=1, le=65535)]  # nginx's limit_conn ceiling
    key: LimitKey = "client_ip"
    retry_after_s: Count = 1


class Network(Strict):
    """Backends live on `subnet` (internal, no route out); the gateway also joins `edge_subnet`."""

    name: Name
    subnet: IPv4Subnet | None = None
    edge_subnet: IPv4Subnet | None = None


class Traffic(Strict):
    """Declared peak load of one route; `clients` is how many distinct limit keys (clients) share it."""

    peak_rps: Annotated[float, Field(ge=0, le=LARGEST)]
    clients: Count = 1


class Scoring(Strict):
    """References that turn each strategy's score into the dimensionless s_o of the overall score."""

    latency_budget_ms: Amount = 100
    flow_reference_rps: Amount = 1000


class Autoscaling(Strict):
    """A HorizontalPodAutoscaler for one workload (kubernetes target): its `replicas` is the minimum."""

    max_replicas: Annotated[int, Field(ge=2, le=256)]
    cpu_utilization_percent: Annotated[int, Field(ge=10, le=100)] = 70


class KubernetesSettings(Strict):
    """`netopt:kubernetes`: what only the kubernetes target reads, but for `run_as_user` (below).

    `render_yaml_to_directory` is render-only mode: the provider writes the manifests there and never contacts a
    cluster. `run_as_user` is the uid:gid every workload runs as unless it sets its own, on both targets (the gateway
    uses `gateway.run_as_user`); `drain_s` is how long a terminating pod keeps serving while its endpoint is
    withdrawn. `dns_namespace` and `dns_pod_labels` find the cluster DNS pods, the one egress every pod keeps under
    default-deny.
    """

    context: Annotated[str, Field(min_length=1)] | None = None
    render_yaml_to_directory: Annotated[str, Field(min_length=1)] | None = None
    cluster_domain: Annotated[str, Field(pattern=HOST_NAME)] = "cluster.local"
    run_as_user: Annotated[str, Field(pattern=NON_ROOT_USER)] = DEFAULT_WORKLOAD_USER
    drain_s: Annotated[int, Field(ge=0, le=60)] = 5
    autoscaling: dict[Name, Autoscaling] = {}
    dns_namespace: Name = "kube-system"
    dns_pod_labels: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9./_-]{1,253}$")], Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{0,63}$")]] = {
        "k8s-app": "kube-dns"}


class Spec(Strict):
    """The whole `netopt` namespace of a stack's config."""

    environment: Identifier
    target: Target = "docker"
    network: Network
    gateway: Gateway
    workloads: Annotated[list[Workload], Field(min_length=1)]
    routes: Annotated[list[Route], Field(min_length=1)]
    rate_limits: list[RateLimit] = []
    concurrency_limits: list[ConcurrencyLimit] = []
    traffic: dict[str, Traffic] = {}
    scoring: Scoring = Scoring()
    namespace: Name | None = None
    kubernetes: KubernetesSettings = KubernetesSettings()

    @field_validator("traffic", mode="before")
    @classmethod
    def _bare_number_is_peak_rps(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: {"peak_rps": v} if isinstance(v, int | float) and not isinstance(v, bool) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _kubernetes_settings_fit(self) -> Spec:
        names = [w.name for w in self.workloads]
        for name, scaling in self.kubernetes.autoscaling.items():
            if name not in names:
                raise ValueError(f"netopt:kubernetes.autoscaling.{name}: no workload named '{name}' (workloads: {', '.join(names)})")
            replicas = next(w.replicas for w in self.workloads if w.name == name)
            if scaling.max_replicas < replicas:
                raise ValueError(f"netopt:kubernetes.autoscaling.{name}.max_replicas ({scaling.max_replicas}) is below the workload's "
                                 f"replicas ({replicas}), its minimum; raise it")
        if self.target == "kubernetes":
            for i, w in enumerate(self.workloads):
                if w.replica_weights is not None:
                    raise ValueError(f"netopt:workloads[{i}].replica_weights cannot hold on the kubernetes target: the pods of a Deployment "
                                     "are interchangeable and the workload's Service spreads connections evenly over them; remove it")
            if "gateway" in names:
                raise ValueError("a workload named 'gateway' would collide with the gateway's Deployment and Service "
                                 "on the kubernetes target; rename it")
        return self

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Spec:
        """A copy without the lookups cached below: they derive from fields that `update` may replace."""
        copy = super().model_copy(update=update, deep=deep)
        for cached in [key for key in copy.__dict__ if key not in type(self).model_fields]:
            del copy.__dict__[cached]
        return copy

    def workload(self, name: str) -> Workload:
        return self._workloads_by_name[name]

    def rate_limit(self, name: str | None) -> RateLimit | None:
        return self._rate_limits_by_name.get(name) if name else None

    @cached_property
    def _workloads_by_name(self) -> dict[str, Workload]:
        return {w.name: w for w in self.workloads}

    @cached_property
    def _rate_limits_by_name(self) -> dict[str, RateLimit]:
        return {limit.name: limit for limit in self.rate_limits}

    def peak(self, route: str) -> Traffic:
        return self.traffic.get(route, Traffic(peak_rps=0))

    def workload_peak_rps(self, name: str) -> float:
        """λ_w: a workload's declared peak load, Σ over routes of the route's peak × the workload's part of its split."""
        return self._workload_peaks.get(name, 0.0)

    @cached_property
    def _workload_peaks(self) -> dict[str, float]:
        peaks: dict[str, float] = {}
        for route in self.routes:
            peak = self.peak(route.name).peak_rps
            total_weight = sum(b.weight for b in route.backends)
            for backend in route.backends:
                peaks[backend.workload] = peaks.get(backend.workload, 0.0) + peak * backend.weight / total_weight
        return peaks

    def workload_user(self, workload: Workload) -> str:
        """uid:gid a workload's containers run as, on either target: its own `run_as_user`, else the stack-wide
        `kubernetes.run_as_user` (default 65532:65532), so no backend runs as its image's user (possibly root)."""
        return workload.run_as_user or self.kubernetes.run_as_user

    def max_replicas(self, name: str) -> int:
        """The most replicas a workload can run: its autoscaler's ceiling on kubernetes, else its declared replicas."""
        scaling = self.kubernetes.autoscaling.get(name) if self.target == "kubernetes" else None
        return scaling.max_replicas if scaling else self.workload(name).replicas
