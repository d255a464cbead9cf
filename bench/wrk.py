"""Run ``wrk --latency`` and parse its report.

>>> r = run_wrk("http://127.0.0.1:8080/", threads=2, connections=64, duration=5)
>>> r.rps, r.p50_ms, r.p99_ms, r.errors, r.non2xx
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

from testbed.tools import locate

WRK = locate("wrk") or "/usr/bin/wrk"

__all__ = ["WRK", "WrkResult", "parse_wrk", "run_wrk", "wrk_script"]

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass
class WrkResult:
    rps: float = 0.0
    requests: int = 0
    duration_s: float = 0.0
    p50_ms: float | None = None
    p75_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    avg_ms: float | None = None
    max_ms: float | None = None
    errors_connect: int = 0
    errors_read: int = 0
    errors_write: int = 0
    errors_timeout: int = 0
    non2xx: int = 0   # wrk's "Non-2xx or 3xx responses"
    raw: str = field(default="", repr=False)

    @property
    def errors(self) -> int:
        """Socket errors of every kind (connect/read/write/timeout)."""
        return self.errors_connect + self.errors_read + self.errors_write + self.errors_timeout

    @property
    def failed(self) -> int:
        return self.errors + self.non2xx

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("raw")
        d["errors"] = self.errors
        return d


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value.strip())
    if not m:
        raise ValueError(f"bad wrk duration {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> WrkResult:
    r = WrkResult(raw=out)
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        if m:
            setattr(r, f"p{pct}_ms", _ms(m.group(1)))
    m = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    if m:
        r.avg_ms, r.max_ms = _ms(m.group(1)), _ms(m.group(3))
    m = re.search(r"^\s*(\d+) requests in ([\d.]+)(\w+)", out, re.M)
    if m:
        r.requests = int(m.group(1))
        r.duration_s = _ms(m.group(2) + m.group(3)) / 1000.0
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if m:
        r.rps = float(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r.errors_connect, r.errors_read, r.errors_write, r.errors_timeout = map(int, m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r.non2xx = int(m.group(1))
    return r


def wrk_script(method: str = "GET", headers: dict[str, str] | None = None, body: str | None = None) -> str:
    """A wrk Lua script setting method/headers/body."""
    lines = [f'wrk.method = "{method}"']
    for k, v in (headers or {}).items():
        lines.append(f'wrk.headers["{k}"] = "{v}"')
    if body is not None:
        lines.append(f"wrk.body = {body!r}".replace("'", '"'))
    return "\n".join(lines) + "\n"


def run_wrk(url: str, *, threads: int = 2, connections: int = 64, duration: float = 5,
            timeout_s: float = 5, script: str | None = None,
            headers: dict[str, str] | None = None, extra_args: list[str] | None = None,
            taskset: str | None = None) -> WrkResult:
    """Run wrk (bounded by ``duration``) against a loopback URL and parse the result.

    ``script``: Lua source (written to a temp file). ``taskset``: CPU list to pin wrk to.
    """
    host = re.match(r"https?://\[?([^/\]]+?)\]?(:\d+)?/", url)
    if not host or not (host.group(1).startswith("127.") or host.group(1) in ("localhost", "::1")):
        raise ValueError(f"refusing non-loopback target {url}")
    # wrk takes whole seconds only.
    cmd = [WRK, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s",
           f"--timeout={max(1, round(timeout_s))}s", "--latency"]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    tmp = None
    if script:
        tmp = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115 (unlinked below)
        tmp.write(script)
        tmp.close()
        cmd += ["-s", tmp.name]
    cmd += [*list(extra_args or []), url]
    if taskset:
        cmd = ["taskset", "-c", taskset, *cmd]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30)
    finally:
        if tmp:
            os.unlink(tmp.name)
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed ({p.returncode}): {p.stderr or p.stdout}")
    return parse_wrk(p.stdout)


if __name__ == "__main__":  # pragma: no cover
    import argparse
    import json

    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("-c", type=int, default=64)
    ap.add_argument("-d", type=float, default=5)
    a = ap.parse_args()
    print(json.dumps(run_wrk(a.url, threads=a.t, connections=a.c, duration=a.d).as_dict(), indent=2))
