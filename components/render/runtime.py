"""Process-level settings of an nginx that differ between a container and a test host; not part of the plan."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class NginxRuntime:
    """Process-level settings that differ between a container and a test host; not part of the plan."""

    listen_address: str | None = None  # the gateway's listen address (None: every address)
    status_address: str | None = None  # where the status server listens (None: every address, for a kubelet's probes)
    listen_port: int | None = None
    status_port: int | None = None
    pid_path: str = "/tmp/nginx.pid"
    temp_dir: str = "/tmp"
    error_log: str = "/dev/stderr warn"
    access_log: str = "/dev/stdout"
    worker_processes: str | None = None  # None: one per CPU of the proxy's limit (`auto` would count the host's)
    worker_connections: int = 4096
    extra_main: tuple[str, ...] = field(default_factory=tuple)
    caller_addresses: Mapping[str, str] = field(default_factory=dict)  # a service proxy's address on each caller's link
    stream_modules: tuple[str, ...] = ()  # `load_module` lines a tcp proxy needs where stream is a dynamic module
