"""`make plan` runs the real `nginx -t` on the gateway config it renders, so a config nginx refuses never ships.

A config nginx refuses would take the gateway down on deploy (the Docker gateway is replaced delete-first;
Kubernetes pods would crash-loop), and no check of ours is proof that nginx agrees. When nginx is installed
(Debian puts it in /usr/sbin, which a normal user's PATH lacks) the plan fails with nginx's own message;
without nginx the check is reported as skipped, never as passed.

What is checked is the target's rendered config with two substitutions nginx -t needs on a workstation:
upstream servers that are host names (Kubernetes Services, which only the cluster DNS resolves) become loopback
addresses with the same ports, and the temp/pid paths point into a scratch directory.
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

SEARCH_PATHS = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx", "/opt/homebrew/bin/nginx")


class GatewayConfigError(Exception):
    """nginx -t refused the rendered gateway config; `str()` is the report for the user."""


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


def nginx_test(conf_text: str, nginx: str) -> None:
    """`nginx -t` of `conf_text` in a scratch prefix; raise GatewayConfigError with nginx's output on refusal."""
    with tempfile.TemporaryDirectory(prefix="netopt-nginx-t-") as prefix:
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(conf_text)
        result = subprocess.run([nginx, "-t", "-q", "-p", prefix + "/", "-c", str(conf)], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).replace(prefix + "/", "").strip()
            raise GatewayConfigError(f"the rendered gateway config fails `nginx -t` ({nginx}); nothing was deployed:\n{output}")


def check_gateway(target: Target, plan: Plan) -> dict[str, Any]:
    """Run nginx -t on the target's gateway config; the result for the plan document (`nginx_check`)."""
    nginx = find_nginx()
    if nginx is None:
        return {"status": "skipped", "nginx": None, "version": None,
                "detail": "nginx is not installed (apt-get install nginx); the rendered config was not checked"}
    version = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=30).stderr.strip().removeprefix("nginx version: ")
    with tempfile.TemporaryDirectory(prefix="netopt-nginx-paths-") as scratch:
        runtime = dataclasses.replace(target.nginx_runtime(), temp_dir=scratch, pid_path=f"{scratch}/nginx.pid")
        nginx_test(render_proxy(plan.gateway, resolvable(target.address_map()), runtime), nginx)
    return {"status": "passed", "nginx": nginx, "version": version, "detail": "nginx -t accepted the rendered gateway config"}
