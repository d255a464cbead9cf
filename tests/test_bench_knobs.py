"""bench/run.py's knob section: every knob's edit still applies to what the renderer writes today, and the edited
config passes the real `nginx -t` (a renderer change that a knob no longer matches fails here, not mid-benchmark)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench import run
from testbed.tools import find_tool


@pytest.mark.parametrize(("name", "edit"), [(name, edit) for name, _, edit in run.KNOBS], ids=[name for name, _, _ in run.KNOBS])
def test_each_knob_edits_the_rendered_gateway_into_a_config_nginx_accepts(name: str, edit: object, tmp_path: Path) -> None:
    conf, _ = run.render_gateway(run.bench_spec(), {"svc": ["127.0.0.1:9001", "127.0.0.1:9002"]}, str(tmp_path))
    assert callable(edit)
    edited = edit(conf)
    assert edited != conf, f"knob {name!r} changed nothing"
    (tmp_path / "logs").mkdir(exist_ok=True)
    path = tmp_path / "knob.conf"
    path.write_text(edited)
    result = subprocess.run([find_tool("nginx"), "-t", "-q", "-p", f"{tmp_path}/", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
