"""The private dockerd itself: isolation from the host, networking, and cleanup (also after a failure)."""
from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import docker
import pytest

from e2e._sys import mounts_below
from e2e.dockerd import IP_FORWARD, NETNS_DIR, Dockerd, DockerdError
from e2e.images import GATEWAY_ROOTFS, build_rootfs, import_rootfs

pytestmark = pytest.mark.e2e


def _netns_inode(path: str | Path) -> int:
    return os.stat(path).st_ino


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _state(d: Dockerd) -> dict[str, Any]:
    containerd_pidfile = d.dir / "exec" / "containerd" / "containerd.pid"
    return {
        "tmp": d.dir, "netns": d.netns, "pid": d.pid,
        "containerd": int(containerd_pidfile.read_text()) if containerd_pidfile.exists() else None,
        "cgroup_parent": d.cgroup_parent,
    }


def _assert_gone(st: dict[str, Any], ip_forward: str) -> None:
    assert not _alive(st["pid"]), "dockerd still running"
    if st["containerd"]:
        assert not _alive(st["containerd"]), "containerd still running"
    assert not mounts_below(st["tmp"]), "mounts left under the temp dir"
    assert not Path(st["tmp"]).exists(), "temp dir left"
    assert not (NETNS_DIR / st["netns"]).exists(), "netns left"
    assert not any(Path("/sys/fs/cgroup", c, st["cgroup_parent"]).exists()
                   for c in os.listdir("/sys/fs/cgroup")), "cgroups left"
    leftovers = [p for p in os.listdir("/proc") if p.isdigit() and str(st["tmp"]) in _cmdline(int(p))]
    assert not leftovers, f"processes naming the temp dir: {leftovers}"
    assert IP_FORWARD.read_text().strip() == ip_forward


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_daemon_is_private_and_isolated(dockerd: Dockerd) -> None:
    info = dockerd.client.info()
    assert info["DockerRootDir"] == str(dockerd.dir / "data")
    assert dockerd.client.api.base_url.endswith("docker.sock") or dockerd.socket_path.exists()
    assert str(dockerd.socket_path).startswith(str(dockerd.dir))
    # dockerd lives in our namespace, the test process does not
    assert _netns_inode(f"/proc/{dockerd.pid}/ns/net") == _netns_inode(dockerd.netns_path)
    assert _netns_inode("/proc/self/ns/net") != _netns_inode(dockerd.netns_path)
    # forwarding is on inside the namespace only
    assert dockerd.in_netns(lambda: Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()) == "1"
    assert dockerd.pid == int((dockerd.dir / "docker.pid").read_text())


def test_user_bridge_static_ips_dns_and_published_port(clean_daemon: Dockerd, e2e_images: dict[str, str]) -> None:
    d, c = clean_daemon, clean_daemon.client
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.90.0.0/24", gateway="10.90.0.1")])
    c.networks.create("t-back", driver="bridge", internal=True, ipam=ipam)
    be = c.containers.run("netopt/backend:e2e", detach=True, name="t-be", environment={"NETOPT_REPLICA": "be-1"},
                          network="t-back", user="65534:65534", cap_drop=["ALL"], read_only=True,
                          networking_config={"t-back": c.api.create_endpoint_config(ipv4_address="10.90.0.20",
                                                                                     aliases=["api"])})
    be.reload()
    assert be.attrs["NetworkSettings"]["Networks"]["t-back"]["IPAddress"] == "10.90.0.20"
    # container -> container on the user bridge, by static IP and by alias (embedded DNS)
    for target in ("10.90.0.20", "api"):
        out = c.containers.run("netopt/backend:e2e", ["wget", "-qO-", "-T", "5", f"http://{target}:8080/x"],
                               network="t-back", remove=True)
        assert out.decode().strip() == "be-1"
    # a published port through docker-proxy on the namespace's loopback
    port = d.free_port()
    c.networks.create("t-edge", driver="bridge")
    gw = c.containers.run("netopt/gateway:e2e", detach=True, name="t-gw", user="33:33", cap_drop=["ALL"],
                          tmpfs={"/tmp": "size=8m"}, network="t-edge", ports={"8080/tcp": ("127.0.0.1", port)})
    try:
        status, _, body = d.http_get(port, "/", timeout=10) if _wait_port(d, port) else (0, {}, b"")
        assert status == 200 and b"built-in config" in body
        ps = [p for p in os.listdir("/proc") if p.isdigit() and "docker-proxy" in _cmdline(int(p))
              and f"-host-port {port}" in _cmdline(int(p))]
        assert ps, "expected a docker-proxy for the published port"
    finally:
        gw.remove(force=True)


