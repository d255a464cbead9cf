"""The per-request variables of an HTTP proxy: `map` blocks that turn the matched route into its limit keys, log
fields and Retry-After, and the dispatch maps that pick a route among those sharing one location.

nginx evaluates a map only when a directive reads its variable, so a request pays for the maps its route uses.
"""

from __future__ import annotations

from components.plan.ir import DEFAULT_SERVER, Limit, Location, Proxy, Server
from components.plan.names import concurrency_limit_name, dispatch_var, header_key_var, header_log_key_var, header_token_var, rate_limit_name
from components.render.writer import Writer, map_key, quote


def header_var(name: str) -> str:
    return "$http_" + name.lower().replace("-", "_")


def zone_name(limit: Limit) -> str:
    return rate_limit_name(limit.name) if limit.kind == "rate" else concurrency_limit_name(limit.name)


def limit_key(key: str, printable: bool = False) -> str:
    """What a limit counts under: `$binary_remote_addr` (4 bytes a zone entry), `global`, or a header's key map.
    `printable`: the same key as the access log shows it (`$remote_addr`, the header's value or the address)."""
    if key == "client_ip":
        return "$remote_addr" if printable else "$binary_remote_addr"
    if key == "global":
        return "global"
    header = key.partition(":")[2]
    return header_log_key_var(header) if printable else header_key_var(header)


def request_maps(out: Writer, proxy: Proxy) -> None:
    """Per-request variables: which route matched, its limit keys (empty = not counted) and Retry-After."""
    rate_limits = [l for l in proxy.limits if l.kind == "rate"]
    concurrency_limits = [l for l in proxy.limits if l.kind == "concurrency"]
    for header in _limit_headers(proxy):
        # A request without the header is keyed by client address, so omitting it is no way around the limit.
        with out.block(f"map {header_var(header)} {header_key_var(header)}"):
            out.line('"" $binary_remote_addr;')
            out.line(f"default {header_var(header)};")
    for group in (rate_limits, concurrency_limits):
        for limit in group:
            with out.block(f"map $netopt_route ${zone_name(limit)}"):
                out.line('default "";')
                for route in proxy.routes:
                    if route.counts_against(limit):
                        out.line(f"{map_key(route.name)} {limit_key(limit.key)};")
    _limit_log_maps(out, proxy)
    with out.block("map $netopt_route $netopt_retry_after"):
        out.line("default 1;")
        for route_name, seconds in _retry_after_by_route(proxy).items():
            out.line(f"{map_key(route_name)} {seconds};")
    # "no live upstreams" (every server marked down or at max_conns; open-source nginx has no upstream queue): nginx
    # puts the upstream's name where a server address goes, last in $upstream_addr. Upstream names start with "up_".
    with out.block("map $upstream_addr $netopt_replicas_busy"):
        out.line("default 0;")
        out.line('"~(^|, )up_[^,]*$" 1;')
    header_values = _declared_header_values(proxy)
    _header_token_maps(out, header_values)
    dispatched: dict[str, str] = {}
    for server in proxy.servers:
        for index, location in enumerate(server.locations):
            if location.needs_dispatch:
                _dispatch_map(out, server, index, location, header_values)
                dispatched.update({rule.route.name: rule.upstream for rule in location.rules})
    if dispatched:
        with out.block("map $netopt_route $netopt_upstream"):
            for route_name, upstream in sorted(dispatched.items()):
                out.line(f"{map_key(route_name)} {upstream};")


def _limit_headers(proxy: Proxy) -> list[str]:
    """Header names (lower case) some rate or concurrency limit is keyed by."""
    return sorted({l.key.partition(":")[2].lower() for l in proxy.limits if l.key.startswith("header:")})


def limit_log_values(proxy: Proxy) -> dict[str, dict[str, str]]:
    """The access log's limit fields per route: variable -> {route: the limit's name, or a printable form of the key
    it counts under}. A variable no route sets is not defined at all: the log format writes "" in its place
    (`log_format_lines`), so a proxy without limits evaluates no map for them per line."""
    values: dict[str, dict[str, str]] = {}
    for prefix, kind in (("rl", "rate"), ("cl", "concurrency")):
        names: dict[str, str] = {}
        keys: dict[str, str] = {}
        for limit in (l for l in proxy.limits if l.kind == kind):
            for route in proxy.routes:
                if route.counts_against(limit):
                    names[route.name] = limit.name
                    keys[route.name] = limit_key(limit.key, printable=True)
        values[f"$netopt_log_{prefix}"], values[f"$netopt_log_{prefix}_key"] = names, keys
    return values


