"""What the proxies' image (the gateway's) needs from the config to run it."""

from __future__ import annotations

from components.spec.schema import Spec


def stream_modules(spec: Spec) -> tuple[str, ...]:
    """The `load_module` line of the image's stream module where it is a dynamic module (`gateway.stream_module`)."""
    return (f"load_module {spec.gateway.stream_module};",) if spec.gateway.stream_module else ()
