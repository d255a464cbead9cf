"""The nginx renderer: golden files for the shipped stacks, `nginx -t` of Debian's nginx, and properties."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from components.plan.addressing import docker_address_map, docker_gateway_address
from components.render.nginx import render_proxy
from components.render.runtime import NginxRuntime
from components.resources.app_network import analyse
from components.spec.validation import SpecError, parse_spec
from testbed.goldens import mismatch, rendered
from testbed.nginx_runner import nginx_t
from tests.conftest import STACKS, plan_of, stack_spec
from tests.kubernetes.nginx_hosts import nginx_t_resolving, service_hosts


@pytest.mark.parametrize("stack", STACKS)
def test_matches_golden_file(stack: str) -> None:
    """Rendering is deterministic; a diff here is a reviewed change (regenerate with `make goldens`, never from a test)."""
    difference = mismatch(stack)
    assert difference is None, difference
    assert rendered(stack) == rendered(stack)


@pytest.mark.parametrize("stack", STACKS)
def test_passes_nginx_t(stack: str) -> None:
    spec = stack_spec(stack)
    if spec.target == "kubernetes":  # Service names resolve as cluster DNS would, through a private hosts file
        nginx_t_resolving(rendered(stack), service_hosts(analyse(spec)[0].address_map()))
    else:  # the gateway listens on its edge address, which exists only in the Docker network: bind every address here
        edge = docker_gateway_address(spec)
        assert edge is not None and f"listen {edge}:" in rendered(stack)
        nginx_t(rendered(stack).replace(f"listen {edge}:", "listen "))


def test_canary_weights_are_exact_integers(minimal: dict[str, Any]) -> None:
    minimal["routes"][0]["backends"] = [{"workload": "api", "weight": 90}, {"workload": "web", "weight": 10}]
    spec = parse_spec(minimal)
    text = render_proxy(plan_of(spec).gateway, docker_address_map(spec))
    # api has 2 replicas sharing 90%, web 1 replica with 10%: 45 : 45 : 10 = 9 : 9 : 2.
    assert re.findall(r"server 10\.9\.0\.\d+:\d+ weight=(\d+)", text.split("upstream up_api_90_web_10")[1].split("}")[0]) == ["9", "9", "2"]


def _skewed(raw: dict[str, Any], peak: float) -> dict[str, Any]:
    """api: 4 replicas at 10, 10, 40, 80 ms, 8 in service each (μ = 800, 800, 200, 100 req/s), latency_optimal."""
    raw["gateway"]["algorithm"] = "latency_optimal"
    raw["workloads"][0].update(replicas=4, response_time_ms=[10, 10, 40, 80], max_concurrency=8)
    raw["traffic"] = {"api": peak}
    return raw


def test_latency_optimal_renders_left_out_replicas_as_backup(minimal: dict[str, Any]) -> None:
    """At 500 req/s the square-root rule uses only the two fast replicas; the slow ones stay as spill-over."""
    spec = parse_spec(_skewed(minimal, 500))
    plan = plan_of(spec)
    upstream = next(u for u in plan.gateway.upstreams if u.name == "up_api")
    assert [(s.replica, s.weight, s.backup) for s in upstream.servers] == [(0, 1, False), (1, 1, False), (2, 2, True), (3, 1, True)]
    text = render_proxy(plan.gateway, docker_address_map(spec))
    block = text.split("upstream up_api {")[1].split("}")[0]
    servers = re.findall(r"^\s*server (\S+) (.*);$", block, re.M)
    assert [rest for _, rest in servers] == [
        "weight=1 max_fails=3 fail_timeout=10s max_conns=8",
        "weight=1 max_fails=3 fail_timeout=10s max_conns=8",
        "weight=2 max_fails=3 fail_timeout=10s max_conns=8 backup",
        "weight=1 max_fails=3 fail_timeout=10s max_conns=8 backup",
    ]
    assert not re.search(r"^\s*(least_conn|ip_hash|hash|random)\b", block, re.M), "backup needs (weighted) round robin"
    nginx_t(text)


def test_latency_optimal_near_capacity_has_no_backup(minimal: dict[str, Any]) -> None:
    spec = parse_spec(_skewed(minimal, 1900))  # = Σ μ: shares ∝ μ, 8 : 8 : 2 : 1
    upstream = next(u for u in plan_of(spec).gateway.upstreams if u.name == "up_api")
    assert [(s.weight, s.backup) for s in upstream.servers] == [(8, False), (8, False), (2, False), (1, False)]


def test_two_routes_to_one_workload_share_its_upstream(minimal: dict[str, Any]) -> None:
    """The workload's peak is the sum over its routes (250 + 250), so both get the same split and the same upstream."""
    alone = plan_of(parse_spec(_skewed(copy.deepcopy(minimal), 500)))
    raw = _skewed(minimal, 250)
    raw["routes"].append({"name": "api2", "match": {"path": "/v2/"}, "backends": [{"workload": "api"}]})
    raw["traffic"]["api2"] = 250
    shared = plan_of(parse_spec(raw))
    assert shared.gateway.route_upstreams["api"] == shared.gateway.route_upstreams["api2"] == "up_api"
    assert next(u for u in shared.gateway.upstreams if u.name == "up_api") == next(u for u in alone.gateway.upstreams if u.name == "up_api")


def test_security_and_performance_directives_present(minimal: dict[str, Any]) -> None:
    spec = parse_spec(minimal)
    text = render_proxy(plan_of(spec).gateway, docker_address_map(spec))
    for directive in ("server_tokens off;", "proxy_http_version 1.1;", 'proxy_set_header Connection "";', "keepalive 64;",
                      "limit_req_status 429;", "add_header Retry-After", "stub_status;", "deny all;", "client_max_body_size 1m;",
                      "proxy_next_upstream error timeout http_502 http_503 http_504;", "max_fails=3", "buffer=64k"):
        assert directive in text, directive
    assert "non_idempotent" not in text


