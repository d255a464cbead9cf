"""nginx runs for tests keep the gateway's pid file and temp dirs inside their own prefix (issue #11, 15).

The rendered config puts them in the container's /tmp; on the host /tmp is shared, and a /tmp/nginx.pid left by
another user's `nginx -t` made every `nginx -t` of a normal user fail with "Permission denied".
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from testbed.goldens import GOLDEN_DIR
from testbed.nginx_runner import nginx_t, prepare_prefix
from tests.conftest import STACKS


@pytest.mark.parametrize("stack", STACKS)
def test_the_prefix_config_writes_nothing_to_the_shared_tmp(stack: str, tmp_path: Path) -> None:
    text = (GOLDEN_DIR / f"{stack}.nginx.conf").read_text()
    assert re.search(r"^pid /tmp/", text, re.M), "the gateway's own config keeps its container path"
    written = Path(prepare_prefix(str(tmp_path), text)).read_text()
    assert "/tmp/" not in written
    assert "pid logs/nginx.pid;" in written and "proxy_temp_path tmp/proxy;" in written
    assert len(written.splitlines()) == len(text.splitlines()), "nginx's line numbers still match the rendered text"


def test_nginx_t_leaves_no_pid_file_in_the_shared_tmp(tmp_path: Path) -> None:
    conf = "pid /tmp/netopt-test-never-created.pid;\nevents {}\nhttp { access_log off; proxy_temp_path /tmp/netopt-test-never-created; }\n"
    nginx_t(conf)
    assert not Path("/tmp/netopt-test-never-created.pid").exists() and not Path("/tmp/netopt-test-never-created").exists()
