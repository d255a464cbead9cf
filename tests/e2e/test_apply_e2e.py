"""e2e.apply against a real (private) dockerd: tests that change or tear down what they applied.

The gateway publishes 127.0.0.1:<port> inside the dockerd's network namespace
(see e2e/dockerd.py); the test reaches it over sockets created in that
namespace (``Dockerd.http_get``), and once through the host-loopback relay.
"""
from __future__ import annotations

import base64
import threading
import time
from collections import Counter
from typing import Any

import pytest

from e2e.apply import Applied, UnsupportedPropertyError, apply_docker_resources
from e2e.dockerd import Dockerd
from e2e.sample_stack import (
    BACKENDS,
    GATEWAY,
    INTERNAL,
    recorded_stack,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def applied(clean_daemon: Dockerd, e2e_images: dict[str, str]) -> Any:
    """The sample stack, applied for one test that changes it."""
    d = clean_daemon
    port = d.free_port()
    app = apply_docker_resources(d.client, recorded_stack(port))
    try:
        yield d, app, port
    finally:
        app.teardown()


def _get(d: Dockerd, port: int, path: str = "/") -> tuple[int, dict[str, str], bytes]:
    return d.http_get(port, path, timeout=10)


def test_stopping_a_backend_loses_no_request(applied: tuple[Dockerd, Applied, int]) -> None:
    d, app, port = applied
    results: list[tuple[float, int | str, str]] = []
    stop_at: list[float] = []

    def loop() -> None:
        deadline = time.monotonic() + 30
        conn = d.http_connection(port, timeout=10)
        for _ in range(400):
            if time.monotonic() > deadline:
                break
            try:
                conn.request("GET", "/loop")
                r = conn.getresponse()
                r.read()
                results.append((time.monotonic(), r.status, r.getheader("X-Replica") or ""))
            except (OSError, ValueError) as e:
                results.append((time.monotonic(), repr(e), ""))
                conn.close()
                conn = d.http_connection(port, timeout=10)
            time.sleep(0.005)
        conn.close()

    t = threading.Thread(target=loop)
    t.start()
    time.sleep(0.5)
    stop_at.append(time.monotonic())
    app.containers["api-1"].stop(timeout=5)
    t.join(60)
    assert not t.is_alive()
    failed = [r for r in results if r[1] != 200]
    assert not failed, failed[:5]
    before = {r[2] for r in results if r[0] < stop_at[0]}
    after = [r[2] for r in results if r[0] > stop_at[0] + 1.0]
    assert before == set(BACKENDS), before
    assert after and set(after) == {"api-0"}, Counter(after)
    assert len(results) >= 200


def test_teardown_leaves_nothing(clean_daemon: Dockerd, e2e_images: dict[str, str]) -> None:
    d = clean_daemon
    before = d.objects()
    app = apply_docker_resources(d.client, recorded_stack(d.free_port()))
    assert len(d.objects()["containers"]) == len(before["containers"]) + 3
    app.teardown()
    app.teardown()  # idempotent
    assert d.objects() == before == {"containers": [], "networks": [], "volumes": []}


def test_unknown_property_raises_and_creates_nothing(clean_daemon: Dockerd) -> None:
    d = clean_daemon
    res = recorded_stack(18080)
    res[-1]["inputs"]["publishEverything"] = True
    with pytest.raises(UnsupportedPropertyError, match="publishEverything"):
        apply_docker_resources(d.client, res)
    assert d.objects() == {"containers": [], "networks": [], "volumes": []}


def test_failure_midway_removes_what_was_created(clean_daemon: Dockerd, e2e_images: dict[str, str]) -> None:
    d = clean_daemon
    res = recorded_stack(d.free_port())
    res[-1]["inputs"]["image"] = "netopt/does-not-exist:e2e"  # Docker itself refuses the last container
    with pytest.raises(Exception, match="does-not-exist"):
        apply_docker_resources(d.client, res)
    assert d.objects() == {"containers": [], "networks": [], "volumes": []}


def test_gateway_publishes_even_when_internal_network_is_listed_first(
        clean_daemon: Dockerd, e2e_images: dict[str, str]) -> None:
    """Docker binds published ports on the gateway's non-internal network whatever the order
    of networksAdvanced (pulumi-docker keeps them in a set, so the order is not guaranteed)."""
    d = clean_daemon
    port = d.free_port()
    with apply_docker_resources(d.client, recorded_stack(port, gateway_internal_first=True)) as app:
        assert app.container(GATEWAY).attrs["HostConfig"]["NetworkMode"] == INTERNAL
        status, headers, _ = _get(d, port)
        assert status == 200 and headers["x-replica"] in BACKENDS


def test_more_properties_reach_docker_one_to_one(clean_daemon: Dockerd, e2e_images: dict[str, str]) -> None:
    """Properties beyond the sample stack, checked in `docker inspect` after a real apply."""
    d = clean_daemon
    script = "#!/bin/sh\necho hi\n"
    res: list[dict[str, Any]] = [
        {"type": "docker:index/volume:Volume", "name": "data", "inputs": {
            "name": "t-data", "driver": "local", "labels": [{"label": "k", "value": "v"}]}},
        {"type": "docker:index/network:Network", "name": "n", "inputs": {
            "name": "t-n", "driver": "bridge", "attachable": True,
            "ipamConfigs": [{"subnet": "10.91.0.0/24", "gateway": "10.91.0.1", "ipRange": "10.91.0.128/25"}]}},
        {"type": "docker:index/container:Container", "name": "kitchen", "inputs": {
            "name": "t-kitchen", "image": "netopt/backend:e2e", "hostname": "kitchen", "domainname": "example.test",
            "entrypoints": ["/opt/netopt/run-backend"], "command": ["--latency-ms", "0"],
            "workingDir": "/opt/netopt", "user": "65534:65534", "groupAdds": ["100"],
            "envs": ["NETOPT_REPLICA=k-0", "PORT=9000"], "stopSignal": "SIGINT", "stopTimeout": 3.0,
            "init": True, "restart": "on-failure", "maxRetryCount": 2.0,
            "memory": 96.0, "memorySwap": 192.0, "memoryReservation": 32.0, "shmSize": 8.0,
            "cpuShares": 512.0, "cpus": "0.25",
            "sysctls": {"net.ipv4.ip_unprivileged_port_start": "0"},
            "ulimits": [{"name": "nofile", "soft": 1024.0, "hard": 2048.0}],
            "hosts": [{"host": "db.internal", "ip": "10.91.0.99"}],
            "dns": ["10.91.0.53"], "dnsOpts": ["ndots:1"], "dnsSearches": ["example.test"],
            "logDriver": "json-file", "logOpts": {"max-size": "1m", "max-file": "2"},
            "volumes": [{"volumeName": "t-data", "containerPath": "/data"}],
            "mounts": [{"target": "/scratch", "type": "tmpfs", "tmpfsOptions": {"sizeBytes": 1048576.0, "mode": 1777.0}}],
            "tmpfs": {"/tmp": "size=4m"},
            "networksAdvanced": [{"name": "t-n", "ipv4Address": "10.91.0.10", "aliases": ["k"]}],
            "ports": [{"internal": 9000.0}],  # ip 0.0.0.0, tcp, random host port: the provider's defaults
            "uploads": [{"file": "/opt/netopt/hello.sh", "contentBase64": base64.b64encode(script.encode()).decode(),
                         "executable": True}],
        }},
    ]
    with apply_docker_resources(d.client, res) as app:
        a = app.container("t-kitchen").attrs
        cfg, hc = a["Config"], a["HostConfig"]
        assert cfg["Entrypoint"] == ["/opt/netopt/run-backend"] and cfg["Cmd"] == ["--latency-ms", "0"]
        assert (cfg["Hostname"], cfg["Domainname"], cfg["WorkingDir"]) == ("kitchen", "example.test", "/opt/netopt")
        assert cfg["StopSignal"] == "SIGINT" and cfg["StopTimeout"] == 3
        assert {"NETOPT_REPLICA=k-0", "PORT=9000"} <= set(cfg["Env"])
        assert hc["GroupAdd"] == ["100"] and hc["Init"] is True
        assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
        assert (hc["Memory"], hc["MemorySwap"], hc["MemoryReservation"]) == (96 * 2**20, 192 * 2**20, 32 * 2**20)
        assert hc["ShmSize"] == 8 * 2**20 and hc["CpuShares"] == 512 and hc["NanoCpus"] == 250_000_000
        assert hc["Sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "0"}
        assert hc["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
        assert hc["ExtraHosts"] == ["db.internal:10.91.0.99"]
        assert (hc["Dns"], hc["DnsOptions"], hc["DnsSearch"]) == (["10.91.0.53"], ["ndots:1"], ["example.test"])
        assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}
        assert hc["Binds"] == ["t-data:/data:rw"] and hc["Tmpfs"] == {"/tmp": "size=4m"}
        assert hc["Mounts"] == [{"Type": "tmpfs", "Target": "/scratch",
                                 "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 1777}}]
        assert a["NetworkSettings"]["Networks"]["t-n"]["IPAddress"] == "10.91.0.10"
        ((host_ip, host_port),) = app.published("t-kitchen", 9000)
        assert host_ip == "0.0.0.0" and host_port > 0
        rc, out = app.containers["t-kitchen"].exec_run(["stat", "-c", "%a %u", "/opt/netopt/hello.sh"])
        assert (rc, out) == (0, b"744 0\n")  # the provider's mode for `executable`: owner (root) only
        rc, out = app.containers["t-kitchen"].exec_run(["/opt/netopt/hello.sh"], user="0")
        assert (rc, out) == (0, b"hi\n")
        deadline = time.monotonic() + 20  # no healthcheck here: wait for the server to listen
        while True:
            try:
                status, headers, _ = d.http_get(host_port, "/", timeout=5)
                break
            except OSError:  # docker-proxy accepts, then drops while nothing listens behind it
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert status == 200 and headers["x-replica"] == "k-0"
        assert d.client.volumes.get("t-data").attrs["Labels"] == {"k": "v"}
        assert d.client.networks.get("t-n").attrs["Attachable"] is True
    assert d.objects() == {"containers": [], "networks": [], "volumes": []}
