"""The recorded sample stack, applied once to a real (private) dockerd, checked from the test process.

The gateway publishes 127.0.0.1:<port> inside the dockerd's network namespace
(see e2e/dockerd.py); the test reaches it over sockets created in that
namespace (``Dockerd.http_get``), and once through the host-loopback relay.
"""
from __future__ import annotations

import ipaddress
import json
import subprocess
import urllib.request
from collections import Counter
from typing import Any

import pytest

from e2e.apply import Applied, apply_docker_resources
from e2e.dockerd import Dockerd
from e2e.sample_stack import (
    BACKEND_PORT,
    BACKENDS,
    EDGE,
    EDGE_SUBNET,
    GATEWAY,
    GATEWAY_INTERNAL_IP,
    INTERNAL,
    INTERNAL_SUBNET,
    recorded_stack,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def shared(dockerd: Dockerd, e2e_images: dict[str, str]) -> Any:
    """The sample stack, applied once for the read-only checks of this module."""
    dockerd.remove_all_objects()
    port = dockerd.free_port()
    app = apply_docker_resources(dockerd.client, recorded_stack(port))
    try:
        yield dockerd, app, port
    finally:
        app.teardown()
        dockerd.remove_all_objects()


def _get(d: Dockerd, port: int, path: str = "/") -> tuple[int, dict[str, str], bytes]:
    return d.http_get(port, path, timeout=10)


def test_containers_match_the_declaration(shared: tuple[Dockerd, Applied, int]) -> None:
    d, app, port = shared
    for name, ip in BACKENDS.items():
        attrs = app.container(name).attrs
        hc = attrs["HostConfig"]
        assert attrs["State"]["Health"]["Status"] == "healthy"
        assert hc["ReadonlyRootfs"] is True and hc["CapDrop"] == ["ALL"]
        assert hc["Memory"] == 64 * 1024 * 1024 and hc["NanoCpus"] == 500_000_000
        assert hc["SecurityOpt"] == ["no-new-privileges:true"]
        assert attrs["Config"]["User"] == "65534:65534"
        nets = attrs["NetworkSettings"]["Networks"]
        assert set(nets) == {INTERNAL}
        assert nets[INTERNAL]["IPAddress"] == ip
        assert "api" in nets[INTERNAL]["Aliases"]
        assert not any(attrs["NetworkSettings"]["Ports"].values()), "backends publish nothing"
    gw = app.container(GATEWAY).attrs
    assert gw["Config"]["User"] == "33:33" and gw["HostConfig"]["CapDrop"] == ["ALL"]
    assert set(gw["NetworkSettings"]["Networks"]) == {EDGE, INTERNAL}
    assert gw["NetworkSettings"]["Networks"][INTERNAL]["IPAddress"] == GATEWAY_INTERNAL_IP
    assert ipaddress.ip_address(gw["NetworkSettings"]["Networks"][EDGE]["IPAddress"]) in \
        ipaddress.ip_network(EDGE_SUBNET)
    assert app.published(GATEWAY, 8080) == [("127.0.0.1", port)]
    assert d.client.networks.get(INTERNAL).attrs["Internal"] is True


def test_gateway_answers_and_reaches_both_backends(shared: tuple[Dockerd, Applied, int]) -> None:
    d, _, port = shared
    seen: Counter[str] = Counter()
    for _ in range(20):
        status, headers, body = _get(d, port, "/anything")
        assert status == 200
        seen[headers["x-replica"]] += 1
        assert body.decode().strip() == headers["x-replica"]
    assert set(seen) == set(BACKENDS), seen
    # the same through the host-loopback relay (what curl/wrk in the host namespace would use)
    host_port = d.forward(port)
    with urllib.request.urlopen(f"http://127.0.0.1:{host_port}/via-relay", timeout=10) as r:
        assert r.status == 200 and r.headers["X-Replica"] in BACKENDS


def test_backends_are_not_reachable_from_outside(shared: tuple[Dockerd, Applied, int]) -> None:
    d, app, _ = shared
    # 1. nothing listens for the backends on the daemon's loopback (no published port)...
    with pytest.raises(OSError):
        d.connect(BACKEND_PORT, timeout=2).close()
    # 2. ...and the test process's own namespace has no address in the container subnets:
    #    the backends' addresses do not exist there (checked without sending a packet).
    out = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=True).stdout
    host_addrs = [ipaddress.ip_address(a["local"]) for i in json.loads(out) for a in i.get("addr_info", [])]
    for subnet in (INTERNAL_SUBNET, EDGE_SUBNET):
        assert not any(a in ipaddress.ip_network(subnet) for a in host_addrs)
    # 3. a container on the edge network only cannot reach a backend (internal network isolation),
    #    while the gateway (on both networks) can.
    probe_code = (
        "import socket,sys\n"
        "try:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close(); print('open')\n"
        "except OSError as e:\n print('blocked', e)\n"
    )
    out = d.client.containers.run("netopt/backend:e2e", ["python3", "-c", probe_code, BACKENDS["api-0"],
                                                         str(BACKEND_PORT)],
                                  network=EDGE, remove=True, user="65534:65534", cap_drop=["ALL"])
    assert out.decode().startswith("blocked"), out
    rc, out = app.container(GATEWAY).exec_run(
        ["curl", "-fsS", "-o", "/dev/null", "-w", "%{http_code}", f"http://{BACKENDS['api-0']}:{BACKEND_PORT}/"],
        user="33:33")
    assert rc == 0 and out == b"200", out
