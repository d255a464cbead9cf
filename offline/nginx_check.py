"""`make plan` runs the real `nginx -t` on every proxy config it renders, so a config nginx refuses never ships.

A config nginx refuses would take the gateway down on deploy (the Docker gateway is replaced delete-first;
Kubernetes pods would crash-loop), and no check of ours is proof that nginx agrees. When nginx is installed
(Debian puts it in /usr/sbin, which a normal user's PATH lacks) the plan fails with nginx's own message;
without nginx the check is reported as skipped, never as passed.

What is checked is the target's rendered config of each proxy (the gateway and every service proxy) with the
substitutions nginx -t needs on a workstation: upstream servers that are host names (Kubernetes Services, which only
the cluster DNS resolves) become loopback addresses with the same ports, listen addresses (which exist only in the
target's networks; nginx -t binds them) become every address or, for a service proxy's per-caller servers, distinct
loopback addresses, the temp/pid paths point into a scratch directory, and a tcp proxy loads this nginx's stream
module (`load_module`) where it is a dynamic module (Debian's libnginx-mod-stream) instead of the image's.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from components.plan.addressing import AddressMap
from components.plan.build import Plan
from components.render.nginx import render_proxy
from components.targets.base import Target
from offline.nginx_modules import dynamic_stream_module

SEARCH_PATHS = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx", "/opt/homebrew/bin/nginx")


class GatewayConfigError(Exception):
    """nginx -t refused a rendered proxy config; `str()` is the report for the user."""


def find_nginx() -> str | None:
    """The nginx binary: `NETOPT_NGINX`, else PATH, else the usual sbin locations (not on a normal user's PATH)."""
    override = os.environ.get("NETOPT_NGINX")
    if override:
        return override
    found = shutil.which("nginx")
    if found:
        return found
    return next((path for path in SEARCH_PATHS if os.access(path, os.X_OK)), None)


def resolvable(addresses: AddressMap) -> AddressMap:
    """The same members with every host name replaced by a distinct loopback address (ports kept)."""
    names = sorted({a.rsplit(":", 1)[0] for members in addresses.values() for a in members if not _is_ip(a.rsplit(":", 1)[0])})
    loopback = {name: f"127.0.{(i + 10) // 250}.{(i + 10) % 250 + 1}" for i, name in enumerate(names)}

    def literal(address: str) -> str:
        host, _, port = address.rpartition(":")
        return f"{loopback.get(host, host)}:{port}"

    return {workload: [literal(a) for a in members] for workload, members in addresses.items()}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def stream_module(nginx: str) -> tuple[str, ...]:
    """The `load_module` line this nginx needs for the stream module, or none where it is compiled in."""
    path = dynamic_stream_module(nginx)
    return () if path is None else (f"load_module {path};",)


def nginx_test(conf_text: str, nginx: str, what: str = "gateway config") -> None:
    """`nginx -t` of `conf_text` in a scratch prefix; raise GatewayConfigError with nginx's output on refusal."""
    with tempfile.TemporaryDirectory(prefix="netopt-nginx-t-") as prefix:
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(conf_text)
        result = subprocess.run([nginx, "-t", "-q", "-p", prefix + "/", "-c", str(conf)], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).replace(prefix + "/", "").strip()
            hint = ("\n(a tcp proxy needs nginx's stream module: apt-get install libnginx-mod-stream)"
                    if "ngx_stream_module" in output or 'unknown directive "stream"' in output else "")
            raise GatewayConfigError(f"the rendered {what} fails `nginx -t` ({nginx}); nothing was deployed:\n{output}{hint}")


def check_gateway(target: Target, plan: Plan) -> dict[str, Any]:
    """Run nginx -t on the target's config of every proxy; the result for the plan document (`nginx_check`)."""
    nginx = find_nginx()
    if nginx is None:
        return {"status": "skipped", "nginx": None, "version": None,
                "detail": "nginx is not installed (apt-get install nginx); the rendered configs were not checked"}
    version = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=30).stderr.strip().removeprefix("nginx version: ")
    modules = stream_module(nginx) if any(p.protocol == "tcp" for p in plan.proxies) else ()
    with tempfile.TemporaryDirectory(prefix="netopt-nginx-paths-") as scratch:
        for proxy in plan.proxies:
            deployed = target.nginx_runtime(proxy)
            # nginx -t binds every listen socket: the target's addresses exist in its networks, not here.
            callers = {caller: f"127.0.{(i + 10) // 250}.{(i + 10) % 250 + 1}" for i, caller in enumerate(deployed.caller_addresses)}
            runtime = dataclasses.replace(deployed, temp_dir=scratch, pid_path=f"{scratch}/nginx.pid", stream_modules=modules,
                                          listen_address=None, status_address=None, caller_addresses=callers)
            what = "gateway config" if proxy.kind == "gateway" else f"config of {proxy.name}"
            nginx_test(render_proxy(proxy, resolvable(target.address_map(proxy)), runtime), nginx, what)
    count = len(plan.proxies)
    detail = "nginx -t accepted the rendered gateway config" + (f" and the {count - 1} service proxy configs" if count > 1 else "")
    return {"status": "passed", "nginx": nginx, "version": version, "detail": detail, "proxies": count}
