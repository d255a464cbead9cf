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

from pydantic import AfterValidator, Field, field_validator, model_validator

from components.spec.addresses import AnyAddress, AnySubnet, IPv4Subnet
from components.spec.base import (
    LARGEST,
    Algorithm,
    Amount,
    Count,
    Identifier,
    Name,
    Seconds,
    Strict,
    hash_key_form,
)
from components.spec.calls import Call, MeshKind, TrafficPolicy
from components.spec.redos import catastrophic_backtracking
from components.spec.regex import RegexError, compile_location_regex
from components.spec.runtime import Capabilities, NamedPort, NonRootUser, Requests, RestartPolicy, uid_gid

HEADER_NAME = r"^[A-Za-z0-9-]{1,64}$"
HOST_NAME = r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
URI_PATH = r"^/[^\s;{}\"'\\\x00-\x1f\x7f]{0,4095}$"  # no control character; within nginx's URI buffer (below)
SIZE = r"^[0-9]{1,6}[kmKM]?$"
DEFAULT_WORKLOAD_USER = "65532:65532"

ResponseTimeMs = Annotated[float, Field(ge=0.001, le=3_600_000)]  # 1 µs to an hour
Port = Annotated[int, Field(ge=1, le=65535)]

MAX_ARG_STRLEN = 131_072
"""Linux's ceiling on one argv or environment string, its NUL included (32 pages): execve() fails with E2BIG past
it, so a container given a longer `NAME=value` or argument is created and then cannot start."""
MAX_PROCESS_BYTES = 1_048_576
"""Ceiling of a workload's command, args and env together, each string counted as execve() counts it against
ARG_MAX (its bytes, its NUL and an 8-byte pointer): ARG_MAX is 2 MiB under the default 8 MiB stack, and half of
it leaves room for what the image and the runtime add. It also keeps a pod spec far inside the 1.5 MiB that one
Kubernetes object may take in etcd."""
MAX_IMAGE_REFERENCE = 512
"""An image reference: Docker caps the repository name at 255 characters, a tag at 128, a sha256 digest is 71."""


def _process_text(value: str) -> str:
    """A string a container's process receives (argument, environment value): no NUL, which no C string can carry
    (Docker and the kubelet refuse it, or it silently cuts the value), no other control character but tab, newline
    and carriage return, and shorter than MAX_ARG_STRLEN."""
    for position, character in enumerate(value):
        if character == "\x00":
            raise ValueError(f"contains a NUL character (\\x00) at position {position}; no process argument or environment "
                             "value can carry one: remove it")
        if (character < " " and character not in "\t\n\r") or character == "\x7f":
            raise ValueError(f"contains the control character \\x{ord(character):02x} at position {position}; write it out "
                             "(e.g. as an escape the program decodes) or remove it")
    size = len(value.encode())
    if size >= MAX_ARG_STRLEN:
        raise ValueError(f"is {size:,} bytes; one argument or environment entry must stay under {MAX_ARG_STRLEN:,} bytes "
                         "(Linux's MAX_ARG_STRLEN: past it the container cannot start, E2BIG)")
    return value


ProcessText = Annotated[str, AfterValidator(_process_text)]
ImageReference = Annotated[str, Field(min_length=1, max_length=MAX_IMAGE_REFERENCE, pattern=r"^[\x21-\x7e]+$")]

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


class Resources(Strict):
    """Per-container limits (Docker --cpus/--memory, Kubernetes limits), 0.5 CPU and 128 MiB when left out; `requests`
    (runtime.Requests) reserve less, each defaulting to its limit."""

    cpu: Amount = 0.5
    memory_mb: Annotated[int, Field(ge=16, le=LARGEST)] = 128
    requests: Requests = Requests()

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        for field, limit in (("cpu", self.cpu), ("memory_mb", self.memory_mb)):
            request = getattr(self.requests, field)
            if request is not None and request > limit:
                raise ValueError(f"requests.{field} ({request:g}) is above the limit {field} ({limit:g}): a container cannot reserve more "
                                 f"than it may use; lower the request or raise the limit")
        return self