def _limit_log_maps(out: Writer, proxy: Proxy) -> None:
    """For the access log, per route: the limit it applies and a printable form of the key it counts under.

    The zones count `$binary_remote_addr` (4 bytes, what they store); the log shows `$remote_addr`. A request
    without a limit's header is counted, and logged, by its address. Evaluated only when a line is written.
    """
    for header in _limit_headers(proxy):
        with out.block(f"map {header_var(header)} {header_log_key_var(header)}"):
            out.line('"" $remote_addr;')
            out.line(f"default {header_var(header)};")
    for variable, values in limit_log_values(proxy).items():
        if not values:
            continue
        with out.block(f"map $netopt_route {variable}"):
            out.line('default "";')
            for route_name, value in values.items():
                out.line(f"{map_key(route_name)} {quote(value)};")


def _retry_after_by_route(proxy: Proxy) -> dict[str, int]:
    result = {}
    for route in proxy.routes:
        values = [limit.retry_after_s for limit in proxy.limits if route.counts_against(limit)]
        if values and max(values) != 1:
            result[route.name] = max(values)
    return result


def _declared_header_values(proxy: Proxy) -> dict[str, list[str]]:
    """Header (lower case) -> the values dispatch rules compare it with, in a fixed order (token i + 1 is value i)."""
    values: dict[str, set[str]] = {}
    for server in proxy.servers:
        for location in server.locations:
            if location.needs_dispatch:
                for rule in location.rules:
                    for header, value in rule.route.headers:
                        values.setdefault(header.lower(), set()).add(value)
    return {header: sorted(found) for header, found in sorted(values.items())}


def _exact_regex(value: str) -> str:
    """A PCRE2 pattern matching exactly `value` (printable ASCII): every non-alphanumeric character escaped."""
    return "^" + "".join(c if c.isalnum() else "\\" + c for c in value) + "$"


def _header_token_maps(out: Writer, header_values: dict[str, list[str]]) -> None:
    """One map per dispatch header: the number of the declared value the request's header equals, else 0.

    The dispatch map then matches `$request_method:<token>:<token>`, fields that can only be `[A-Z_-]+` or digits:
    no header value, whatever bytes it holds, can shift a field boundary and select another route.
    """
    for header, values in header_values.items():
        with out.block(f"map {header_var(header)} {header_token_var(header)}"):
            out.line("default 0;")
            for token, value in enumerate(values, start=1):
                out.line(f"{quote('~' + _exact_regex(value))} {token};")


def dispatch_variable(server: Server, index: int) -> str:
    return dispatch_var(None if server.host == DEFAULT_SERVER else server.host, index)


def _dispatch_map(out: Writer, server: Server, index: int, location: Location, header_values: dict[str, list[str]]) -> None:
    """Routes sharing one location are told apart by method and headers: the first matching entry wins."""
    headers = sorted({h.lower() for rule in location.rules for h, _ in rule.route.headers})
    source = ":".join(["$request_method", *(header_token_var(h) for h in headers)])
    with out.block(f'map "{source}" {dispatch_variable(server, index)}'):
        fallback = location.rules[-1].route.name if location.has_fallback else '""'
        out.line(f"default {fallback};")
        for rule in location.rules:
            if not rule.conditional:
                continue
            route = rule.route
            methods = "(" + "|".join(route.methods) + ")" if route.methods else "[A-Z_-]+"
            values = {k.lower(): v for k, v in route.headers}
            parts = [methods] + [str(header_values[h].index(values[h]) + 1) if h in values else "[0-9]+" for h in headers]
            out.line(f"{quote('~^' + ':'.join(parts) + '$')} {route.name};")


def caller_map(out: Writer, proxy: Proxy) -> None:
    """A service proxy's `$netopt_caller` for the access log: the workload that made the call, from its route (one
    route per caller's server; `-` where the proxy cannot tell callers apart). Evaluated only when a line is written."""
    if proxy.kind != "service":
        return
    with out.block("map $netopt_route $netopt_caller"):
        out.line('default "";')
        for route in proxy.routes:
            out.line(f"{map_key(route.name)} {quote(route.caller or '')};")
