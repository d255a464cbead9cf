"""Run Debian's HAProxy on a given config text (foreground, master-worker mode).

>>> with HaproxyRunner(cfg_text, listen=[("127.0.0.1", 8080)]) as hap:
...     hap.reload(new_cfg_text)      # SIGUSR2 to the master
>>> haproxy_c(cfg_text)              # `haproxy -c`; raises HaproxyConfigError(msg)
"""
from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable
from typing import BinaryIO

from testbed.nginx_runner import wait_listening
from testbed.tools import locate

HAPROXY = locate("haproxy") or "/usr/sbin/haproxy"  # /usr/sbin: not on a normal user's PATH

__all__ = ["HAPROXY", "HaproxyConfigError", "HaproxyRunner", "bind_addresses", "haproxy_c"]


class HaproxyConfigError(RuntimeError):
    def __init__(self, output: str):
        super().__init__(output.strip())
        self.output = output


_BIND_RE = re.compile(r"^\s*bind\s+([^\s]+)", re.M)


def bind_addresses(cfg: str) -> list[tuple[str, int]]:
    out = []
    for m in _BIND_RE.finditer(cfg):
        host, _, port = m.group(1).rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        if host in ("*", "0.0.0.0"):
            host = "127.0.0.1"
        out.append((host, int(port)))
    return sorted(set(out))


def haproxy_c(cfg_text: str, *, haproxy: str = HAPROXY) -> str:
    with tempfile.TemporaryDirectory(prefix="haproxy-c-") as d:
        path = os.path.join(d, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(cfg_text)
        p = subprocess.run([haproxy, "-c", "-f", path], capture_output=True, text=True, timeout=30)
        out = p.stdout + p.stderr
        if p.returncode != 0:
            raise HaproxyConfigError(out)
        return out


class HaproxyRunner:
    def __init__(self, cfg_text: str, *, listen: Iterable[tuple[str, int]] | None = None,
                 haproxy: str = HAPROXY):
        self.cfg_text = cfg_text
        self.haproxy = haproxy
        self.dir = tempfile.mkdtemp(prefix="haproxy-run-")
        self.cfg_path = os.path.join(self.dir, "haproxy.cfg")
        self.listen = list(listen) if listen is not None else bind_addresses(cfg_text)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    def _write(self, text: str) -> None:
        with open(self.cfg_path, "w") as f:
            f.write(text)
        p = subprocess.run([self.haproxy, "-c", "-q", "-f", self.cfg_path],
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise HaproxyConfigError(p.stdout + p.stderr)

    def start(self, timeout: float = 10.0) -> HaproxyRunner:
        self._write(self.cfg_text)
        self._log = open(os.path.join(self.dir, "haproxy.log"), "ab")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen([self.haproxy, "-W", "-db", "-f", self.cfg_path],
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        atexit.register(self.stop)
        try:
            wait_listening(self.listen, timeout, self.proc)
        except BaseException:
            log = self.log()
            self.stop()
            raise RuntimeError(f"haproxy did not start: {log[-2000:]}") from None
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def reload(self, cfg_text: str | None = None) -> None:
        assert self.proc is not None and self.proc.poll() is None
        if cfg_text is not None:
            self._write(cfg_text)
            self.cfg_text = cfg_text
        os.kill(self.pid, signal.SIGUSR2)
        time.sleep(0.3)
        wait_listening(bind_addresses(self.cfg_text) or self.listen, 10, self.proc)

    def log(self) -> str:
        try:
            with open(os.path.join(self.dir, "haproxy.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)  # soft stop
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.dir, ignore_errors=True)
        atexit.unregister(self.stop)

    def __enter__(self) -> HaproxyRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
