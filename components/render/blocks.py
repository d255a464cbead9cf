"""The parts of a config both nginx modules share: limit zones, upstream blocks, where a server listens."""

from __future__ import annotations

from components.plan.addressing import AddressMap
from components.plan.ir import Limit, Method, Proxy, Server, Upstream
from components.render.runtime import NginxRuntime
from components.render.variables import header_var, zone_name
from components.render.writer import Writer, duration

_HASH_KEYS = {"client_ip": "$remote_addr", "uri": "$request_uri"}


def limit_zone(out: Writer, limit: Limit) -> None:
    zone = zone_name(limit)
    if limit.kind == "rate":
        out.line(f"limit_req_zone ${zone} zone={zone}:10m rate={_rate(limit.rps)};")
    else:
        out.line(f"limit_conn_zone ${zone} zone={zone}:10m;")


def upstream_block(out: Writer, upstream: Upstream, addresses: AddressMap, stream: bool = False) -> None:
    with out.block(f"upstream {upstream.name}"):
        # Shared state, so max_conns, max_fails and least_conn's counts hold across worker processes.
        out.line(f"zone {upstream.name} {_zone_size(len(upstream.servers))};")
        _balancing_method(out, upstream.method, stream)
        for member in upstream.servers:
            address = addresses[member.workload][member.replica]
            if member.port is not None:  # another named port of the same member
                address = f"{address.rpartition(':')[0]}:{member.port}"
            backup = " backup" if member.backup else ""  # spill-over only: latency_optimal, no method directive
            out.line(f"server {address} weight={member.weight} max_fails={member.max_fails} "
                     f"fail_timeout={duration(member.fail_timeout_s)} max_conns={member.max_conns}{backup};")
        if upstream.keepalive is not None:
            out.line(f"keepalive {upstream.keepalive.connections};")
            out.line(f"keepalive_timeout {duration(upstream.keepalive.timeout_s)};")
            out.line(f"keepalive_requests {upstream.keepalive.requests};")


def _zone_size(servers: int) -> str:
    """nginx's minimum shared zone (8 pages) holds a few dozen servers; grow by 256 bytes a server past that."""
    return f"{32 + max(0, servers - 32) // 4}k"


def _rate(rps: float) -> str:
    return f"{int(rps)}r/s" if float(rps).is_integer() else f"{round(rps * 60)}r/m"  # rates are whole per minute (validated)


def _balancing_method(out: Writer, method: Method, stream: bool) -> None:
    """Weighted round robin is nginx's default (no directive). The stream module has no ip_hash: the client address
    is hashed instead, and only it (a connection has no URI, headers or cookies)."""
    if method.kind == "least_conn":
        out.line("least_conn;")
    elif method.kind == "ip_hash" or (stream and method.kind == "hash"):
        out.line("hash $remote_addr consistent;" if stream else "ip_hash;")
    elif method.kind == "hash":
        assert method.key is not None, "a hash method names its key (plan.gateway.method)"
        kind, _, arg = method.key.partition(":")
        variable = _HASH_KEYS.get(kind) or (header_var(arg) if kind == "header" else f"$cookie_{arg}")
        out.line(f"hash {variable} consistent;")


def listen_address(proxy: Proxy, server: Server, runtime: NginxRuntime) -> str:
    """`address:port` (or the port alone: every address) a server listens on. A service proxy's per-caller server
    listens only on its address on that caller's network, so the address a call arrives on names its caller."""
    port = server.port or runtime.listen_port or proxy.listen_port
    address = runtime.caller_addresses.get(server.caller) if server.caller is not None else None
    address = address or runtime.listen_address
    return f"{address}:{port}" if address else str(port)