class HealthCheck(Strict):
    """How often a replica is probed and how many failures take it out of rotation (shared by every kind).
    `period_s`/`failure_threshold` are Kubernetes' names of `interval_s`/`retries`; `initial_delay_s` holds every probe
    off; `start_period_s` is a slow starter's grace (a startupProbe, Docker's start_period). README, "Health checks"."""

    interval_s: Seconds = 5
    timeout_s: Seconds = 2
    retries: Count = 3
    period_s: Seconds | None = None
    failure_threshold: Count | None = None
    initial_delay_s: Annotated[float, Field(ge=0, le=31_536_000)] | None = None
    start_period_s: Seconds | None = None

    @model_validator(mode="after")
    def _one_name_per_setting(self) -> HealthCheck:
        for docker_name, kubernetes_name in (("interval_s", "period_s"), ("retries", "failure_threshold")):
            if docker_name in self.model_fields_set and getattr(self, kubernetes_name) is not None:
                raise ValueError(f"{docker_name} and {kubernetes_name} are the same setting (Docker's and Kubernetes' name); give one")
        return self

    @property
    def period(self) -> float:
        """Seconds between two probes."""
        return self.period_s if self.period_s is not None else self.interval_s

    @property
    def failures(self) -> int:
        """Failed probes in a row that take a replica out of rotation (liveness restarts it after twice as many)."""
        return self.failure_threshold if self.failure_threshold is not None else self.retries


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
    command: Annotated[list[Annotated[ProcessText, Field(min_length=1)]], Field(min_length=1, max_length=4096)]


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


