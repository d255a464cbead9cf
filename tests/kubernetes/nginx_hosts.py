"""`nginx -t` for a config whose upstream servers are names (Kubernetes Services) that only the cluster DNS knows.

nginx resolves upstream names when it loads a config and refuses to start when one does not resolve. In the
cluster the names are the workloads' Services; here they resolve through a hosts file bind-mounted over /etc/hosts
in a private mount namespace for the nginx process alone (util-linux `unshare`; the host's /etc/hosts is untouched).
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from components.addressing import AddressMap
from testbed.nginx_runner import NGINX, nginx_t


def service_hosts(addresses: AddressMap) -> dict[str, str]:
    """A loopback address for every host name in an address map (IP literals are left to themselves)."""
    names = sorted({a.rsplit(":", 1)[0] for members in addresses.values() for a in members if not a.rsplit(":", 1)[0][:1].isdigit()})
    return {name: f"127.0.0.{10 + i}" for i, name in enumerate(names)}


def can_resolve_privately() -> bool:
    return shutil.which("unshare") is not None


def nginx_t_resolving(conf_text: str, hosts: Mapping[str, str]) -> str:
    """`nginx -t` of `conf_text` with `hosts` (name -> address) as the only name source; raises NginxConfigError."""
    with tempfile.TemporaryDirectory(prefix="nginx-hosts-") as work:
        hosts_file = Path(work) / "hosts"
        hosts_file.write_text("127.0.0.1 localhost\n" + "".join(f"{address} {name}\n" for name, address in sorted(hosts.items())))
        wrapper = Path(work) / "nginx"
        command = f"mount --bind {shlex.quote(str(hosts_file))} /etc/hosts && exec {shlex.quote(NGINX)} \"$@\""
        wrapper.write_text(f"#!/bin/sh\nexec unshare --mount -- /bin/sh -c {shlex.quote(command)} nginx \"$@\"\n")
        os.chmod(wrapper, 0o755)
        return nginx_t(conf_text, nginx=str(wrapper))
