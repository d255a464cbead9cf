"""System tools are found off a normal user's PATH, and `make test` names the apt-get command for what is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from offline.stack_config import PROJECT_DIR
from testbed import tools


def test_a_tool_in_sbin_is_found_with_a_users_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/local/bin:/usr/bin:/bin")
    assert tools.locate("nginx") == "/usr/sbin/nginx", "Debian's nginx lives in /usr/sbin"


def test_a_missing_tool_names_its_package() -> None:
    with pytest.raises(tools.MissingToolError, match="sudo apt-get install netopt-no-such-package"):
        tools.find_tool("netopt-no-such-tool", package="netopt-no-such-package")


def test_the_prerequisite_check_prints_the_exact_apt_get_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(tools, "missing", lambda: {"netopt-no-such-tool": "netopt-pkg", "wrk": "wrk"})
    assert tools.main() == 1
    assert "sudo apt-get install -y netopt-pkg wrk" in capsys.readouterr().err


def test_the_prerequisite_check_passes_on_this_machine() -> None:
    result = subprocess.run([sys.executable, "-m", "testbed.tools"], cwd=PROJECT_DIR, env={"PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert tools.missing() == {} and tools.missing_stream_module() == {}


def test_a_dynamic_stream_module_not_installed_names_its_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    nginx = tmp_path / "nginx"
    nginx.write_text(f"#!/bin/sh\necho 'configure arguments: --modules-path={tmp_path}/modules --with-stream=dynamic' >&2\n")
    nginx.chmod(0o755)
    monkeypatch.setattr(tools, "locate", lambda name: str(nginx) if name == "nginx" else None)
    assert tools.missing_stream_module() == {"nginx's stream module": "libnginx-mod-stream"}
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "ngx_stream_module.so").write_bytes(b"")
    assert tools.missing_stream_module() == {}
