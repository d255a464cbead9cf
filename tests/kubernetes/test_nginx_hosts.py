"""The private /etc/hosts the Kubernetes config's `nginx -t` needs works for root and for a normal user (issue #11, 15).

The probe does what the test needs (bind-mount a file over /etc/hosts in a namespace of its own, read it back)
instead of checking that `unshare` is installed; as a normal user that takes a user namespace too. When this
runs as root, the normal user's path is exercised as well, by running the probe as `nobody`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from offline.stack_config import PROJECT_DIR
from testbed.nginx_runner import NginxConfigError
from testbed.tools import find_tool
from tests.kubernetes.nginx_hosts import nginx_t_resolving, private_hosts_command

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


def test_a_normal_user_gets_a_private_hosts_file_too(tmp_path: Path) -> None:
    """The probe and `nginx -t` with a scrubbed environment, as a normal user: as uid `nobody` when we are root."""
    script = ("from tests.kubernetes.nginx_hosts import nginx_t_resolving, private_hosts_command; "
              "from tests.kubernetes.test_nginx_hosts import UPSTREAM_BY_NAME; "
              "print(' '.join(private_hosts_command())); "
              "nginx_t_resolving(UPSTREAM_BY_NAME, {'api.example.invalid': '127.0.0.10'}); print('nginx -t ok')")
    os.chmod(tmp_path, 0o777)
    as_user = [find_tool("setpriv", package="util-linux"), "--reuid=65534", "--regid=65534", "--clear-groups", "--"] if os.geteuid() == 0 else []
    result = subprocess.run([*as_user, sys.executable, "-B", "-c", script],
                            cwd=PROJECT_DIR, env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--map-root-user --mount" in result.stdout and "nginx -t ok" in result.stdout, result.stdout
