"""gRPC answers of a grpc service proxy's own making: a gRPC status, not an HTTP error page.

A gRPC client reads the call's outcome from `grpc-status` (and `grpc-message`) in the response's headers or
trailers; an HTTP 429 or 502 with a JSON body would surface as UNKNOWN or INTERNAL. So when the proxy refuses or
fails a call itself, it answers a "trailers-only" response: no body, the status in the headers, the stream ended
(`return 204` makes nginx end the HTTP/2 stream on the HEADERS frame). The statuses are the ones gRPC defines for
the cause (grpc/grpc doc/statuscodes.md): a limit is RESOURCE_EXHAUSTED (8), no replica left or a replica that
failed is UNAVAILABLE (14, which gRPC clients' own retry policies retry), a timeout DEADLINE_EXCEEDED (4).
"""

from __future__ import annotations

from components.render.writer import Writer, quote

RESOURCE_EXHAUSTED = 8
UNAVAILABLE = 14
DEADLINE_EXCEEDED = 4

_PAGES = (
    # (HTTP statuses nginx would answer, location, gRPC status, message)
    ("429", "@netopt_grpc_throttled", RESOURCE_EXHAUSTED, "too many calls"),
    ("502 503", "@netopt_grpc_unavailable", UNAVAILABLE, "no replica available"),
    ("504", "@netopt_grpc_deadline", DEADLINE_EXCEEDED, "the replica did not answer in time"),
)


def grpc_error_pages(out: Writer) -> None:
    for statuses, location, status, message in _PAGES:
        out.line(f"error_page {statuses} = {location};")
        with out.block(f"location {location}"):
            out.line("default_type application/grpc;")
            out.line(f"add_header grpc-status {status} always;")
            out.line(f"add_header grpc-message {quote(message)} always;")
            if status == RESOURCE_EXHAUSTED:
                out.line("add_header Retry-After $netopt_retry_after always;")
            out.line("return 204;")
