"""`nginx -t` for a config whose upstream servers are names (Kubernetes Services) that only the cluster DNS knows.

nginx resolves upstream names when it loads a config and refuses to start when one does not resolve. In the
cluster the names are the workloads' Services; here they resolve through a hosts file bind-mounted over /etc/hosts
in a private mount namespace for the nginx process alone (util-linux `unshare`; the host's /etc/hosts is untouched).
As root that is `unshare --mount`; a normal user first enters a user namespace of its own (`unshare
--map-root-user --mount`), where it may mount, and nginx -t runs as that namespace's root (`user root;`, so the
temp paths it creates are chowned to a mapped id). Whether this works is probed once by doing it — bind-mounting a
file over /etc/hosts and reading it back — not guessed from a binary being installed.
"""

from __future__ import annotations

import functools
import os
import shlex
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from components.plan.addressing import AddressMap
from testbed.nginx_runner import NGINX, nginx_t
from testbed.tools import find_tool


class PrivateHostsUnavailableError(RuntimeError):
    """This machine cannot give one process its own /etc/hosts; the message says why and what enables it."""


def service_hosts(addresses: AddressMap) -> dict[str, str]:
    """A loopback address for every host name in an address map (IP literals are left to themselves)."""
    names = sorted({a.rsplit(":", 1)[0] for members in addresses.values() for a in members if not a.rsplit(":", 1)[0][:1].isdigit()})
    return {name: f"127.0.0.{10 + i}" for i, name in enumerate(names)}


def unshare_command(as_root: bool) -> list[str]:
    """`unshare` with the namespaces needed to bind-mount over /etc/hosts: root or a normal user."""
    unshare = find_tool("unshare", package="util-linux")
    return [unshare, "--mount"] if as_root else [unshare, "--map-root-user", "--mount"]


def _bind_hosts_script(hosts_file: Path) -> str:
    return f"{shlex.quote(find_tool('mount', package='mount'))} --bind {shlex.quote(str(hosts_file))} /etc/hosts"


@functools.cache
def private_hosts_command() -> tuple[str, ...]:
    """The command prefix that runs a process with its own mount namespace; raises PrivateHostsUnavailableError."""
    command = unshare_command(as_root=os.geteuid() == 0)
    with tempfile.TemporaryDirectory(prefix="nginx-hosts-probe-") as work:
        probe = Path(work) / "hosts"
        probe.write_text("127.0.0.77 netopt-probe.invalid\n")
        script = f"{_bind_hosts_script(probe)} && cat /etc/hosts"
        try:
            result = subprocess.run([*command, "--", "/bin/sh", "-c", script], capture_output=True, text=True, timeout=30)
        except OSError as error:
            result = subprocess.CompletedProcess(command, 126, "", str(error))
    if result.returncode != 0 or "netopt-probe.invalid" not in result.stdout:
        who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()} (not root)"
        raise PrivateHostsUnavailableError(
            f"cannot give nginx a private /etc/hosts as {who}: `{' '.join(command)} -- mount --bind …` failed "
            f"(exit {result.returncode}): {result.stderr.strip() or result.stdout.strip()}. A normal user needs unprivileged user "
            "namespaces: `sysctl user.max_user_namespaces` > 0, and on Ubuntu 23.10+ "
            "`sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0`; in a container, one that allows unshare(2). "
            "Or run the tests as root.")
    return tuple(command)


def nginx_wrapper(work: Path, hosts: Mapping[str, str], command: Sequence[str]) -> Path:
    """An executable `nginx` in `work` that runs the real one under `command` with `hosts` as its /etc/hosts."""
    hosts_file = work / "hosts"
    hosts_file.write_text("127.0.0.1 localhost\n" + "".join(f"{address} {name}\n" for name, address in sorted(hosts.items())))
    wrapper = work / "nginx"
    inner = f"{_bind_hosts_script(hosts_file)} && exec {shlex.quote(NGINX)} \"$@\""
    wrapper.write_text(f"#!/bin/sh\nexec {shlex.join(command)} -- /bin/sh -c {shlex.quote(inner)} nginx \"$@\"\n")
    os.chmod(wrapper, 0o755)
    return wrapper


def nginx_t_resolving(conf_text: str, hosts: Mapping[str, str]) -> str:
    """`nginx -t` of `conf_text` with `hosts` (name -> address) as the only name source; raises NginxConfigError."""
    command = private_hosts_command()
    with tempfile.TemporaryDirectory(prefix="nginx-hosts-") as work:
        # Inside the namespace nginx is root (the real root, or the user namespace's): `user root;` either way.
        return nginx_t(conf_text, nginx=str(nginx_wrapper(Path(work), hosts, command)), root=True)
