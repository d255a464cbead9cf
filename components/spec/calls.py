"""Calls between workloads and the traffic policy of the service proxy in front of each called workload.

A workload that is called gets a service proxy: its callers still dial `<callee>:<port>`, and the proxy balances,
times out, retries and limits every call before a replica sees it. What belongs to the callee — how its replicas
are balanced, how long they may take, what is retried, which versions share its traffic — is its
`traffic_policy`; what belongs to one caller — how much it may send — is a per-caller limit with a default from
the callee's policy, overridable on the call. Every field has a default that is safe without any config (see
README, "Calls between workloads").
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from components.spec.base import LARGEST, Algorithm, Amount, Count, Name, Seconds, Strict, hash_key_form
from components.spec.runtime import PortName

CallRetryCondition = Literal["error", "timeout", "invalid_header", "http_500", "http_502", "http_503", "http_504", "http_429"]


class CallRetries(Strict):
    """Total tries per call (1 = no retry) and on which outcomes. A request that reached a replica is replayed only
    with `non_idempotent: true`: POST and PATCH never are by default, and neither is any gRPC call (every gRPC call is
    a POST), so a gRPC call is retried only when no replica received it. For tcp a try is a connection attempt, and
    `conditions` do not apply."""

    tries: Annotated[int, Field(ge=1, le=10)] = 2
    conditions: list[CallRetryCondition] = ["error", "timeout", "http_502", "http_503", "http_504"]
    non_idempotent: bool = False


class SplitBackend(Strict):
    """One version behind a callee's name: `workload` gets `weight` parts of the calls (an east-west canary)."""

    workload: Name
    weight: Count = 1


class CallLimits(Strict):
    """How much one caller may send: `limit_rps` calls per second (token bucket, `burst` extra at once) and
    `max_concurrency` calls in flight. None: the caller's share of the callee's capacity (see `TrafficPolicy`)."""

    limit_rps: Amount | None = None
    burst: Annotated[int, Field(ge=0, le=LARGEST)] | None = None
    max_concurrency: Annotated[int, Field(ge=1, le=65535)] | None = None

    @field_validator("limit_rps")
    @classmethod
    def _rps_expressible_in_nginx(cls, value: float | None) -> float | None:
        if value is not None and not float(value).is_integer() and not float(value * 60).is_integer():
            raise ValueError("limit_rps must be a whole number per second or per minute (e.g. 5 or 0.5)")
        return value


class TrafficPolicy(CallLimits):
    """The calls into a workload, as its service proxy handles them.

    `balancing`: the gateway's algorithms over the workload's replicas (`least_conn`, the default, follows each
    replica's requests in flight, so a slow replica gets fewer; `latency_weighted`/`latency_optimal` weight by the
    declared per-replica response times). `timeout_s`: how long one try may wait for the replica's response (default:
    10 × the slowest replica's declared response time, between 1 and 60 s); `connect_timeout_s` to connect.
    `retries`: see `CallRetries`. `limit_rps`/`burst`/`max_concurrency`: each caller's default limits (default: its
    share of the workload's capacity, in proportion to its declared call rate, so the limits of all callers add up to
    what the replicas can serve). `split`: the versions that share the workload's name, with weights; a version
    listed here is reached only through this proxy.
    """

    balancing: Algorithm = "least_conn"
    hash_key: str | None = None
    timeout_s: Seconds | None = None
    connect_timeout_s: Seconds = 1
    retries: CallRetries = CallRetries()
    split: Annotated[list[SplitBackend], Field(min_length=1)] | None = None

    @field_validator("hash_key")
    @classmethod
    def _hash_key_form(cls, value: str | None) -> str | None:
        return hash_key_form(value)

    @model_validator(mode="after")
    def _hash_key_with_consistent_hash(self) -> TrafficPolicy:
        if self.balancing == "consistent_hash" and self.hash_key is None:
            raise ValueError("balancing consistent_hash needs hash_key (client_ip, uri, header:<Name> or cookie:<name>)")
        if self.balancing != "consistent_hash" and self.hash_key is not None:
            raise ValueError(f"hash_key is only used by balancing consistent_hash, not {self.balancing}; remove it")
        return self


class Call(CallLimits):
    """One edge of the service graph: this workload calls `workload`, `ratio` times per request it serves.

    A ratio above 1 is a fan-out (a page that asks the catalog for 3 items), below 1 a call made by some requests
    only (a cart lookup on 60 % of page views). Calls go service to service, not through the gateway, and through
    the callee's service proxy: `limit_rps`, `burst` and `max_concurrency` override the callee's per-caller
    defaults for this caller.
    """

    workload: Name
    ratio: Amount = 1.0
    port: PortName | None = None  # a named port of the callee (`workloads[].ports[].name`, or its protocol for the main one)


MeshKind = Literal["none", "linkerd", "istio"]
"""Who carries the calls on Kubernetes: netopt's own service proxies (`none`), or a service mesh whose resources
netopt generates instead (Linkerd, Istio)."""
