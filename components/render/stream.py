"""A tcp service proxy: nginx's stream module, one server per caller, connections balanced, timed out, limited.

A connection is the unit: the stream module balances each new connection (least_conn, round robin, or a hash of
the client address), retries a connection attempt on the next member (`proxy_next_upstream`), closes a connection
idle longer than the timeout (`proxy_timeout`, between two successive reads or writes) and caps the connections one
caller holds (`limit_conn`; a connection over the cap is closed at once). There is no request to rate-limit.
"""

from __future__ import annotations

from collections.abc import Callable

from components.plan.addressing import AddressMap
from components.plan.ir import Proxy, Route
from components.render.access_log import log_format_lines, log_identity
from components.render.blocks import limit_zone, listen_address, upstream_block
from components.render.runtime import NginxRuntime
from components.render.variables import limit_key, zone_name
from components.render.writer import Writer, duration, map_key, quote

_LOG_MAPS: tuple[tuple[str, Callable[[Route], str]], ...] = (
    ("$netopt_log_cl", lambda route: route.concurrency_limit or ""),
    ("$netopt_log_cl_key", lambda route: "global" if route.concurrency_limit else ""),
    ("$netopt_caller", lambda route: route.caller or ""),
)


def render_stream(out: Writer, proxy: Proxy, addresses: AddressMap, runtime: NginxRuntime) -> None:
    with out.block("stream"):
        for line in log_format_lines(log_identity(proxy), stream=True):
            out.line(line)
        out.line("access_log off;" if runtime.access_log == "off" else f"access_log {runtime.access_log} netopt buffer=64k flush=1s;")
        _route_map(out, proxy, runtime)
        _maps(out, proxy)
        for limit in proxy.limits:
            limit_zone(out, limit)
        for upstream in proxy.upstreams:
            upstream_block(out, upstream, addresses, stream=True)
        for server in proxy.servers:
            (location,) = server.locations
            (rule,) = location.rules
            with out.block("server"):
                out.line(f"listen {listen_address(proxy, server, runtime)};")
                out.line(f"proxy_pass {rule.upstream};")
                out.line(f"proxy_connect_timeout {duration(proxy.timeouts.connect_s)};")
                out.line(f"proxy_timeout {duration(proxy.timeouts.read_s)};")
                tries = proxy.retries.tries
                out.line("proxy_next_upstream on;" if tries > 1 else "proxy_next_upstream off;")
                if tries > 1:
                    out.line(f"proxy_next_upstream_tries {tries};")
                if rule.route.concurrency_limit is not None:
                    limit = proxy.limit("concurrency", rule.route.concurrency_limit)
                    out.line(f"limit_conn {zone_name(limit)} {limit.connections};")


def _route_map(out: Writer, proxy: Proxy, runtime: NginxRuntime) -> None:
    """`$netopt_route` of a connection: the route of the server it arrived on, told by the address and port it arrived at
    (each caller's server listens on its own address, each passed-through port on its own port); a lone server is the
    default. A map, not `set`: the
    stream module's `set` is too new for the parsers that read the config (crossplane, in the policy pack)."""
    with out.block("map $server_addr:$server_port $netopt_route"):
        routes = [(server, rule.route.name) for server in proxy.servers for location in server.locations for rule in location.rules]
        out.line(f"default {routes[0][1] if len(routes) == 1 else quote('')};")
        for server, route in routes if len(routes) > 1 else []:
            listen = listen_address(proxy, server, runtime)
            out.line(f"{listen if ':' in listen else quote(f'~:{listen}$')} {route};")  # every address: the port alone


def _maps(out: Writer, proxy: Proxy) -> None:
    """Per connection: the limit key of its route (empty = not counted), and the log's limit and caller fields."""
    for limit in proxy.limits:
        with out.block(f"map $netopt_route ${zone_name(limit)}"):
            out.line('default "";')
            for route in proxy.routes:
                if route.counts_against(limit):
                    out.line(f"{map_key(route.name)} {limit_key(limit.key)};")
    for variable, value in _LOG_MAPS:
        with out.block(f"map $netopt_route {variable}"):
            out.line('default "";')
            for route in proxy.routes:
                out.line(f"{map_key(route.name)} {quote(value(route))};")
