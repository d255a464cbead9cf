"""Robot Shop (tests/demo/Pulumi.robotshop.yaml) on the private dockerd: every container runs as the user and with the
capabilities its workload declares, read from `docker inspect` and from inside the container (/proc/1/status, `id`,
/proc/net/tcp), and decoded with the host's `capsh`, not with this project's own capability list.

The images are stood in for by the e2e backend (an HTTP server on $PORT), as for the boutique: each workload's probe
is its HTTP one (timing kept), the graph, users, capabilities, ports, volumes and restart policies are the stack's.
What the kernel makes of a declared capability is the point: Docker gives a non-root container its added
capabilities in the bounding set only, so the process's effective and permitted sets stay empty (README, "How
workloads run"); a port below 1024 is served through the unprivileged-port sysctl instead.
"""
from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from e2e.apply import CONTAINER, apply_docker_resources
from e2e.dockerd import Dockerd
from e2e.images import STREAM_MODULE
from e2e.stack import alias_images, is_gateway
from offline.program import run_program
from testbed.tools import find_tool
from tests.e2e.test_stacks_e2e import _wait_healthy
from tests.test_robotshop import robotshop

pytestmark = pytest.mark.e2e

_PROBE_TIMING = ("interval_s", "period_s", "timeout_s", "retries", "failure_threshold", "initial_delay_s", "start_period_s")
_INSIDE = "id -u; id -g; grep -E '^(Uid|Gid|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/1/status; " \
          "cat /proc/sys/net/ipv4/ip_unprivileged_port_start; tail -n +2 /proc/net/tcp"


def _as_e2e_backends(raw: dict[str, Any]) -> dict[str, Any]:
    """Every workload with a port probed over HTTP on /healthz (the e2e backend's), its timing kept; no image command;
    the gateway image's stream module loaded by the tcp service proxies (the datastores' callers)."""
    workloads = []
    for w in raw["workloads"]:
        health = w.get("health", {})
        if "port" in w and health.get("kind") != "none":
            w = {**w, "health": {"kind": "http", "path": "/healthz", **{k: v for k, v in health.items() if k in _PROBE_TIMING}}}
        workloads.append({k: v for k, v in w.items() if k not in ("command", "args")})
    return {**raw, "workloads": workloads, "gateway": {**raw.get("gateway", {}), "stream_module": STREAM_MODULE}}


