"""A hand-written list of recorded pulumi-docker resources (as Pulumi mocks record
them: camelCase wire names, numbers as floats), used by the e2e self-tests
(tests/e2e) and as an example of what e2e.apply consumes."""
from __future__ import annotations

import copy
from typing import Any

from e2e.images import NGINX_HTTP_WRITABLE_PATHS

INTERNAL = "netopt-e2e-internal"
EDGE = "netopt-e2e-edge"
INTERNAL_SUBNET, INTERNAL_GW = "10.89.1.0/24", "10.89.1.1"
EDGE_SUBNET, EDGE_GW = "10.89.2.0/24", "10.89.2.1"
BACKENDS = {"api-0": "10.89.1.10", "api-1": "10.89.1.11"}
GATEWAY = "netopt-e2e-gateway"
GATEWAY_INTERNAL_IP = "10.89.1.2"
BACKEND_PORT = 8080
GATEWAY_PORT = 8080

_HARDENING: dict[str, Any] = {
    "capabilities": {"drops": ["ALL"]},
    "securityOpts": ["no-new-privileges:true"],
    "restart": "unless-stopped",
    "tmpfs": {"/tmp": "rw,noexec,nosuid,size=16m"},
}


def nginx_conf(backends: dict[str, str] = BACKENDS) -> str:
    servers = "\n".join(f"        server {ip}:{BACKEND_PORT} max_fails=1 fail_timeout=10s;"
                        for ip in backends.values())
    return f"""\
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr warn;
events {{ worker_connections 256; }}
http {{
{NGINX_HTTP_WRITABLE_PATHS}\
    upstream api {{
{servers}
        keepalive 16;
    }}
    server {{
        listen {GATEWAY_PORT};
        location = /healthz {{ return 200 "ok\\n"; }}
        location / {{
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 1s;
            proxy_read_timeout 5s;
            proxy_next_upstream error timeout http_502 http_503 http_504;
            proxy_next_upstream_tries 2;
        }}
    }}
}}
"""


def _label(**kv: str) -> list[dict[str, str]]:
    return [{"label": k, "value": v} for k, v in sorted(kv.items())]


def _urn(typ: str, name: str) -> str:
    return f"urn:pulumi:e2e::netopt::netopt:index:AppNetwork${typ}::{name}"


def recorded_stack(publish_port: int, *, gateway_internal_first: bool = False,
                   backends: dict[str, str] = BACKENDS) -> list[dict[str, Any]]:
    stack_urn = "urn:pulumi:e2e::netopt::pulumi:pulumi:Stack::netopt-e2e"
    comp_urn = "urn:pulumi:e2e::netopt::netopt:index:AppNetwork::app"
    res: list[dict[str, Any]] = [
        {"type": "pulumi:pulumi:Stack", "name": "netopt-e2e", "urn": stack_urn, "parent": None, "inputs": {}},
        {"type": "netopt:index:AppNetwork", "name": "app", "urn": comp_urn, "parent": stack_urn, "inputs": {}},
        {"type": "docker:index/network:Network", "name": INTERNAL, "urn": _urn("docker:index/network:Network", INTERNAL),
         "parent": comp_urn, "inputs": {
             "name": INTERNAL, "driver": "bridge", "internal": True,
             "ipamConfigs": [{"subnet": INTERNAL_SUBNET, "gateway": INTERNAL_GW}],
             "labels": _label(**{"netopt.role": "internal"}),
         }},
        {"type": "docker:index/network:Network", "name": EDGE, "urn": _urn("docker:index/network:Network", EDGE),
         "parent": comp_urn, "inputs": {
             "name": EDGE, "driver": "bridge", "internal": False,
             "ipamConfigs": [{"subnet": EDGE_SUBNET, "gateway": EDGE_GW}],
             "labels": _label(**{"netopt.role": "edge"}),
             "options": {"com.docker.network.bridge.enable_icc": "true"},
         }},
    ]
    for name, ip in backends.items():
        res.append({"type": "docker:index/container:Container", "name": name,
                    "urn": _urn("docker:index/container:Container", name), "parent": comp_urn, "inputs": {
                        "name": name, "image": "netopt/backend:e2e", "hostname": name,
                        "user": "65534:65534", "memory": 64.0, "cpus": "0.5", "readOnly": True,
                        "envs": [f"NETOPT_REPLICA={name}", f"PORT={BACKEND_PORT}"],
                        "labels": _label(**{"netopt.workload": "api", "netopt.replica": name[-1]}),
                        "healthcheck": {
                            "tests": ["CMD", "wget", "-q", "-O", "/dev/null",
                                      f"http://127.0.0.1:{BACKEND_PORT}/healthz"],
                            "interval": "500ms", "timeout": "2s", "retries": 3.0, "startPeriod": "500ms",
                        },
                        "networksAdvanced": [{"name": INTERNAL, "aliases": ["api"], "ipv4Address": ip}],
                        "mustRun": True, "wait": True, "waitTimeout": 60.0,
                        **copy.deepcopy(_HARDENING),
                    }})
    nets = [{"name": EDGE}, {"name": INTERNAL, "ipv4Address": GATEWAY_INTERNAL_IP}]
    if gateway_internal_first:
        nets.reverse()
    res.append({"type": "docker:index/container:Container", "name": GATEWAY,
                "urn": _urn("docker:index/container:Container", GATEWAY), "parent": comp_urn, "inputs": {
                    "name": GATEWAY, "image": "netopt/gateway:e2e", "hostname": GATEWAY,
                    "user": "33:33", "memory": 128.0, "cpus": "1", "readOnly": False,
                    "command": ["nginx", "-c", "/etc/nginx/nginx.conf", "-g", "daemon off;"],
                    "uploads": [{"file": "/etc/nginx/nginx.conf", "content": nginx_conf(backends)}],
                    "labels": _label(**{"netopt.role": "gateway"}),
                    "healthcheck": {
                        "tests": ["CMD", "curl", "-fsS", "-o", "/dev/null",
                                  f"http://127.0.0.1:{GATEWAY_PORT}/healthz"],
                        "interval": "500ms", "timeout": "2s", "retries": 3.0, "startPeriod": "500ms",
                    },
                    "networksAdvanced": nets,
                    "ports": [{"internal": float(GATEWAY_PORT), "external": float(publish_port),
                               "ip": "127.0.0.1", "protocol": "tcp"}],
                    "mustRun": True, "wait": True,
                    **copy.deepcopy(_HARDENING),
                }})
    return res
