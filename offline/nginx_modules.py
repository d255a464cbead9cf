"""Where an nginx binary keeps its stream module, read from `nginx -V` (stdlib only: `make tools` imports it with the
system python3 before the venv exists, and `make plan`'s `nginx -t` uses it to load the module)."""

from __future__ import annotations

import os
import subprocess

DEFAULT_MODULES_PATH = "/usr/lib/nginx/modules"


def dynamic_stream_module(nginx: str) -> str | None:
    """The path of the stream module's .so where this nginx builds it as a dynamic module (Debian: the package
    libnginx-mod-stream), installed or not; None where it is compiled in (or absent)."""
    configure = subprocess.run([nginx, "-V"], capture_output=True, text=True, timeout=30).stderr
    if "--with-stream=dynamic" not in configure:
        return None
    modules = next((arg.partition("=")[2] for arg in configure.split() if arg.startswith("--modules-path=")), DEFAULT_MODULES_PATH)
    return os.path.join(modules, "ngx_stream_module.so")