def test_route_opt_in_allows_non_idempotent_retries(minimal: dict[str, Any]) -> None:
    minimal["routes"][0]["retry_non_idempotent"] = True
    spec = parse_spec(minimal)
    text = render_proxy(plan_of(spec).gateway, docker_address_map(spec))
    api_location = text.split("location ^~ /api/ {")[1].split("}")[0]
    assert "non_idempotent" in api_location


def test_runtime_changes_process_settings_only(minimal: dict[str, Any]) -> None:
    spec = parse_spec(minimal)
    plan = plan_of(spec)
    container = render_proxy(plan.gateway, docker_address_map(spec))
    host = render_proxy(plan.gateway, docker_address_map(spec), NginxRuntime(listen_address="127.0.0.1", listen_port=18080, pid_path="/tmp/x.pid"))
    assert "listen 127.0.0.1:18080 default_server" in host and "listen 8080 default_server" in container
    def strip(text: str) -> list[str]:
        return [line for line in text.splitlines() if not re.match(r"\s*(listen|pid) ", line)]

    assert strip(container) == strip(host)


# ---- property: any valid spec renders a config that Debian's nginx accepts -------------------------------

_segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=8)
_methods = st.none() | st.lists(st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]), min_size=1, max_size=3, unique=True)
_header_values = st.sampled_from(["1", "beta", "application/json", "a|b", "x:1"])
_headers = st.dictionaries(st.sampled_from(["X-Canary", "X-Tenant", "Accept"]), _header_values, max_size=2)


@st.composite
def _match(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["exact", "prefix", "regex"]))
    segments = draw(st.lists(_segment, min_size=0, max_size=3))
    path = "/" + "/".join(segments)
    if kind == "prefix" and draw(st.booleans()):
        path = path.rstrip("/") + "/"
    if kind == "regex":
        suffix = draw(st.sampled_from(["", "[0-9]+", "(/.*)?$", "\\.json$", "{1,3}"]))
        path = draw(st.sampled_from(["^", ""])) + re.escape(path).replace("\\-", "-") + suffix
    return {
        # punctuation variants and `default` used to share one dispatch variable
        "host": draw(st.none() | st.sampled_from(["a.example.com", "b.example.com", "*.example.org", "a-b.com", "a.b.com", "default"])),
        "path": path,
        "path_type": kind,
        "headers": draw(_headers),
        "methods": draw(_methods),
    }


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    workloads: list[dict[str, Any]] = [
        {"name": f"w{i}", "image": f"img{i}:1", "port": draw(st.integers(1, 65535)), "replicas": draw(st.integers(1, 3)),
         "response_time_ms": draw(st.floats(0.5, 500)), "max_concurrency": draw(st.integers(1, 500))}
        for i in range(draw(st.integers(1, 4)))
    ]
    for workload in workloads:
        if draw(st.booleans()):  # one response time per replica (a slow replica: latency_optimal may make it a backup)
            workload["response_time_ms"] = draw(st.lists(st.floats(0.5, 500), min_size=workload["replicas"], max_size=workload["replicas"]))
    limits = [{"name": ("per-ip", "per_ip")[i], "rps": draw(st.sampled_from([0.5, 1, 7, 100, 5000])), "burst": draw(st.integers(0, 50)),
               "nodelay": draw(st.booleans()), "key": draw(st.sampled_from(["client_ip", "global", "header:X-Api-Key"]))} for i in range(2)]
    conns = [{"name": "cl0", "connections": draw(st.integers(1, 100)), "key": draw(st.sampled_from(["client_ip", "header:X-Api-Key"]))}]
    routes = []
    for i in range(draw(st.integers(1, 6))):
        chosen = draw(st.lists(st.sampled_from([w["name"] for w in workloads]), min_size=1, max_size=2, unique=True))
        routes.append({
            "name": f"r{i}",
            "match": draw(_match()),
            "backends": [{"workload": w, "weight": draw(st.integers(1, 100))} for w in chosen],
            "rate_limit": draw(st.none() | st.sampled_from(["per-ip", "per_ip"])),
            "concurrency_limit": draw(st.none() | st.just("cl0")),
            "retry_non_idempotent": False,
        })
    algorithm = draw(st.sampled_from(["round_robin", "weighted", "least_conn", "ip_hash", "consistent_hash", "latency_weighted", "latency_optimal"]))
    gateway: dict[str, Any] = {"image": "nginx:1", "algorithm": algorithm, "retries": {"tries": draw(st.integers(1, 3))}}
    if algorithm == "consistent_hash":
        gateway["hash_key"] = draw(st.sampled_from(["client_ip", "uri", "header:X-User", "cookie:sid"]))
    traffic = {route["name"]: draw(st.floats(1, 100_000)) for route in routes if draw(st.booleans()) or algorithm == "latency_optimal"}
    return {"environment": "prop", "network": {"name": "p", "subnet": "10.50.0.0/24"}, "gateway": gateway,
            "workloads": workloads, "routes": routes, "rate_limits": limits, "concurrency_limits": conns, "traffic": traffic}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs())
def test_any_valid_spec_renders_a_config_nginx_accepts(raw: dict[str, Any]) -> None:
    try:
        spec = parse_spec(raw)
    except SpecError:
        assume(False)
        return
    nginx_t(render_proxy(plan_of(spec).gateway, docker_address_map(spec)))