def _wait_port(d: Dockerd, port: int, timeout: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            d.http_get(port, "/", timeout=2)
            return True
        except OSError:
            time.sleep(0.1)
    return False


def test_cleanup_after_a_failure_midway() -> None:
    """An exception inside ``with Dockerd()`` with a container and network alive leaves nothing behind."""
    ip_forward = IP_FORWARD.read_text().strip()
    tarball = build_rootfs(GATEWAY_ROOTFS)
    d = Dockerd()
    st: dict[str, Any] = {}
    with pytest.raises(RuntimeError, match="boom"), d as client:
        st.update(_state(d))
        import_rootfs(client, tarball, "t/gw:1", ['CMD ["nginx", "-g", "daemon off;"]'])
        client.networks.create("t-net", driver="bridge")
        client.containers.run("t/gw:1", detach=True, name="t-left", network="t-net",
                              ports={"8080/tcp": ("127.0.0.1", d.free_port())})
        client.volumes.create("t-vol")
        assert mounts_below(d.dir)  # overlay, shm, netns bind mounts
        assert IP_FORWARD.read_text().strip() == ip_forward
        raise RuntimeError("boom")
    _assert_gone(st, ip_forward)
    d.stop()  # idempotent


def test_cleanup_stale_after_the_owner_was_killed() -> None:
    """What a killed test run left (a running daemon with a container) is removed by cleanup_stale()."""
    ip_forward = IP_FORWARD.read_text().strip()
    tarball = build_rootfs(GATEWAY_ROOTFS)
    base = Path(tempfile.mkdtemp(prefix="nd-"))  # short: unix socket paths are limited to 104 bytes
    d = Dockerd(base_dir=base)
    client = d.start()
    import_rootfs(client, tarball, "t/gw:1", ['CMD ["nginx", "-g", "daemon off;"]'])
    orphan = client.containers.run("t/gw:1", detach=True, name="t-orphan")
    st = _state(d)
    address = str(d.dir / "exec" / "containerd" / "containerd.sock")
    shim_socket = Path("/run/containerd/s") / hashlib.sha256(f"{address}/moby/{orphan.id}".encode()).hexdigest()
    assert shim_socket.exists()
    # pretend the owning test process died: a finished child's PID as the owner, and no stop() from us
    dead = subprocess.Popen(["true"])
    dead.wait()
    marker = d.dir / "netopt-e2e-dockerd.json"
    marker.write_text(marker.read_text().replace(f'"owner_pid": {os.getpid()}', f'"owner_pid": {dead.pid}'))
    client.close()
    try:
        removed = Dockerd.cleanup_stale(base)
        assert removed == [str(st["tmp"])]
        _assert_gone(st, ip_forward)
        assert not shim_socket.exists(), "the killed shim's socket was left in /run/containerd/s"
    finally:
        with contextlib.suppress(DockerdError):
            d.stop()  # reaps the dockerd child; complains only if something was left
        base.rmdir()


def test_too_long_base_dir_is_refused(tmp_path: Path) -> None:
    def ours() -> set[str]:
        return {n for n in os.listdir(NETNS_DIR) if n.startswith("netopt-e2e-")} if NETNS_DIR.exists() else set()

    before = ours()
    deep = tmp_path / ("x" * 60)
    deep.mkdir()
    with pytest.raises(DockerdError, match="too long"):
        Dockerd(base_dir=deep).start()
    assert ours() == before
    assert list(deep.iterdir()) == []
