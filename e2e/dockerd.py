"""A private, throw-away Docker daemon for end-to-end tests.

Design (why it looks like this):

* Debian's ``dockerd`` (docker.io 20.10) runs as root **inside a network
  namespace that this class creates** (``ip netns add netopt-e2e-<random>``;
  the daemon is started as ``nsenter --net=/run/netns/<ns> -- dockerd ...``, so
  the PID we hold *is* dockerd's). Everything network-related the daemon does
  -- bridges, veths, iptables/nftables rules, ``net.ipv4.ip_forward=1``,
  docker-proxy listeners -- happens in that namespace and disappears with it.
  The host's network configuration, firewall and ``/proc/sys/net/ipv4/ip_forward``
  are never touched (the latter is recorded and checked/restored anyway), and
  no test traffic can leave the machine: the namespace has only ``lo`` and the
  bridges dockerd makes, no route out.
  Because of that the daemon keeps its defaults (``iptables=true``,
  ``ip-forward=true``, userland proxy on), so ``internal: true`` networks are
  really isolated by Docker's own rules, exactly as on a real host.
* Its state lives in a fresh temp dir: ``data-root``, ``exec-root``, pidfile,
  ``daemon.json`` (an empty one, so ``/etc/docker/daemon.json`` is ignored) and
  the API socket ``<tmp>/docker.sock``. dockerd starts and manages its own
  containerd (state under the same dirs). Container cgroups go under a
  private ``--cgroup-parent``. ``/var/lib/docker`` and ``/var/run/docker.sock``
  are never used.
* A published port ``127.0.0.1:P`` of a container is published on the
  loopback **of the namespace** (by docker-proxy). The test process reaches it
  without leaving its own namespace for anything else:

  - :meth:`Dockerd.connect` returns a TCP socket created inside the namespace
    (a short-lived helper thread ``setns()``-es itself into it; a socket keeps
    its namespace for life, whichever thread uses it);
  - :meth:`Dockerd.http_get` / :meth:`Dockerd.http_connection` do HTTP over such
    sockets (``http.client``);
  - :meth:`Dockerd.forward` opens ``127.0.0.1:<port>`` on the *host* loopback and
    relays each connection into the namespace, for tools such as ``curl`` or
    ``wrk`` that run in the host namespace;
  - :meth:`Dockerd.netns_cmd` prefixes a command with ``nsenter --net=...`` to
    run it inside the namespace (e.g. ``wrk`` against the published port).

Cleanup (:meth:`Dockerd.stop`, also run by ``__exit__``, on a failed start and
at interpreter exit) removes all containers, networks and volumes through the
API, stops dockerd by its PID (SIGTERM, then SIGKILL), kills by PID whatever of
its children is left (managed containerd, shims, container processes found via
the private cgroup parent), unmounts everything below the temp dir, deletes the
network namespace and the temp dir, and restores ``ip_forward`` if it changed.

Usage::

    d = Dockerd()
    with d as client:                      # docker.DockerClient on <tmp>/docker.sock
        client.networks.create("edge", driver="bridge", ipam=...)
        ...
        status, headers, body = d.http_get(8080, "/")

Needs root and Debian's ``docker.io`` (dockerd, containerd, runc, docker-proxy),
``iproute2`` and ``util-linux`` (nsenter): ``e2e/install-deps.sh``.
"""
from __future__ import annotations

import atexit
import contextlib
import hashlib
import http.client
import json
import os
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from e2e._sys import enter_netns_this_thread, mounts_below, require_root, umount_below

T = TypeVar("T")

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
NETNS_DIR = Path("/run/netns")
NETNS_PREFIX = "netopt-e2e-"
MARKER = "netopt-e2e-dockerd.json"
_CGROUP_ROOT = Path("/sys/fs/cgroup")
# Paths dockerd 20.10 / containerd 1.6 create whatever their roots are (plugin sockets, shim
# sockets); removed again at stop when this run created them and they are empty.
_HARDCODED_DIRS = (Path("/run/docker/plugins"), Path("/run/docker"), Path("/run/containerd/s"), Path("/run/containerd"))


