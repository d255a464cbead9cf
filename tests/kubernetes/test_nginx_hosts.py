"""The private /etc/hosts the Kubernetes config's `nginx -t` needs works for root and for a normal user (issue #11, 15).

The probe does what the test needs (bind-mount a file over /etc/hosts in a namespace of its own, read it back)
instead of checking that `unshare` is installed; as a normal user that takes a user namespace too. When this
runs as root, the normal user's path is exercised as well, by running the wrapper as `nobody`.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from testbed.nginx_runner import NginxConfigError, global_directives, prepare_prefix
from testbed.tools import find_tool
from tests.kubernetes.nginx_hosts import nginx_t_resolving, nginx_wrapper, private_hosts_command, unshare_command

UPSTREAM_BY_NAME = """events {}
http {
    access_log off;
    upstream u { server api.example.invalid:8000; }
    server { listen 127.0.0.1:18999; location / { proxy_pass http://u; } }
}
"""


def test_the_names_resolve_only_through_the_private_hosts_file() -> None:
    nginx_t_resolving(UPSTREAM_BY_NAME, {"api.example.invalid": "127.0.0.10"})
    with pytest.raises(NginxConfigError, match="host not found in upstream"):
        nginx_t_resolving(UPSTREAM_BY_NAME, {"other.example.invalid": "127.0.0.10"})
    assert "api.example.invalid" not in Path("/etc/hosts").read_text(), "the machine's /etc/hosts is untouched"


def test_the_namespace_matches_who_runs_the_tests() -> None:
    command = private_hosts_command()
    assert "--mount" in command
    assert ("--map-root-user" in command) == (os.geteuid() != 0), command


def _nginx_t_as_a_normal_user(work: Path, hosts: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`nginx -t` through the normal user's wrapper, with a scrubbed environment; as uid `nobody` when we are root."""
    prefix = work / "prefix"
    prefix.mkdir()
    conf = prepare_prefix(str(prefix), UPSTREAM_BY_NAME)
    wrapper = nginx_wrapper(work, hosts, unshare_command(as_root=False))
    as_user = [find_tool("setpriv", package="util-linux"), "--reuid=65534", "--regid=65534", "--clear-groups", "--"] if os.geteuid() == 0 else []
    if as_user:
        for path in (work, *work.rglob("*")):
            os.chown(path, 65534, 65534)
    return subprocess.run([*as_user, "/usr/bin/env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", str(wrapper), "-t", "-q",
                           "-p", f"{prefix}/", "-c", conf, "-g", global_directives(UPSTREAM_BY_NAME, foreground=False, root=True)],
                          capture_output=True, text=True, timeout=60)


def test_a_normal_user_gets_a_private_hosts_file_too() -> None:
    """The normal user's path (user + mount namespace) also when the suite runs as root: then as uid `nobody`."""
    with tempfile.TemporaryDirectory(prefix="nginx-hosts-user-") as work:
        os.chmod(work, 0o755)
        result = _nginx_t_as_a_normal_user(Path(work), {"api.example.invalid": "127.0.0.10"})
        assert result.returncode == 0, result.stdout + result.stderr
    with tempfile.TemporaryDirectory(prefix="nginx-hosts-user-") as work:
        os.chmod(work, 0o755)
        result = _nginx_t_as_a_normal_user(Path(work), {"other.example.invalid": "127.0.0.10"})
        assert result.returncode != 0 and "host not found in upstream" in result.stderr, result.stderr
