"""Route regexes as nginx compiles and matches them: PCRE2, 8-bit, no UTF, the pattern's own options only.

nginx (src/core/ngx_regex.c, PCRE2 build) compiles a `location ~` regex with `pcre2_compile(pattern, options=0)`
(`PCRE2_CASELESS` only for `~*`, which netopt never renders) and matches the request's normalized URI bytes with
`pcre2_match(..., options=0)`; `pcre_jit` (off by default) changes speed, not results. Python's `re` disagrees
on both sides (`\\N{DIGIT ONE}` is `re`-only, `(?<v>...)` PCRE-only), so validation, the plan's location
resolver and the tests' routing oracle all use this module, backed by the `pcre2` binding (pinned).

The binding always adds `PCRE2_ALT_BSUX` (Python-style `\\u`/`\\x` escapes) and `PCRE2_NEVER_BACKSLASH_C`;
nginx sets neither, so both are switched off here, and patterns are compiled as bytes (the binding turns UTF on
for `str` patterns). The binding bundles its own PCRE2 (10.47); Debian's nginx 1.22 links the system's
(10.42): a feature newer than the system's library passes here and fails `nginx -t`, which `make plan` runs.
"""

from __future__ import annotations

from functools import lru_cache

import pcre2
from pcre2 import _cy

_PCRE2_ALT_BSUX = 0x00000002
_PCRE2_NEVER_BACKSLASH_C = 0x00100000

# Captures a location regex names become nginx variables of the request: they must not shadow a variable the
# generated config reads (nginx also refuses the name of any variable it cannot change, e.g. `host`).
_RESERVED_PREFIXES = ("netopt_", "http_", "cookie_", "arg_", "sent_http_", "upstream_", "proxy_")
_RESERVED_NAMES = frozenset({
    "remote_addr", "binary_remote_addr", "remote_port", "host", "hostname", "request_method", "request_uri", "uri",
    "document_uri", "args", "query_string", "scheme", "status", "msec", "pid", "connection", "connection_requests",
    "time_iso8601", "time_local", "request_time", "request_id", "body_bytes_sent", "bytes_sent", "server_name",
    "server_addr", "server_port", "server_protocol", "request", "request_length", "request_body", "content_type",
    "content_length", "is_args", "nginx_version", "realpath_root", "document_root", "limit_rate", "limit_req_status",
    "limit_conn_status",
})


class RegexError(ValueError):
    """A pattern nginx would refuse (or one that would shadow a variable); the message is PCRE2's."""


@lru_cache(maxsize=4096)
def compile_location_regex(pattern: str) -> pcre2.Pattern:
    """Compile exactly as nginx compiles `location ~ "<pattern>"`; raise RegexError when nginx would refuse it."""
    source = pattern.encode()
    try:
        code = _cy.compile(source, 0, _PCRE2_ALT_BSUX | _PCRE2_NEVER_BACKSLASH_C)
    except pcre2.PatternError as err:
        raise RegexError(str(err).removeprefix("compilation failed ")) from None
    compiled = pcre2.Pattern(code, source, pcre2.NOFLAG, False, None)
    for name in compiled.groupindex:
        text = name.decode() if isinstance(name, bytes) else str(name)
        if text in _RESERVED_NAMES or text.startswith(_RESERVED_PREFIXES):
            raise RegexError(f"the named group '{text}' would become the nginx variable ${text}, which the gateway "
                             "config reads or nginx reserves; rename the group")
    return compiled


def search(pattern: str, path: str) -> bool:
    """Whether nginx's `location ~ "<pattern>"` matches the (decoded, normalized) URI `path`."""
    return compile_location_regex(pattern).search(path.encode()) is not None
