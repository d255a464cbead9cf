"""Run Debian's nginx on a given config text, in a throw-away prefix directory.

>>> with NginxRunner(conf_text) as ngx:      # starts, waits until it listens
...     ngx.reload(new_conf_text)              # nginx -s reload, waits for new workers
>>> nginx_t(conf_text)                         # `nginx -t`; raises NginxConfigError(msg)

nginx runs in the foreground (``-g 'daemon off;'``) as a child process, with
``-p <prefix>`` so relative paths in the config (logs/, temp dirs, the pid
file) land in the temp prefix. What the config lacks for such a run is given
with ``-g`` (``daemon off; pid logs/nginx.pid; error_log logs/error.log``, and
``user root;`` when running as root so workers can write to the prefix), and
temp paths are pointed into the prefix on the ``http {`` line -- the config's
line numbers in nginx's messages stay those of the caller's text.
"""
from __future__ import annotations

import atexit
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from typing import BinaryIO

from testbed.tools import find_tool, locate

NGINX = locate("nginx") or "/usr/sbin/nginx"  # Debian's is in /usr/sbin, not on a normal user's PATH

__all__ = [
    "NGINX",
    "NginxConfigError",
    "NginxRunner",
    "listen_addresses",
    "nginx_t",
    "nginx_t_deployed_addresses",
    "prepare_prefix",
    "wait_listening",
]


class NginxConfigError(RuntimeError):
    """``nginx -t`` (or a reload) rejected a config; ``.output`` is nginx's message."""

    def __init__(self, output: str):
        super().__init__(output.strip())
        self.output = output


def prepare_prefix(prefix: str, conf_text: str) -> str:
    """Write ``conf_text`` as ``<prefix>/nginx.conf`` and create logs/ and temp dirs."""
    for d in ("logs", "tmp", "tmp/client_body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi",
              "tmp/scgi"):
        os.makedirs(os.path.join(prefix, d), exist_ok=True)
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(_with_defaults(conf_text))
    return path


_TEMP_DIRS = (("client_body_temp_path", "client_body"), ("proxy_temp_path", "proxy"), ("fastcgi_temp_path", "fastcgi"),
              ("uwsgi_temp_path", "uwsgi"), ("scgi_temp_path", "scgi"))
_SHARED_TMP = re.compile(r"(?m)((?:^|[;{}])\s*)(pid|client_body_temp_path|proxy_temp_path|fastcgi_temp_path|uwsgi_temp_path|scgi_temp_path)"
                         r"(\s+)/tmp/[^;\s]*\s*;")


def _private_tmp(conf: str) -> str:
    """The pid file and temp dirs a gateway config puts in its container's own /tmp, moved into the prefix.

    On the host /tmp is shared by every user and run: a /tmp/nginx.pid another user's nginx -t left behind makes
    ours fail (permission denied), concurrent runs would share it. Replaced in place: line numbers are kept."""
    where = {"pid": "logs/nginx.pid", **{d: f"tmp/{name}" for d, name in _TEMP_DIRS}}
    return _SHARED_TMP.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{where[m.group(2)]};", conf)


def _with_defaults(conf: str) -> str:
    """Keep the pid file and temp paths inside the prefix (see _private_tmp; set where the config lacks them).

    Inserted on the ``http {`` line itself so nginx's line numbers in error
    messages still match the caller's text."""
    conf = _private_tmp(conf)
    if re.search(r"(?:^|[;{}])\s*http\s*\{", conf, re.M):
        extra = []
        for d, name in _TEMP_DIRS:
            if not re.search(rf"(?:^|[;{{}}])\s*{d}\s", conf, re.M):
                extra.append(f"{d} tmp/{name};")
        if extra:
            conf = re.sub(r"((?:^|[;{}])\s*http\s*\{)", lambda m: m.group(1) + " " + " ".join(extra),
                          conf, count=1, flags=re.M)
    return conf


def global_directives(conf: str, foreground: bool = True, root: bool | None = None) -> str:
    """``-g`` directives a run in a temp prefix needs and the config lacks.

    ``root``: whether nginx runs as root (default: whether we do; a wrapper may run it as a user namespace's root)."""
    g = []
    if foreground:
        g.append("daemon off;")
    if (os.geteuid() == 0 if root is None else root) and not re.search(r"(?:^|[;{}])\s*user\s", conf, re.M):
        g.append("user root;")
    if not re.search(r"(?:^|[;{}])\s*pid\s", conf, re.M):
        g.append("pid logs/nginx.pid;")
    if not re.search(r"(?:^|[;{}])\s*error_log\s", conf, re.M):
        g.append("error_log logs/error.log warn;")
    return " ".join(g)


def nginx_t(conf_text: str, *, nginx: str = NGINX, root: bool | None = None) -> str:
    """Run ``nginx -t`` on ``conf_text`` (in a temp prefix). Returns nginx's
    output on success, raises :class:`NginxConfigError` with it on failure.
    ``root``: see :func:`global_directives`."""
    with tempfile.TemporaryDirectory(prefix="nginx-t-") as prefix:
        path = prepare_prefix(prefix, conf_text)
        p = subprocess.run([nginx, "-t", "-q", "-p", prefix + "/", "-c", path,
                            "-g", global_directives(conf_text, foreground=False, root=root)],
                           capture_output=True, text=True, timeout=30)
        out = (p.stdout + p.stderr).replace(prefix + "/", "<prefix>/")
        if p.returncode != 0:
            raise NginxConfigError(out)
        return out


