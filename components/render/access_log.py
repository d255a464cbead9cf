"""Every proxy's access log: one JSON object per request (per connection for tcp), a stable schema that `observe`
and users' tools read, the same for the gateway and the service proxies.

nginx writes it with `escape=json`, so no value a client sends (a request id, a header used as a limit key, a
URI) can close a string and forge another field. Every value is a string as nginx prints it ("-" or "" when
nginx has none); `v` is the schema version and only grows with new fields. A request id is the client's own only
when it matches `REQUEST_ID_PATTERN`; any other value is replaced by one the proxy makes. `proxy`, `caller` and
`callee` say which proxy wrote the line and, for a service proxy, which call it carried: constants of the config,
and a map from the route the line's server sets, so the gateway pays nothing for them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from components.plan.ir import Proxy

SCHEMA_VERSION = 1

# What a client may choose as its X-Request-Id: URL-safe, bounded, no separators or spaces.
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
MADE_REQUEST_ID = "$hostname-$pid-$msec-$connection-$connection_requests"

# field -> (nginx value, meaning). The README's "Access log" table is this table.
FIELDS: dict[str, tuple[str, str]] = {
    "time": ("$time_iso8601", "local time the request ended, ISO 8601"),
    "msec": ("$msec", "seconds since the epoch with millisecond resolution, when the request ended"),
    "request_id": ("$netopt_request_id", "the id sent upstream as X-Request-Id (the client's if safe, else made)"),
    "client": ("$remote_addr", "client address"),
    "method": ("$request_method", "request method"),
    "host": ("$host", "Host the request was routed by"),
    "uri": ("$request_uri", "the request URI as sent, with its query"),
    "route": ("$netopt_route", "name of the route that matched; empty when none did (404)"),
    "rate_limit": ("$netopt_log_rl", "name of the rate limit applied to the route; empty when none"),
    "rate_limit_key": ("$netopt_log_rl_key", "the key the rate limit counted the request under (address, header value or `global`)"),
    "concurrency_limit": ("$netopt_log_cl", "name of the concurrency limit applied to the route; empty when none"),
    "concurrency_limit_key": ("$netopt_log_cl_key", "the key the concurrency limit counted the request under"),
    "status": ("$status", "final status sent to the client"),
    "request_time": ("$request_time", "seconds from the first byte read from the client to the last byte sent"),
    "upstream_addr": ("$upstream_addr", "every server tried, in order (`, ` between tries); an upstream's name when no server was left"),
    "upstream_status": ("$upstream_status", "status from each server tried, in the same order"),
    "upstream_connect_time": ("$upstream_connect_time", "seconds to connect to each server tried"),
    "upstream_header_time": ("$upstream_header_time", "seconds to the response header from each server tried"),
    "upstream_response_time": ("$upstream_response_time", "seconds to the whole response from each server tried"),
    "bytes_sent": ("$body_bytes_sent", "body bytes sent to the client"),
    "proxy": ("<proxy>", "the proxy that wrote the line: `gateway`, or `<workload>-proxy` for a workload's service proxy"),
    "caller": ("<caller>", "a service proxy's line: the workload that made the call (`-` where callers share one address); empty at the gateway"),
    "callee": ("<callee>", "a service proxy's line: the workload called; empty at the gateway"),
}

STREAM_VALUES: dict[str, str] = {
    "request_id": "$connection",
    "method": "",
    "host": "",
    "uri": "",
    "rate_limit": "",
    "rate_limit_key": "",
    "request_time": "$session_time",
    "upstream_status": "",
    "upstream_header_time": "$upstream_first_byte_time",
    "upstream_response_time": "$upstream_session_time",
    "bytes_sent": "$bytes_sent",
}
"""A tcp proxy's line is one connection: the stream module's values where they differ (its `$status` is 200, or
the 4xx/5xx it closed the connection with; a connection has no method, host, URI or rate limit)."""


def log_identity(proxy: Proxy) -> dict[str, str]:
    """The values of `proxy`, `caller` and `callee` in this proxy's log format."""
    if proxy.kind == "gateway":
        return {"proxy": proxy.name, "caller": "", "callee": ""}
    return {"proxy": proxy.name, "caller": "$netopt_caller", "callee": proxy.workload or ""}


def log_format_lines(identity: Mapping[str, str], stream: bool = False, undefined: Collection[str] = ()) -> list[str]:
    """The `log_format netopt` directive, one field per line; `identity` fills the placeholders (`log_identity`);
    a field whose variable is in `undefined` (a per-route map no route sets) is written as "", a constant."""
    lines = [f"log_format netopt escape=json '{{\"v\":{SCHEMA_VERSION},'"]
    items = list(FIELDS.items())
    for i, (name, (value, _)) in enumerate(items):
        value = identity.get(name, value) if value.startswith("<") else (STREAM_VALUES.get(name, value) if stream else value)
        value = "" if value in undefined else value
        end = "}';" if i == len(items) - 1 else ",'"
        lines.append(f"    '\"{name}\":\"{value}\"{end}")
    return lines
