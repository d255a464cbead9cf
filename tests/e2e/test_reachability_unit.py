"""e2e.reachability's pure parts and e2e/call_probe.py, without Docker: the graph read off a stack file, the
listening sockets read off /proc/net/tcp, and the probe's calls against a real nginx on loopback."""
from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e import call_probe
from e2e.reachability import declared, listening_sockets, proxy_role
from offline.stack_config import cli_config, stack_file
from testbed.nginx_runner import NginxRunner


def _values(stack: str) -> dict[str, object]:
    config = cli_config(stack_file(stack))
    return {k.removeprefix("netopt:"): json.loads(v) if v[:1] in "[{" else v for k, v in config.items() if k.startswith("netopt:")}


def test_the_dev_graph_read_off_its_stack_file() -> None:
    """By hand from stacks/Pulumi.dev.yaml: routes reach static, auth, api-canary, api, web; web calls api (8000),
    api and api-canary call auth (9000); no split."""
    graph = declared(_values("dev"))
    assert graph.hops() == {
        ("gateway", "static", 8080), ("gateway", "auth", 9000), ("gateway", "api-canary", 8000), ("gateway", "api", 8000),
        ("gateway", "web", 3000),
        ("web", proxy_role("api"), 8000), (proxy_role("api"), "api", 8000),
        ("api", proxy_role("auth"), 9000), ("api-canary", proxy_role("auth"), 9000), (proxy_role("auth"), "auth", 9000),
    }
    assert graph.proxy_callers() == {proxy_role("api"): {"web"}, proxy_role("auth"): {"api", "api-canary"}}
    assert ("auth", "api") not in graph.flows() and ("api", "auth") in graph.flows()


def test_a_split_sends_the_proxy_to_every_version(minimal: dict[str, object]) -> None:
    minimal["workloads"] = [
        {"name": "web", "port": 3000, "calls": [{"workload": "api"}]},
        {"name": "api", "port": 8000, "traffic_policy": {"split": [{"workload": "api", "weight": 9}, {"workload": "api-v2", "weight": 1}]}},
        {"name": "api-v2", "port": 8001},
    ]
    minimal["routes"] = [{"backends": [{"workload": "web"}]}]
    graph = declared(minimal)
    assert {(a, b) for a, b, _ in graph.hops() if a == proxy_role("api")} == {(proxy_role("api"), "api"), (proxy_role("api"), "api-v2")}
    assert ("web", "api-v2") in graph.flows()


def test_listening_sockets_are_read_off_the_kernels_table() -> None:
    """Sockets this test binds, found in the kernel's own /proc/net/tcp and tcp6; Docker's resolver is left out."""
    with socket.socket() as loopback, socket.socket() as everywhere, socket.socket(socket.AF_INET6) as v6:
        loopback.bind(("127.0.0.1", 0))
        everywhere.bind(("0.0.0.0", 0))
        v6.bind(("::1", 0))
        for s in (loopback, everywhere, v6):
            s.listen()
        text = Path("/proc/net/tcp").read_text() + Path("/proc/net/tcp6").read_text()
        found = listening_sockets(text)
        assert ("127.0.0.1", loopback.getsockname()[1]) in found
        assert ("0.0.0.0", everywhere.getsockname()[1]) in found
        assert ("::1", v6.getsockname()[1]) in found
    resolver = "   0: 0B00007F:A1B2 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n"
    assert listening_sockets(resolver) == set()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def nginx() -> Iterator[tuple[int, int]]:
    """An h2c gRPC listener whose upstream refuses (nginx answers a gRPC status itself, as a service proxy does)
    and an HTTP/1.1 listener that answers as the e2e backend does."""
    grpc_port, http_port, dead = _free_port(), _free_port(), _free_port()
    conf = f"""
events {{}}
http {{
    access_log off;  # not nginx's compiled-in /var/log/nginx/access.log, which a normal user cannot open
    server {{
        listen 127.0.0.1:{grpc_port} http2;
        location / {{ grpc_pass grpc://127.0.0.1:{dead}; error_page 502 = @unavailable; }}
        location @unavailable {{ default_type application/grpc; add_header grpc-status 14 always; return 204; }}
    }}
    server {{
        listen 127.0.0.1:{http_port};
        location / {{ add_header X-Replica auth-0; return 200 "auth-0\\n"; }}
    }}
}}
"""
    with NginxRunner(conf):  # __enter__ starts it (a .start() here started a second nginx and leaked the first)
        yield grpc_port, http_port


def test_the_probe_makes_a_grpc_call_over_h2c_and_an_http_call(nginx: tuple[int, int]) -> None:
    grpc_port, http_port = nginx
    grpc = call_probe.call(f"grpc:127.0.0.1:{grpc_port}")
    assert grpc["ok"] and grpc["status"] == "headers" and grpc["resolved"] == ["127.0.0.1"], grpc
    http = call_probe.call(f"http:127.0.0.1:{http_port}")
    assert http["ok"] and http["status"] == 200 and http["replica"] == "auth-0", http


def test_the_probe_fails_where_the_protocol_does_not_answer(nginx: tuple[int, int]) -> None:
    grpc_port, http_port = nginx
    assert not call_probe.call(f"grpc:127.0.0.1:{http_port}")["ok"]  # HTTP/1.1 answers the preface with 400 and closes
    assert not call_probe.call(f"http:127.0.0.1:{grpc_port}")["ok"]  # an h2c listener takes no HTTP/1.1 request
    assert call_probe.call(f"http:127.0.0.1:{_free_port()}")["error"]  # nobody listens


def test_the_gateway_and_the_service_proxies_run_the_gateway_image_and_the_e2e_stacks_load_its_stream_module() -> None:
    """The boutique as e2e records it: the nginx containers (gateway, one proxy per called workload) are tagged from
    the e2e gateway image, every replica from the backend image; the tcp proxy loads Debian's stream module."""
    from e2e.images import BACKEND_IMAGE, GATEWAY_IMAGE, STREAM_MODULE
    from e2e.stack import alias_images, record_stack

    records = record_stack("boutique")
    tagged: dict[str, str] = {}

    class Image:
        def __init__(self, source: str) -> None:
            self.source = source

        def tag(self, repo: str, tag: str) -> None:
            tagged[f"{repo}:{tag}"] = self.source

    class Client:
        class images:  # noqa: N801 - docker.DockerClient's attribute
            @staticmethod
            def get(ref: str) -> Image:
                return Image(ref)

    alias_images(Client(), records)
    containers = [r.inputs for r in records if r.type == "docker:index/container:Container"]
    nginx = {c["image"] for c in containers if any(x["label"] == "netopt.role" for x in c["labels"])}
    assert nginx == {"docker.io/library/nginx:1.27.3-bookworm"} and tagged.pop("docker.io/library/nginx:1.27.3-bookworm") == GATEWAY_IMAGE
    assert set(tagged.values()) == {BACKEND_IMAGE} and len(tagged) == len({c["image"] for c in containers}) - 1
    configs = {r.name: r.inputs["stdin"].splitlines() for r in records if r.type == "command:local:Command" and "stdin" in r.inputs}
    assert [name for name, lines in configs.items() if f"load_module {STREAM_MODULE};" in lines] == ["boutique-redis-cart-proxy-config"]