class DockerdError(RuntimeError):
    pass


def _run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if check and res.returncode != 0:
        raise DockerdError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours still "exists": treat it as dead
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _kill_pid(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Dockerd:
    """A private dockerd in its own network namespace; see the module docstring.

    ``with Dockerd() as client`` yields a :class:`docker.DockerClient`; the
    instance keeps ``client``, ``socket_path``, ``netns``, ``pid`` and the
    helpers to reach published ports.
    """

    def __init__(self, *, base_dir: str | os.PathLike[str] | None = None,
                 start_timeout: float = 60.0, stop_timeout: float = 20.0,
                 default_bridge: bool = False, iptables: bool = True,
                 extra_args: tuple[str, ...] = (), log_level: str = "info") -> None:
        self.base_dir = base_dir
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.default_bridge = default_bridge
        self.iptables = iptables
        self.extra_args = tuple(extra_args)
        self.log_level = log_level
        self.tmp: Path | None = None
        self.netns: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: Any = None
        self.cgroup_parent: str | None = None
        self.started_in: float | None = None
        self._ip_forward_before: str | None = None
        self._absent_dirs: list[Path] = []
        self._forwarders: list[_Forwarder] = []
        self._lock = threading.Lock()
        self._stopped = False

    # ------------------------------------------------------------------ paths
    @property
    def dir(self) -> Path:
        """The daemon's private temp dir (data-root, exec-root, pidfile, socket, log)."""
        assert self.tmp is not None, "not started"
        return self.tmp

    @property
    def socket_path(self) -> Path:
        assert self.tmp is not None, "not started"
        return self.tmp / "docker.sock"

    @property
    def base_url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def netns_path(self) -> Path:
        assert self.netns is not None, "not started"
        return NETNS_DIR / self.netns

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        assert self.tmp is not None, "not started"
        return self.tmp / "dockerd.log"

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except (OSError, AssertionError):
            return ""

    # -------------------------------------------------------------- lifecycle
    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Any:
        """Start the daemon; return a ``docker.DockerClient`` bound to its socket."""
        import docker

        require_root("Dockerd")
        for tool in ("dockerd", "containerd", "runc", "docker-proxy", "ip", "nsenter"):
            if shutil.which(tool) is None:
                raise DockerdError(f"{tool} not found: run e2e/install-deps.sh")
        t0 = time.monotonic()
        atexit.register(self.stop)
        try:
            self._ip_forward_before = IP_FORWARD.read_text().strip()
            self._absent_dirs = [p for p in _HARDCODED_DIRS if not p.exists()]
            tag = secrets.token_hex(4)
            base = Path(self.base_dir or tempfile.gettempdir()).resolve()
            # containerd's longest socket: <exec-root>/containerd/containerd-debug.sock, limit 104 bytes
            longest = base / f"netopt-dockerd-{tag}" / "exec" / "containerd" / "containerd-debug.sock"
            if len(str(longest)) > 104:
                raise DockerdError(f"base_dir {base} is too long for unix socket paths; use a shorter one")
            self.tmp = base / f"netopt-dockerd-{tag}"
            self.tmp.mkdir(mode=0o700)
            self.netns = f"{NETNS_PREFIX}{tag}"
            self.cgroup_parent = f"netopt-e2e-{tag}"
            (self.tmp / MARKER).write_text(json.dumps(
                {"owner_pid": os.getpid(), "netns": self.netns, "cgroup_parent": self.cgroup_parent}))
            _run(["ip", "netns", "add", self.netns])
            _run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
            for d in ("data", "exec"):
                (self.tmp / d).mkdir(mode=0o711)
            cfg = self.tmp / "daemon.json"
            cfg.write_text("{}\n")
            cmd = [
                "nsenter", f"--net={self.netns_path}", "--",
                "dockerd",
                f"--config-file={cfg}",
                f"--data-root={self.tmp / 'data'}",
                f"--exec-root={self.tmp / 'exec'}",
                f"--pidfile={self.tmp / 'docker.pid'}",
                f"--host=unix://{self.socket_path}",
                f"--cgroup-parent={self.cgroup_parent}",
                f"--iptables={'true' if self.iptables else 'false'}",
                "--ip-forward=true",  # per network namespace: the host's stays as it is
                "--userland-proxy=true",
                "--shutdown-timeout=5",
                "--storage-driver=overlay2",
                f"--log-level={self.log_level}",
                *([] if self.default_bridge else ["--bridge=none"]),
                *self.extra_args,
            ]
            env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
            env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            with open(self.log_path, "wb") as logf:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                             stderr=subprocess.STDOUT, env=env,
                                             start_new_session=True, close_fds=True)
            self.client = self._wait_ready(docker)
            self.started_in = time.monotonic() - t0
            return self.client
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, docker: Any) -> Any:
        deadline = time.monotonic() + self.start_timeout
        last: Exception | None = None
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DockerdError(f"dockerd exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.socket_path.exists():
                try:
                    client = docker.DockerClient(base_url=self.base_url, version="1.41", timeout=120)
                    client.ping()
                    return client
                except Exception as e:
                    last = e
            time.sleep(0.1)
        raise DockerdError(f"dockerd not ready after {self.start_timeout}s ({last}):\n{self.log_tail()}")

    def stop(self) -> None:
        """Tear everything down; idempotent; safe after a partial start."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        errors: list[str] = []

        def attempt(what: str, fn: Callable[[], object]) -> None:
            try:
                fn()
            except Exception as e:
                errors.append(f"{what}: {e!r}")

        for fw in self._forwarders:
            attempt("forwarder", fw.close)
        if self.client is not None and self.proc is not None and self.proc.poll() is None:
            attempt("remove objects", self.remove_all_objects)
        if self.client is not None:
            attempt("close client", self.client.close)
        attempt("stop dockerd", self._stop_daemon)
        attempt("kill leftovers", self._kill_leftovers)
        if self.tmp is not None:
            left = umount_below(self.tmp)
            if left:
                errors.append(f"still mounted: {left}")
        if self.netns is not None and (NETNS_DIR / self.netns).exists():
            attempt("ip netns del", lambda: _run(["ip", "netns", "del", self.netns or ""]))
        attempt("cgroups", self._remove_cgroups)
        attempt("shim sockets", self._remove_shim_sockets)
        if self.tmp is not None and self.tmp.exists() and not mounts_below(self.tmp):
            shutil.rmtree(self.tmp, ignore_errors=True)
        for p in self._absent_dirs:  # deepest first; rmdir only removes empty dirs
            with contextlib.suppress(OSError):
                p.rmdir()
        if self._ip_forward_before is not None:
            now = IP_FORWARD.read_text().strip()
            if now != self._ip_forward_before:
                IP_FORWARD.write_text(self._ip_forward_before + "\n")
                errors.append(f"host ip_forward changed {self._ip_forward_before} -> {now}; restored")
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if errors:
            raise DockerdError("cleanup problems: " + "; ".join(errors))

    def remove_all_objects(self) -> None:
        """Remove every container (with its anonymous volumes), network and volume."""
        c = self.client
        for ctr in c.containers.list(all=True):
            ctr.remove(force=True, v=True)
        for net in c.networks.list():
            if net.name not in ("bridge", "host", "none"):
                net.remove()
        for vol in c.volumes.list():
            vol.remove(force=True)

    def _stop_daemon(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            _kill_pid(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                _kill_pid(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def _our_pids(self) -> list[int]:
        """PIDs of processes dockerd started: containerd/shims (their command
        lines name our unique temp dir) and container processes (in our cgroups)."""
        pids: set[int] = set()
        if self.tmp is not None:
            needle = str(self.tmp)
            for entry in os.listdir("/proc"):
                if entry.isdigit() and int(entry) != os.getpid() and needle in _cmdline(int(entry)):
                    pids.add(int(entry))
        for d in self._cgroup_dirs():
            for procs in d.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids.update(int(x) for x in procs.read_text().split())
        return sorted(pids)

    def _kill_leftovers(self) -> None:
        for _ in range(50):
            pids = [p for p in self._our_pids() if _pid_alive(p)]
            if not pids:
                return
            for p in pids:
                _kill_pid(p)
            time.sleep(0.1)
        raise DockerdError(f"processes left: {pids}")

    def _remove_shim_sockets(self) -> None:
        """containerd 1.6 puts each shim's socket at /run/containerd/s/<sha256(address/ns/id)>
        whatever its state dir is; a shim that was killed leaves it behind. Call after the kill."""
        if self.tmp is None:
            return
        address = str(self.tmp / "exec" / "containerd" / "containerd.sock")
        ids: set[str] = set()
        for d in (self.tmp / "data" / "containers",
                  self.tmp / "exec" / "containerd" / "daemon" / "io.containerd.runtime.v2.task" / "moby"):
            with contextlib.suppress(OSError):
                ids.update(os.listdir(d))
        for cid in ids:
            digest = hashlib.sha256(os.path.join(address, "moby", cid).encode()).hexdigest()
            with contextlib.suppress(FileNotFoundError):
                (Path("/run/containerd/s") / digest).unlink()

    def _cgroup_dirs(self) -> list[Path]:
        if not self.cgroup_parent or not _CGROUP_ROOT.is_dir():
            return []
        found = []
        # cgroup v2: <root>/<parent>; v1 (and the hybrid layout here): <root>/<controller>/<parent>
        for base in (_CGROUP_ROOT, *(p for p in _CGROUP_ROOT.iterdir() if p.is_dir())):
            d = base / self.cgroup_parent
            if d.is_dir():
                found.append(d)
        return found

    def _remove_cgroups(self) -> None:
        for d in self._cgroup_dirs():
            for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                              reverse=True):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            with contextlib.suppress(OSError):
                d.rmdir()

    # ------------------------------------------------------- the namespace
    def in_netns(self, fn: Callable[..., T], *args: Any, timeout: float = 60.0, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in a fresh thread that has entered the namespace."""
        box: dict[str, Any] = {}

        def body() -> None:
            try:
                enter_netns_this_thread(self.netns_path)
                box["value"] = fn(*args, **kwargs)
            except BaseException as e:
                box["error"] = e

        t = threading.Thread(target=body, name="netns-call", daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            raise TimeoutError(f"in_netns({fn!r}) still running after {timeout}s")
        if "error" in box:
            raise box["error"]
        return box["value"]  # type: ignore[no-any-return]

    def connect(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> socket.socket:
        """A TCP socket connected to ``host:port`` as seen from inside the namespace."""
        return self.in_netns(socket.create_connection, (host, port), timeout=timeout)

    def http_connection(self, port: int, host: str = "127.0.0.1",
                        timeout: float = 5.0) -> http.client.HTTPConnection:
        """An ``http.client.HTTPConnection`` whose socket lives in the namespace."""
        outer = self

        class _NetnsHTTPConnection(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = outer.connect(port, host, timeout)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        return _NetnsHTTPConnection(host, port, timeout=timeout)

    def http_get(self, port: int, path: str = "/", host: str = "127.0.0.1", timeout: float = 5.0,
                 headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """One ``GET`` (``Connection: close``) to ``host:port`` inside the namespace."""
        conn = self.http_connection(port, host, timeout)
        try:
            conn.request("GET", path, headers={"Connection": "close", **(headers or {})})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def free_port(self, host: str = "127.0.0.1") -> int:
        """A TCP port that is free on ``host`` inside the namespace (to publish on)."""
        def pick() -> int:
            with socket.socket() as s:
                s.bind((host, 0))
                return int(s.getsockname()[1])

        return self.in_netns(pick)

    def objects(self) -> dict[str, list[str]]:
        """Names of all containers, user networks and volumes the daemon has."""
        c = self.client
        return {
            "containers": sorted(x.name for x in c.containers.list(all=True)),
            "networks": sorted(n.name for n in c.networks.list() if n.name not in ("bridge", "host", "none")),
            "volumes": sorted(v.name for v in c.volumes.list()),
        }

    def netns_cmd(self, argv: list[str]) -> list[str]:
        """``argv`` prefixed to run inside the namespace (e.g. ``wrk``)."""
        return ["nsenter", f"--net={self.netns_path}", "--", *argv]

    def forward(self, port: int, host: str = "127.0.0.1", listen_port: int = 0) -> int:
        """Relay host ``127.0.0.1:<returned port>`` to ``host:port`` in the namespace."""
        fw = _Forwarder(self, host, port, listen_port)
        self._forwarders.append(fw)
        return fw.port

    # ------------------------------------------------------ stale leftovers
    @staticmethod
    def cleanup_stale(base_dir: str | os.PathLike[str] | None = None) -> list[str]:
        """Remove what a *previous, killed* test run of this class left behind.

        Only temp dirs carrying our marker whose owner process is gone are
        touched: their dockerd/containerd/shims/container processes (found by
        the dir's unique path in their command line or the recorded cgroup
        parent) are killed by PID, mounts under them unmounted, their netns
        deleted. Returns the removed dirs.
        """
        root = Path(base_dir or tempfile.gettempdir())
        removed = []
        for tmp in root.glob("netopt-dockerd-*"):
            marker = tmp / MARKER
            try:
                info = json.loads(marker.read_text())
            except (OSError, ValueError):
                continue
            if _pid_alive(int(info.get("owner_pid", 0))) and int(info["owner_pid"]) != os.getpid():
                continue
            d = Dockerd(base_dir=root)
            d.tmp, d.netns, d.cgroup_parent = tmp, info.get("netns"), info.get("cgroup_parent")
            with contextlib.suppress(DockerdError):
                d._kill_leftovers()
            umount_below(tmp)
            if d.netns and (NETNS_DIR / d.netns).exists():
                _run(["ip", "netns", "del", d.netns], check=False)
            d._remove_cgroups()
            d._remove_shim_sockets()
            if not mounts_below(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
                removed.append(str(tmp))
        return removed


class _Forwarder:
    """Host-loopback TCP listener relaying each connection into the namespace."""

    def __init__(self, d: Dockerd, host: str, port: int, listen_port: int) -> None:
        self.d, self.host, self.target_port = d, host, port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", listen_port))
        self.lsock.listen(512)
        self.port: int = self.lsock.getsockname()[1]
        self._closed = threading.Event()
        self._conns: set[socket.socket] = set()
        self._mu = threading.Lock()
        threading.Thread(target=self._accept_loop, name=f"fwd-{self.port}", daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                down, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(down,), daemon=True).start()

    def _relay(self, down: socket.socket) -> None:
        try:
            enter_netns_this_thread(self.d.netns_path)
            up = socket.create_connection((self.host, self.target_port), timeout=10)
        except OSError:
            down.close()
            return
        up.settimeout(None)
        with self._mu:
            self._conns.update((down, up))
        sel = selectors.DefaultSelector()
        sel.register(down, selectors.EVENT_READ, up)
        sel.register(up, selectors.EVENT_READ, down)
        open_ends = 2
        try:
            while open_ends and not self._closed.is_set():
                for key, _ in sel.select(timeout=0.5):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    dst: socket.socket = key.data
                    try:
                        data = src.recv(65536)
                    except OSError:
                        data = b""
                    if data:
                        try:
                            dst.sendall(data)
                        except OSError:
                            return
                    else:
                        sel.unregister(src)
                        open_ends -= 1
                        with contextlib.suppress(OSError):
                            dst.shutdown(socket.SHUT_WR)
        finally:
            sel.close()
            for s in (down, up):
                with self._mu:
                    self._conns.discard(s)
                s.close()

    def close(self) -> None:
        self._closed.set()
        self.lsock.close()
        with self._mu:
            conns = list(self._conns)
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def running_dockerd(**kwargs: Any) -> Iterator[Dockerd]:
    """``with running_dockerd() as d:`` -- like ``with Dockerd() as client`` but yields the Dockerd."""
    d = Dockerd(**kwargs)
    d.start()
    try:
        yield d
    finally:
        d.stop()
