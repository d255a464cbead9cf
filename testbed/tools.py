"""Find the system tools the tests and benchmarks run, whoever runs them, and say how to install what is missing.

A normal user's PATH has no /usr/sbin, where Debian installs nginx and HAProxy, so a tool is looked up on PATH
and then in the standard system directories. `python -m testbed.tools` (what `make test` runs first) lists what
is missing with the exact apt-get command, instead of a suite failing half-way.
"""

from __future__ import annotations

import os
import shutil
import sys

from offline.nginx_modules import dynamic_stream_module

SYSTEM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

# tool -> Debian package: what `make test` needs (nginx -t and the data plane, wrk as load client, unshare and
# mount for a private /etc/hosts, capsh to name capability bits as libcap does). HAProxy is the benchmark's (`make
# bench` checks for it itself).
TEST_TOOLS = {"nginx": "nginx", "wrk": "wrk", "unshare": "util-linux", "mount": "mount", "capsh": "libcap2-bin"}


class MissingToolError(RuntimeError):
    """A tool is not installed; the message names the Debian package to install."""


def locate(name: str) -> str | None:
    """The tool's path: from PATH, else from the standard system directories (None when it is not installed)."""
    found = shutil.which(name)
    if found:
        return found
    for directory in SYSTEM_DIRS:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def find_tool(name: str, package: str | None = None) -> str:
    """The tool's path, or MissingToolError saying which package to install."""
    found = locate(name)
    if found is None:
        raise MissingToolError(f"{name} is not installed: sudo apt-get install {package or TEST_TOOLS.get(name, name)}")
    return found


def missing(tools: dict[str, str] = TEST_TOOLS) -> dict[str, str]:
    """The tools (name -> package) that are not installed."""
    return {name: package for name, package in tools.items() if locate(name) is None}


def missing_stream_module() -> dict[str, str]:
    """nginx's stream module (tcp service proxies are `nginx -t`-checked with it) where this nginx builds it as a
    dynamic module that is not installed (Debian: its own package, libnginx-mod-stream); {} otherwise."""
    nginx = locate("nginx")
    path = None if nginx is None else dynamic_stream_module(nginx)
    return {} if path is None or os.path.isfile(path) else {"nginx's stream module": "libnginx-mod-stream"}


def main() -> int:
    """Exit 1 with the apt-get command when a tool `make test` needs is missing; 0 (silent) otherwise."""
    absent = missing() | missing_stream_module()
    if not absent:
        return 0
    packages = " ".join(sorted(set(absent.values())))
    print(f"netopt: make test needs {', '.join(sorted(absent))}, not installed on this machine. Install with:\n"
          f"  sudo apt-get install -y {packages}\n"
          "(or `sudo bash .ci/run`, which installs everything and runs the whole suite)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
