"""The one injective mapping from spec strings (hosts, limit names, header names, workloads) to nginx names.

nginx variable names allow only `[A-Za-z0-9_]` and compare case-insensitively, zone and upstream names share
one namespace per kind, and a map keeps only the last of two blocks writing the same variable. A lossy mapping
(`a-b.com` and `a.b.com` both `a_b_com`, limits `per-ip` and `per_ip` both `per_ip`) therefore silently merges
two hosts' dispatch or makes nginx refuse the config. `escape` is a prefix-free code, so distinct strings always
give distinct names: `[a-z0-9]` stand for themselves, `_` is `__`, every other byte of the UTF-8 text is `_`
and two lower-case hex digits (`-` is `_2d`, `.` is `_2e`, `*` is `_2a`, `A` is `_41`).

Every name is a fixed per-kind prefix (none is a prefix of another) followed by one escaped string, or by a
number and an optional `_` + escaped string; these compositions stay injective.
"""

from __future__ import annotations

from collections.abc import Sequence

_LITERAL = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def escape(text: str) -> str:
    """Injective: `escape(a) == escape(b)` only if `a == b`; output alphabet `[a-z0-9_]`."""
    out = []
    for char in text:
        if char in _LITERAL:
            out.append(char)
        elif char == "_":
            out.append("__")
        else:
            out.extend(f"_{byte:02x}" for byte in char.encode())
    return "".join(out)


def unescape(name: str) -> str:
    """The inverse of `escape` (what proves it injective; also lets a reader of a config recover the spec name)."""
    data = bytearray()
    i = 0
    while i < len(name):
        if name[i] != "_":
            data += name[i].encode()
            i += 1
        elif name[i + 1] == "_":
            data += b"_"
            i += 2
        else:
            data.append(int(name[i + 1:i + 3], 16))
            i += 3
    return data.decode()


def rate_limit_name(limit: str) -> str:
    """The limit_req zone and its key variable (`$` + this)."""
    return f"netopt_rl_{escape(limit)}"


def concurrency_limit_name(limit: str) -> str:
    """The limit_conn zone and its key variable (`$` + this)."""
    return f"netopt_cl_{escape(limit)}"


def header_key_var(header: str) -> str:
    """A limit keyed by a request header: the header's value, or the client address when it is missing."""
    return f"$netopt_key_{escape(header.lower())}"


def header_log_key_var(header: str) -> str:
    """The printable form of `header_key_var` for the access log."""
    return f"$netopt_logkey_{escape(header.lower())}"


def header_token_var(header: str) -> str:
    """Which declared value a request header has, as a token that cannot contain a field separator."""
    return f"$netopt_hv_{escape(header.lower())}"


def dispatch_var(host: str | None, location_index: int) -> str:
    """The route a shared location dispatches to, per server and location: `host` None is the default server."""
    return f"$netopt_sel_{location_index}" + ("" if host is None else f"_{escape(host)}")


def upstream_name(backends: Sequence[tuple[str, int | None]]) -> str:
    """`up_` + each backend's escaped workload and, in a split, its weight, `_` between them.

    Workload names are DNS labels (a letter first, no `_`), so their escapes never contain `_` followed only by
    digits: a digits-only `_` field is a weight, and the fields split back into the backends.
    """
    return "up_" + "_".join(escape(w) + ("" if weight is None else f"_{weight}") for w, weight in backends)
