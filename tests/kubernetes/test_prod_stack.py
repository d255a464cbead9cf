"""The prod stack on the kubernetes target, under mocks: kinds and counts, hardening, isolation, rolling config."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

import pytest

from components.resources.app_network import analyse
from components.spec.schema import HttpHealth
from components.targets import proxy_config
from components.targets.kubernetes import CONFIG_CHECKSUM, config_map_name
from offline.manifests import manifests
from offline.program import RecordedResource, run_program
from offline.stack_config import cli_config, stack_file
from tests.conftest import stack_spec
from tests.kubernetes.conftest import PROD, by_kind

PROVIDER = "pulumi:providers:kubernetes"


def _config() -> dict[str, str]:
    return cli_config(stack_file(PROD))


def _with(config: dict[str, str], key: str, edit: Any) -> dict[str, str]:
    value = json.loads(config[key])
    edit(value)
    return {**config, key: json.dumps(value)}


def _called(spec: Any) -> list[str]:
    """Workloads some other workload calls, in declaration order: each gets a service proxy (`mesh: none`)."""
    called = {c.workload for w in spec.workloads for c in w.calls}
    return [w.name for w in spec.workloads if w.name in called]


def test_kinds_and_counts(prod_resources: list[RecordedResource], prod_manifests: list[dict[str, Any]]) -> None:
    spec = stack_spec(PROD)
    assert spec.target == "kubernetes" and spec.kubernetes.mesh == "none"
    workloads = len(spec.workloads)
    proxies = len(_called(spec))
    multi = sum(w.replicas > 1 for w in spec.workloads) + (spec.gateway.replicas > 1) + proxies  # a proxy has at least 2
    kinds = Counter(m["kind"] for m in prod_manifests)
    assert kinds == {
        "Namespace": 1,
        "Deployment": workloads + 1 + proxies,
        "Service": workloads + 1 + proxies,
        "ConfigMap": 1 + proxies,
        # default-deny, DNS, sources -> gateway, gateway's egress; ingress per routed or called workload and per proxy;
        # egress per caller and per proxy
        "NetworkPolicy": 4 + workloads + sum(bool(w.calls) for w in spec.workloads) + 2 * proxies,
        "PodDisruptionBudget": multi,
        "HorizontalPodAutoscaler": len(spec.kubernetes.autoscaling),
    }
    assert kinds == {"Namespace": 1, "Deployment": 8, "Service": 8, "ConfigMap": 3, "NetworkPolicy": 16, "PodDisruptionBudget": 8,
                     "HorizontalPodAutoscaler": 1}
    assert not [r for r in prod_resources if r.type.startswith("docker:")]


def test_every_resource_goes_through_the_stacks_one_provider(prod_resources: list[RecordedResource]) -> None:
    (provider,) = [r for r in prod_resources if r.type == PROVIDER]
    assert "renderYamlToDirectory" not in provider.inputs, "prod deploys to a cluster; render-only is opt-in"
    for resource in prod_resources:
        if resource.type.startswith("kubernetes:"):
            assert resource.provider == f"{provider.urn}::{provider.name}-id", resource.name


def test_render_only_mode_sets_the_providers_directory() -> None:
    config = {**_config(), "netopt:kubernetes": json.dumps({"render_yaml_to_directory": "rendered/prod"})}
    resources = run_program(config, PROD)
    (provider,) = [r for r in resources if r.type == PROVIDER]
    assert provider.inputs["renderYamlToDirectory"] == "rendered/prod"
    assert all(r.provider.startswith(provider.urn) for r in resources if r.type.startswith("kubernetes:"))
    assert manifests(resources), "the same manifests are rendered"


def test_the_namespace_enforces_the_restricted_pod_security_standard(prod_manifests: list[dict[str, Any]]) -> None:
    (namespace,) = by_kind(prod_manifests)["Namespace"].values()
    assert namespace["metadata"]["name"] == "shop-prod"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def _hardened(template: dict[str, Any]) -> None:
    pod = template["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["runAsNonRoot"] is True
        assert container["resources"]["requests"] == container["resources"]["limits"]
        assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/tmp"}, "a read-only root needs a writable /tmp"


def test_workload_deployments_and_services(prod_manifests: list[dict[str, Any]]) -> None:
    spec = stack_spec(PROD)
    found = by_kind(prod_manifests)
    called = _called(spec)
    for workload in spec.workloads:
        deployment = found["Deployment"][workload.name]
        # a called workload's own pods are `<w>-backend`: its name belongs to its service proxy, which its callers dial
        service = found["Service"][f"{workload.name}-backend" if workload.name in called else workload.name]
        template = deployment["spec"]["template"]
        labels = template["metadata"]["labels"]
        assert {k for k in labels if k.startswith("app.kubernetes.io/")} >= {
            "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component", "app.kubernetes.io/part-of",
            "app.kubernetes.io/managed-by", "app.kubernetes.io/version"}
        assert labels["app.kubernetes.io/version"] == workload.image.split("@", 1)[0].rsplit(":", 1)[1]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items()
        assert service["spec"]["selector"] == selector
        assert service["spec"]["type"] == "ClusterIP"
        assert service["spec"]["ports"] == [{"appProtocol": "http", "name": "http", "port": workload.port, "protocol": "TCP", "targetPort": "http"}]
        scaling = spec.kubernetes.autoscaling.get(workload.name)
        if scaling:
            assert "replicas" not in deployment["spec"], "an autoscaled Deployment leaves its replicas to the autoscaler"
            hpa = found["HorizontalPodAutoscaler"][workload.name]["spec"]
            assert (hpa["minReplicas"], hpa["maxReplicas"]) == (workload.replicas, scaling.max_replicas)
            assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload.name}
        else:
            assert deployment["spec"]["replicas"] == workload.replicas
        if workload.replicas > 1:
            assert found["PodDisruptionBudget"][workload.name]["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}
        _hardened(template)
        (container,) = template["spec"]["containers"]
        assert container["image"] == workload.image
        assert container["ports"] == [{"containerPort": workload.port, "name": "http", "protocol": "TCP"}]
        assert container["resources"]["limits"] == {"cpu": f"{round(workload.resources.cpu * 1000)}m", "memory": f"{workload.resources.memory_mb}Mi"}
        health = workload.health_check()
        assert isinstance(health, HttpHealth)
        for probe, threshold in (("readinessProbe", health.retries), ("livenessProbe", 2 * health.retries)):
            assert container[probe]["httpGet"] == {"path": health.path, "port": "http"}
            assert container[probe]["periodSeconds"] == health.interval_s
            assert container[probe]["timeoutSeconds"] == health.timeout_s
            assert container[probe]["failureThreshold"] == threshold
        assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": spec.kubernetes.drain_s}}


def test_single_replica_workloads_get_no_disruption_budget(k8s_minimal: dict[str, Any]) -> None:
    from components.spec.validation import parse_spec
    from offline.program import run_program as run

    spec = parse_spec(k8s_minimal)
    config = {f"netopt:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in k8s_minimal.items()}
    budgets = {m["metadata"]["name"] for m in manifests(run(config, "test")) if m["kind"] == "PodDisruptionBudget"}
    assert budgets == {w.name for w in spec.workloads if w.replicas > 1} == {"api"}


def test_gateway(prod_resources: list[RecordedResource], prod_manifests: list[dict[str, Any]]) -> None:
    spec = stack_spec(PROD)
    target, plan, _ = analyse(spec)
    config = proxy_config(target, plan.gateway)
    found = by_kind(prod_manifests)
    config_map = next(m for m in found["ConfigMap"].values() if m["metadata"]["labels"]["app.kubernetes.io/name"] == "gateway")
    assert config_map["data"] == {"nginx.conf": config}
    assert config_map["immutable"] is True
    assert config_map["metadata"]["name"] == config_map_name(config)
    deployment = found["Deployment"]["gateway"]
    assert deployment["spec"]["replicas"] == spec.gateway.replicas == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    template = deployment["spec"]["template"]
    assert template["metadata"]["annotations"][CONFIG_CHECKSUM] == hashlib.sha256(config.encode()).hexdigest()
    _hardened(template)
    assert template["spec"]["securityContext"]["runAsUser"] == 101
    (container,) = template["spec"]["containers"]
    assert container["image"] == spec.gateway.image
    assert container["command"] == ["nginx", "-e", "stderr", "-c", "/etc/netopt/nginx.conf", "-g", "daemon off;"]
    assert {"name": "config", "configMap": {"name": config_map["metadata"]["name"], "items": [{"key": "nginx.conf", "path": "nginx.conf"}]}} \
        in template["spec"]["volumes"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "status"}
    service = found["Service"]["gateway"]["spec"]
    assert service["type"] == spec.gateway.service_type == "LoadBalancer"
    assert service["externalTrafficPolicy"] == "Local", "the client address must reach nginx and the NetworkPolicy"
    assert service["ports"] == [{"name": "http", "port": spec.gateway.publish.port, "protocol": "TCP", "targetPort": "http"}]
    assert "loadBalancerSourceRanges" not in service, "allowed_sources is everything in prod"
    assert found["PodDisruptionBudget"]["gateway"]["spec"]["maxUnavailable"] == 1
    # nginx resolves the Service names when it starts: the gateway waits for every workload's resources.
    gateway = next(r for r in prod_resources if r.type == "kubernetes:apps/v1:Deployment" and r.name == "shop-prod-gateway")
    services = {r.urn for r in prod_resources if r.type == "kubernetes:core/v1:Service" and r.name.removeprefix("shop-prod-") in {
        w.name for w in spec.workloads}}
    assert len(services) == len(spec.workloads)
    assert services <= set(gateway.dependencies)


def test_service_proxies(prod_resources: list[RecordedResource], prod_manifests: list[dict[str, Any]]) -> None:
    """`mesh: none`: each called workload's proxy is an nginx Deployment of at least two replicas with a disruption
    budget and its own immutable config, behind a Service with the workload's name and port; it starts after the
    Services it balances over exist."""
    spec = stack_spec(PROD)
    target, plan, _ = analyse(spec)
    found = by_kind(prod_manifests)
    assert [p.workload for p in plan.services] == _called(spec) == ["api", "auth"]
    for proxy in plan.services:
        assert proxy.workload is not None
        workload = spec.workload(proxy.workload)
        name = f"{workload.name}-proxy"
        config = proxy_config(target, proxy)
        deployment = found["Deployment"][name]["spec"]
        assert deployment["replicas"] == max(2, spec.gateway.replicas) >= 2
        assert deployment["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
        selector = deployment["selector"]["matchLabels"]
        assert selector == {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": "shop-prod"}
        assert found["PodDisruptionBudget"][name]["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}
        template = deployment["template"]
        _hardened(template)
        assert template["metadata"]["labels"]["app.kubernetes.io/component"] == "service-proxy"
        assert template["metadata"]["annotations"][CONFIG_CHECKSUM] == hashlib.sha256(config.encode()).hexdigest()
        (container,) = template["spec"]["containers"]
        assert container["image"] == spec.gateway.image
        assert {"containerPort": workload.port, "name": "http", "protocol": "TCP"} in container["ports"]
        config_map = found["ConfigMap"][config_map_name(config, name)]
        assert config_map["data"] == {"nginx.conf": config} and config_map["immutable"] is True
        service = found["Service"][workload.name]["spec"]
        assert service["selector"] == selector, f"the name {workload.name} is its proxy's"
        assert service["ports"] == [{"appProtocol": "http", "name": "http", "port": workload.port, "protocol": "TCP", "targetPort": "http"}]
        assert found["Service"][f"{workload.name}-backend"]["spec"]["selector"] == {
            "app.kubernetes.io/name": workload.name, "app.kubernetes.io/instance": "shop-prod"}
        # the requests a stopping proxy still holds may take the callee's timeout
        assert template["spec"]["terminationGracePeriodSeconds"] >= spec.kubernetes.drain_s + proxy.timeouts.read_s
        resource = next(r for r in prod_resources if r.type == "kubernetes:apps/v1:Deployment" and r.name == f"shop-prod-{name}")
        backend = next(r for r in prod_resources if r.type == "kubernetes:core/v1:Service" and r.name == f"shop-prod-{workload.name}")
        assert backend.urn in resource.dependencies, "nginx resolves the pods' Service when it starts"


def test_the_service_type_comes_from_stack_config() -> None:
    def gateway_service(service_type: str) -> dict[str, Any]:
        config = _with(_config(), "netopt:gateway", lambda g: g.update(service_type=service_type))
        spec: dict[str, Any] = by_kind(manifests(run_program(config, PROD)))["Service"]["gateway"]["spec"]
        return spec

    assert gateway_service("ClusterIP")["type"] == "ClusterIP"
    assert "externalTrafficPolicy" not in gateway_service("ClusterIP")
    assert gateway_service("NodePort")["type"] == "NodePort"


# -- rolling the gateway on a config change --------------------------------------------------------------------


def _gateway(resources: list[RecordedResource]) -> tuple[str, str, dict[str, Any]]:
    found = by_kind(manifests(resources))
    template = found["Deployment"]["gateway"]["spec"]["template"]
    (config_map,) = [name for name, m in found["ConfigMap"].items() if m["metadata"]["labels"]["app.kubernetes.io/name"] == "gateway"]
    return template["metadata"]["annotations"][CONFIG_CHECKSUM], config_map, template


def test_the_gateway_rolls_when_its_config_changes_and_only_then() -> None:
    config = _config()
    before = run_program(config, PROD)
    checksum, config_map, template = _gateway(before)
    again = _gateway(run_program(config, PROD))
    assert again == (checksum, config_map, template), "same config: same checksum, same pod template, no roll"

    changed = run_program(_with(config, "netopt:rate_limits", lambda limits: limits[0].update(rps=limits[0]["rps"] + 1)), PROD)
    new_checksum, new_config_map, new_template = _gateway(changed)
    assert new_checksum != checksum
    assert new_config_map != config_map, "a new config is a new ConfigMap: old pods keep theirs while they drain"
    assert new_template != template
    old, new = by_kind(manifests(before)), by_kind(manifests(changed))
    for name in old["Deployment"]:
        if name != "gateway":  # the proxies' configs do not read the gateway's rate limits
            assert old["Deployment"][name] == new["Deployment"][name], f"{name} must not roll for a gateway change"

    unrelated = run_program(_with(config, "netopt:workloads", lambda ws: ws[0].update(image="ghcr.io/acme/shop-web:2.4.2")), PROD)
    assert _gateway(unrelated)[0] == checksum, "a change that leaves nginx.conf alone does not roll the gateway"


@pytest.mark.parametrize("field", ["cluster_domain", "namespace"])
def test_service_addresses_follow_the_namespace_and_cluster_domain(field: str) -> None:
    config = _config()
    if field == "namespace":
        config = {**config, "netopt:namespace": "shop-blue"}
        expected = "api-backend.shop-blue.svc.cluster.local:8000"
    else:
        config = _with(config, "netopt:kubernetes", lambda k: k.update(cluster_domain="k8s.example.internal"))
        expected = "api-backend.shop-prod.svc.k8s.example.internal:8000"
    config_maps = by_kind(manifests(run_program(config, PROD)))["ConfigMap"].values()
    assert len(config_maps) == 3
    for config_map in config_maps:  # the gateway's and the proxies' (web's calls reach api through api-proxy)
        if config_map["metadata"]["labels"]["app.kubernetes.io/name"] in {"gateway", "api-proxy"}:
            assert f"server {expected} " in config_map["data"]["nginx.conf"]


@pytest.mark.parametrize("kind", ["backend", "gateway"])
def test_updates_never_drop_a_request(kind: str, prod_manifests: list[dict[str, Any]]) -> None:
    """Per workload kind, the day-two promise in the manifests: surge-first rolls that wait for readiness, a
    drain before the pod stops, a grace period covering the drain and the longest request, disruption budgets."""
    spec = stack_spec(PROD)
    found = by_kind(prod_manifests)
    drain = spec.kubernetes.drain_s
    names = [w.name for w in spec.workloads] if kind == "backend" else ["gateway"]
    for name in names:
        deployment = found["Deployment"][name]["spec"]
        assert deployment["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}, name
        pod = deployment["template"]["spec"]
        (container,) = pod["containers"]
        assert container["readinessProbe"]["httpGet"]["port"] == ("http" if kind == "backend" else "status"), name
        replicas = spec.gateway.replicas if kind == "gateway" else next(w for w in spec.workloads if w.name == name).replicas
        if replicas > 1:
            assert found["PodDisruptionBudget"][name]["spec"]["maxUnavailable"] == 1, name
        if kind == "backend":
            assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": drain}}
            assert pod["terminationGracePeriodSeconds"] == drain + 30
        else:
            # nginx drops requests in flight on SIGTERM: after the drain, SIGQUIT, and wait for it to finish them
            command = container["lifecycle"]["preStop"]["exec"]["command"]
            assert command[:2] == ["/bin/sh", "-c"] and command[2].startswith(f"sleep {drain}; kill -QUIT 1;")
            assert pod["terminationGracePeriodSeconds"] >= drain + spec.gateway.timeouts.read_s + 5
    if kind == "gateway":
        assert CONFIG_CHECKSUM in found["Deployment"]["gateway"]["spec"]["template"]["metadata"]["annotations"]


def test_a_stopping_proxy_waits_for_its_callees_timeout_not_the_gateways() -> None:
    """auth's calls may take 40 s (its traffic_policy), longer than the gateway's 15 s read timeout: the proxy's pods
    get the drain plus those 40 s before they are killed."""
    def slow_auth(workloads: list[dict[str, Any]]) -> None:
        next(w for w in workloads if w["name"] == "auth")["traffic_policy"] = {"timeout_s": 40}

    found = by_kind(manifests(run_program(_with(_config(), "netopt:workloads", slow_auth), PROD)))
    spec = stack_spec(PROD)
    assert spec.gateway.timeouts.read_s < 40
    grace = found["Deployment"]["auth-proxy"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= spec.kubernetes.drain_s + 40