def nginx_t_deployed_addresses(conf_text: str) -> str:
    """`nginx -t` of a config that listens on the target's addresses (a Docker proxy's fixed addresses in its own
    networks), unedited: nginx -t binds every listen socket, so it runs in a private network namespace where any
    address may be bound (`ip_nonlocal_bind`); a normal user enters a user namespace of its own first."""
    unshare = find_tool("unshare", package="util-linux")
    prefix = [unshare, "--net"] if os.geteuid() == 0 else [unshare, "--map-root-user", "--net"]
    with tempfile.TemporaryDirectory(prefix="nginx-t-netns-") as work:
        wrapper = os.path.join(work, "nginx")
        inner = f"echo 1 > /proc/sys/net/ipv4/ip_nonlocal_bind && exec {shlex.quote(NGINX)} \"$@\""
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/sh\nexec {shlex.join(prefix)} -- /bin/sh -c {shlex.quote(inner)} nginx \"$@\"\n")
        os.chmod(wrapper, 0o755)
        return nginx_t(conf_text, nginx=wrapper, root=True)


_LISTEN_RE = re.compile(r"(?:^|[;{}])\s*listen\s+([^;\s]+)", re.M)


def listen_addresses(conf_text: str) -> list[tuple[str, int]]:
    """The ``(host, port)`` pairs of every ``listen`` directive (host defaults to 0.0.0.0)."""
    out = []
    for m in _LISTEN_RE.finditer(conf_text):
        a = m.group(1)
        if a.startswith("unix:"):
            continue
        if a.startswith("["):
            host, _, port = a[1:].partition("]:")
        elif ":" in a:
            host, _, port = a.rpartition(":")
        elif a.isdigit():
            host, port = "0.0.0.0", a
        else:
            host, port = a, "80"
        if host in ("*", "0.0.0.0"):
            host = "127.0.0.1"
        out.append((host, int(port)))
    return sorted(set(out))


def wait_listening(addrs: Iterable[tuple[str, int]], timeout: float = 10.0,
                   proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    for host, port in addrs:
        while True:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode}")
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"nothing listening on {host}:{port}") from None
                time.sleep(0.02)


class NginxRunner:
    """nginx as a foreground child process on ``conf_text``.

    ``prefix``: directory to use (default: a new temp dir, removed on stop()).
    ``listen``: addresses to wait for (default: parsed from the ``listen`` directives).
    """

    def __init__(self, conf_text: str, *, prefix: str | None = None,
                 listen: Iterable[tuple[str, int]] | None = None, nginx: str = NGINX):
        self.conf_text = conf_text
        self.nginx = nginx
        self._own_prefix = prefix is None
        self.prefix = prefix or tempfile.mkdtemp(prefix="nginx-run-")
        self.listen = list(listen) if listen is not None else listen_addresses(conf_text)
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr: BinaryIO | None = None
        self.conf_path = os.path.join(self.prefix, "nginx.conf")

    # -- lifecycle --------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> NginxRunner:
        prepare_prefix(self.prefix, self.conf_text)
        self._check()
        self._stderr = open(os.path.join(self.prefix, "logs", "stderr.log"), "ab")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [self.nginx, "-p", self.prefix + "/", "-c", self.conf_path,
             "-g", global_directives(self.conf_text)],
            stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=self._stderr)
        atexit.register(self.stop)
        try:
            wait_listening(self.listen, timeout, self.proc)
        except BaseException:
            err = self.error_log()
            self.stop()
            raise RuntimeError(f"nginx did not start: {err[-2000:]}") from None
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _check(self) -> None:
        p = subprocess.run([self.nginx, "-t", "-q", "-p", self.prefix + "/", "-c", self.conf_path,
                            "-g", global_directives(self.conf_text, foreground=False)],
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise NginxConfigError(p.stdout + p.stderr)

    def worker_pids(self) -> set[int]:
        """PIDs of the master's current children (workers, cache helpers)."""
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as f:
                return {int(x) for x in f.read().split()}
        except OSError:
            return set()

    def reload(self, conf_text: str | None = None, timeout: float = 10.0) -> None:
        """Write the new config (if given), validate it, send SIGHUP (what
        ``nginx -s reload`` does) and wait until the old workers are replaced."""
        assert self.proc is not None and self.proc.poll() is None, "nginx is not running"
        old_conf = None
        if conf_text is not None:
            with open(self.conf_path) as f:
                old_conf = f.read()
            prepare_prefix(self.prefix, conf_text)
            try:
                self._check()
            except NginxConfigError:
                with open(self.conf_path, "w") as f:
                    f.write(old_conf)
                raise
            self.conf_text = conf_text
        before = self.worker_pids()
        os.kill(self.pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.worker_pids()
            if now and not (now & before):
                break
            if now - before:  # new workers up; old ones may linger on open requests
                break
            time.sleep(0.02)
        else:
            raise TimeoutError("nginx did not start new workers after reload")
        new_listen = listen_addresses(self.conf_text)
        if new_listen:
            self.listen = new_listen
            wait_listening(self.listen, timeout, self.proc)

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful quit (SIGQUIT), then SIGKILL by PID if it lingers."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._own_prefix and os.path.isdir(self.prefix):
            shutil.rmtree(self.prefix, ignore_errors=True)
        atexit.unregister(self.stop)

    # -- inspection -------------------------------------------------------------
    def log_path(self, name: str = "error.log") -> str:
        return os.path.join(self.prefix, "logs", name)

    def error_log(self) -> str:
        out = []
        for n in ("error.log", "stderr.log"):
            try:
                with open(self.log_path(n), errors="replace") as f:
                    out.append(f.read())
            except OSError:
                pass
        return "\n".join(out)

    def __enter__(self) -> NginxRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