@pytest.fixture(scope="module")
def robotshop_on_docker(dockerd: Dockerd, e2e_images: dict[str, str]) -> Any:
    raw = _as_e2e_backends(robotshop())
    config = {f"netopt:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
    records = run_program(config, "robotshop", preview=False)
    alias_images(dockerd.client, records)
    dockerd.remove_all_objects()
    app = apply_docker_resources(dockerd.client, records, docker_host=dockerd.base_url)
    try:
        _wait_healthy(app, [r.inputs["name"] for r in records if r.type == CONTAINER])
        yield dockerd, app, records, raw
    finally:
        app.teardown()
        dockerd.remove_all_objects()


def _decode(mask: str) -> set[str]:
    """Capability names in a /proc/<pid>/status mask, as the host's libcap decodes them (`capsh --decode`)."""
    text = subprocess.run([find_tool("capsh"), f"--decode={mask}"], capture_output=True, text=True, check=True).stdout.strip()
    names = text.partition("=")[2]
    return {n.removeprefix("cap_").upper() for n in names.split(",") if n}


def _listening(tcp_table: list[str]) -> dict[int, int]:
    """Port -> uid of each IPv4 socket in LISTEN (state 0A) in /proc/net/tcp."""
    found = {}
    for line in tcp_table:
        fields = line.split()
        if len(fields) > 7 and fields[3] == "0A":
            found[int(fields[1].rsplit(":", 1)[1], 16)] = int(fields[7])
    return found


def test_every_container_runs_as_declared_from_inspect_and_from_inside(robotshop_on_docker: Any) -> None:
    _, app, records, raw = robotshop_on_docker
    declared = {w["name"]: w for w in raw["workloads"]}
    report = []
    for rec in (r for r in records if r.type == CONTAINER and not is_gateway(r.inputs)):
        labels = {x["label"]: x["value"] for x in rec.inputs["labels"]}
        if labels.get("netopt.role") == "service-proxy":
            continue  # the service proxies run the gateway's image and user (tests/e2e/test_service_proxies_e2e.py)
        name = rec.inputs["name"]
        workload = declared[next(x["value"] for x in rec.inputs["labels"] if x["label"] == "netopt.workload")]
        user, _, group = str(workload.get("run_as_user", "65532")).partition(":")
        uid, gid = int(user), int(group or user)
        adds = set(workload.get("capabilities", {}).get("add", []))
        attrs = app.container(name).attrs
        host = attrs["HostConfig"]
        assert attrs["Config"]["User"] == f"{uid}:{gid}", name
        assert (host["CapDrop"], set(host["CapAdd"] or [])) == (["ALL"], adds), name
        assert "no-new-privileges:true" in host["SecurityOpt"] and host["ReadonlyRootfs"] is True, name
        assert host["RestartPolicy"]["Name"] == "unless-stopped", name
        port = workload.get("port")
        assert host.get("Sysctls") == ({"net.ipv4.ip_unprivileged_port_start": str(port)} if port and port < 1024 else None), name

        result = app.container(name).exec_run(["sh", "-c", _INSIDE])
        assert result.exit_code == 0, (name, result.output)
        lines = result.output.decode().splitlines()
        status = dict(line.split(":", 1) for line in lines[2:10])
        assert (int(lines[0]), int(lines[1])) == (uid, gid), f"{name}: exec'd as {lines[:2]}"
        assert status["Uid"].split() == [str(uid)] * 4 and status["Gid"].split() == [str(gid)] * 4, f"{name}: PID 1 {status}"
        assert _decode(status["CapBnd"].strip()) == adds, f"{name}: bounding set {status['CapBnd']}"
        effective = {key: _decode(status[key].strip()) for key in ("CapEff", "CapPrm", "CapInh", "CapAmb")}
        assert all(not caps for caps in effective.values()), f"{name}: a non-root process holds {effective}"
        assert status["NoNewPrivs"].strip() == "1", name
        listening = _listening(lines[11:])
        if port:
            assert listening.get(port) == uid, f"{name}: port {port} is not listened on by uid {uid} ({listening})"
        report.append(f"{name:<24} user {uid}:{gid}  CapAdd {sorted(adds) or '-'}  CapBnd {status['CapBnd'].strip()}  "
                      f"CapEff {status['CapEff'].strip()}  unprivileged_port_start {lines[10]}  listening {sorted(listening.items())}")
    assert len(report) == 12
    print("\n" + "\n".join(report))


def test_ratings_serves_port_80_as_www_data_through_the_sysctl(robotshop_on_docker: Any) -> None:
    """Port 80 as uid 33, no capability: the sysctl the target sets is what the container's network namespace uses."""
    _, app, _, _ = robotshop_on_docker
    result = app.container("robotshop-ratings-0").exec_run(["sh", "-c", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start; "
                                                                          "wget -q -O - http://127.0.0.1:80/healthz"])
    assert result.exit_code == 0, result.output
    assert result.output.decode().splitlines()[0] == "80"


def test_the_shop_answers_through_the_gateway(robotshop_on_docker: Any) -> None:
    d, app, records, _ = robotshop_on_docker
    gateway = next(r for r in records if r.type == CONTAINER and is_gateway(r.inputs))
    (binding,) = app.published(gateway.inputs["name"], 8080)
    conn = d.http_connection(binding[1], timeout=10)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        assert response.status == 200 and re.fullmatch(r"web-0", str(response.getheader("X-Replica"))), response.getheaders()
    finally:
        conn.close()
