"""The configs the kubernetes target deploys — the gateway's and each service proxy's — pass `nginx -t`, and need nothing
newer than nginx 1.22."""

from __future__ import annotations

import math
import re
import subprocess
from typing import Any

import pytest

from components.resources.app_network import analyse
from components.targets import proxy_config
from testbed.nginx_runner import NGINX, NginxConfigError, nginx_t
from tests.conftest import stack_spec
from tests.kubernetes.conftest import PROD, by_kind
from tests.kubernetes.nginx_hosts import nginx_t_resolving, service_hosts


def _version(text: str) -> tuple[int, ...]:
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    assert match, text
    return tuple(int(part) for part in match.groups())


def _deployed_configs(prod_manifests: list[dict[str, Any]]) -> dict[str, str]:
    """The nginx.conf of every ConfigMap, by the proxy it belongs to (its `app.kubernetes.io/name` label)."""
    return {m["metadata"]["labels"]["app.kubernetes.io/name"]: m["data"]["nginx.conf"] for m in by_kind(prod_manifests)["ConfigMap"].values()}


def _deployed_config(prod_manifests: list[dict[str, Any]]) -> str:
    return _deployed_configs(prod_manifests)["gateway"]


def _service_hosts() -> dict[str, str]:
    target, _, _ = analyse(stack_spec(PROD))
    hosts = service_hosts(target.address_map())
    assert len(hosts) == len(stack_spec(PROD).workloads), "one Service name per workload"
    return hosts


def test_the_deployed_config_passes_nginx_t(prod_manifests: list[dict[str, Any]]) -> None:
    """The exact ConfigMap text, with the Service names resolving as the cluster DNS would resolve them."""
    nginx_t_resolving(_deployed_config(prod_manifests), _service_hosts())


def test_every_service_proxy_config_passes_nginx_t(prod_manifests: list[dict[str, Any]]) -> None:
    """One per called workload of the prod stack (web calls api; api and api-canary call auth)."""
    configs = _deployed_configs(prod_manifests)
    assert set(configs) == {"gateway", "api-proxy", "auth-proxy"}
    for name in ("api-proxy", "auth-proxy"):
        nginx_t_resolving(configs[name], _service_hosts())


def test_the_harness_rejects_a_broken_config(prod_manifests: list[dict[str, Any]]) -> None:
    broken = _deployed_config(prod_manifests).replace("keepalive 32;", "keepalive thirty-two;", 1)
    with pytest.raises(NginxConfigError, match="keepalive"):
        nginx_t_resolving(broken, _service_hosts())


def test_nginx_refuses_to_start_while_a_service_does_not_exist(prod_manifests: list[dict[str, Any]]) -> None:
    """Why the gateway Deployment depends on the Services: an unresolvable upstream name stops nginx."""
    hosts = _service_hosts()
    missing = sorted(hosts)[0]
    with pytest.raises(NginxConfigError, match="host not found in upstream"):
        nginx_t_resolving(_deployed_config(prod_manifests), {h: a for h, a in hosts.items() if h != missing})
    with pytest.raises(NginxConfigError, match="host not found in upstream"):
        nginx_t(_deployed_config(prod_manifests))


def test_the_config_uses_nothing_newer_than_the_nginx_that_tested_it() -> None:
    """Debian's nginx tests it; the gateway image's nginx must be at least as new (upstream `resolve` is 1.27.3+)."""
    tested = _version(subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=True).stderr)
    image = stack_spec(PROD).gateway.image
    assert tested <= _version(image.split("@", 1)[0].rsplit(":", 1)[1]), f"nginx {tested} is newer than the image's {image}"
    assert tested >= (1, 22, 0)


def test_the_config_has_services_only_and_no_runtime_resolution(prod_manifests: list[dict[str, Any]]) -> None:
    text = _deployed_config(prod_manifests)
    servers = re.findall(r"^\s*server (\S+) weight=", text, re.M)
    assert servers and set(servers) <= {f"{h}:{p}" for h, p in _services_with_ports()}
    assert not re.search(r"\bresolver\b|\bresolve\b", text), "pod addresses never reach nginx: nothing to re-resolve"
    assert not re.search(r"server \d+\.\d+\.\d+\.\d+:", text), "no pod or Service IP is baked into the config"


def _services_with_ports() -> list[tuple[str, int]]:
    """The Services of the workloads' own pods: `<w>-backend` for a called workload (its name is its proxy's)."""
    spec = stack_spec(PROD)
    called = {c.workload for w in spec.workloads for c in w.calls}
    return [(f"{w.name}{'-backend' if w.name in called else ''}.shop-prod.svc.cluster.local", int(w.port or 0)) for w in spec.workloads]


def test_the_gateway_and_the_proxies_reach_a_called_workload_through_its_pods_service(prod_manifests: list[dict[str, Any]]) -> None:
    """The name `api` is api's service proxy: the gateway must not go through it (it would count the gateway's
    requests against the callers' limits), and the proxy must not loop back to itself."""
    configs = _deployed_configs(prod_manifests)
    for name, text in configs.items():
        servers = set(re.findall(r"^\s*server (\S+) weight=", text, re.M))
        assert "api.shop-prod.svc.cluster.local:8000" not in servers and "auth.shop-prod.svc.cluster.local:9000" not in servers, name
    assert set(re.findall(r"^\s*server (\S+) weight=", configs["api-proxy"], re.M)) == {"api-backend.shop-prod.svc.cluster.local:8000"}
    assert set(re.findall(r"^\s*server (\S+) weight=", configs["auth-proxy"], re.M)) == {"auth-backend.shop-prod.svc.cluster.local:9000"}


def test_worker_processes_follow_the_pods_cpu_limit_not_the_nodes() -> None:
    spec = stack_spec(PROD)
    target, plan, _ = analyse(spec)
    text = proxy_config(target, plan.gateway)
    assert f"worker_processes {max(1, math.ceil(spec.gateway.resources.cpu))};" in text
    assert "allow 127.0.0.1;" in text and "10.44." not in text, "stub_status stays local; no Docker subnet on this target"