class Workload(Strict):
    """One backend service, speaking `protocol` on `port` (http, grpc or plain tcp). `response_time_ms` and
    `max_concurrency` feed the scores and capacity model; `calls` are the workloads it calls itself (the only
    service-to-service traffic the network lets through); `traffic_policy` is how its service proxy handles the
    calls into it (`spec/calls.py`). `health` defaults to the protocol's own probe.
    `command`/`args` replace the image's entrypoint/arguments; `volumes` are its writable (or persistent)
    directories; `singleton: true` declares one instance that holds the state (a cache, a database), which
    must not be multiplied into independent copies.

    `response_time_ms` is either one value for every replica or a list with one value per replica (a replica on
    slower hardware); latency_weighted and latency_optimal balancing use the per-replica values.

    How it runs (runtime.py): `run_as_user`, `capabilities`, named `ports`, `restart`; no `port`: it listens nowhere (a
    queue consumer), and `load_rps` is what it takes from outside the gateway and the calls.
    """

    name: Name
    image: ImageReference
    port: Port | None = None
    replicas: Annotated[int, Field(ge=1, le=256)] = 1
    response_time_ms: ResponseTimeMs | list[ResponseTimeMs]
    max_concurrency: Count
    replica_weights: list[Count] | None = None
    idle_timeout_s: Seconds = 75
    resources: Resources = Resources()
    protocol: Protocol = "http"
    health: Health | None = None
    env: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")], ProcessText] = {}
    read_only_root_fs: bool = True
    calls: list[Call] = []
    traffic_policy: TrafficPolicy = TrafficPolicy()
    volumes: list[Volume] = []
    command: Annotated[list[Annotated[ProcessText, Field(min_length=1)]], Field(min_length=1, max_length=4096)] | None = None
    args: Annotated[list[ProcessText], Field(max_length=4096)] | None = None  # 4,096: far above any real command line
    singleton: bool = False
    run_as_user: NonRootUser | None = None  # None: `kubernetes.run_as_user` (65532:65532)
    capabilities: Capabilities = Capabilities()
    ports: list[NamedPort] = []
    restart: RestartPolicy = "unless-stopped"
    load_rps: Annotated[float, Field(ge=0, le=LARGEST)] = 0

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

    def named_ports(self) -> dict[str, int]:
        """Every port the workload serves, by name: the main `port` under its protocol's name, then `ports`."""
        main = {self.protocol: self.port} if self.port is not None else {}
        return main | {p.name: p.port for p in self.ports}

    def call_port(self, call: Call) -> int:
        """The port a call reaches (validated: its name is one of this workload's, or it has a main port)."""
        return self.named_ports()[call.port] if call.port is not None else int(self.port or 0)

    def health_check(self) -> HttpHealth | GrpcHealth | TcpHealth | ExecHealth | NoHealth:
        """The probe this workload gets: its own `health`, else the default for its protocol."""
        if self.health is not None:
            return self.health
        kind = _DEFAULT_HEALTH_KIND[self.protocol]
        return HttpHealth() if kind == "http" else GrpcHealth(kind="grpc") if kind == "grpc" else TcpHealth(kind="tcp")

    @model_validator(mode="after")
    def _process_fits_execve(self) -> Workload:
        """command + args + env within MAX_PROCESS_BYTES, counted as execve() counts them against ARG_MAX."""
        strings = [*(self.command or []), *(self.args or []), *(f"{k}={v}" for k, v in self.env.items())]
        size = sum(len(text.encode()) + 1 + 8 for text in strings)
        if size > MAX_PROCESS_BYTES:
            raise ValueError(f"command, args and env take {size:,} bytes as the process sees them (each string with its NUL "
                             f"and pointer); at most {MAX_PROCESS_BYTES:,} fit (ARG_MAX, 2 MiB, less room for the image's own): "
                             "move large data into a volume or a file the image reads")
        return self

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

    image: ImageReference
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
    run_as_user: NonRootUser = "101:101"
    health_command: Annotated[list[ProcessText], Field(min_length=1, max_length=4096)] | None = None
    # Where the image's nginx keeps the stream module, which tcp service proxies load, when it is a dynamic module
    # (Debian's nginx with libnginx-mod-stream: /usr/lib/nginx/modules/ngx_stream_module.so). None: compiled in, as
    # in the official nginx image.
    stream_module: Annotated[str, Field(pattern=r"^/[A-Za-z0-9._/-]+\.so$")] | None = None

    @field_validator("hash_key")
    @classmethod
    def _hash_key_form(cls, value: str | None) -> str | None:
        return hash_key_form(value)

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
    path: Annotated[str, Field(min_length=1, max_length=4096)] = "/"
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
            backtracking = catastrophic_backtracking(self.path)  # recheck, a ReDoS analyzer
            if backtracking:
                raise ValueError(f"path {self.path!r} {backtracking}")
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
    default-deny. `mesh` says who carries the calls between workloads: netopt's service proxies (`none`) or a
    service mesh (`linkerd`, `istio`) whose resources netopt generates instead.
    """

    context: Annotated[str, Field(min_length=1)] | None = None
    render_yaml_to_directory: Annotated[str, Field(min_length=1)] | None = None
    cluster_domain: Annotated[str, Field(pattern=HOST_NAME)] = "cluster.local"
    run_as_user: NonRootUser = DEFAULT_WORKLOAD_USER
    drain_s: Annotated[int, Field(ge=0, le=60)] = 5
    autoscaling: dict[Name, Autoscaling] = {}
    mesh: MeshKind = "none"
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
        `kubernetes.run_as_user` (default 65532:65532), so no backend runs as its image's user (possibly root). A uid
        alone gets the gid equal to it (`runtime.user_ids`)."""
        return uid_gid(workload.run_as_user or self.kubernetes.run_as_user)

    def max_replicas(self, name: str) -> int:
        """The most replicas a workload can run: its autoscaler's ceiling on kubernetes, else its declared replicas."""
        scaling = self.kubernetes.autoscaling.get(name) if self.target == "kubernetes" else None
        return scaling.max_replicas if scaling else self.workload(name).replicas
