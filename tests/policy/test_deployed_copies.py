"""The integrity gates read every deployed copy of a proxy's config, each on its own (policies/deployed_configs.py).

On Docker the config a proxy runs is what its delivering Command writes (its stdin); the container itself starts with a
bootstrap that serves nothing (the status server alone), which is no copy — unless it serves traffic, and then it is
one. On Kubernetes it is the ConfigMap key the proxy's Deployment mounts. Each copy is edited alone here (every
`limit_req` deleted: the gateway would run unlimited while the report still says limited), and the real pack must
flag exactly that copy.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import re
from collections.abc import Callable
from typing import Any

import pytest

from offline.analyzer import Analysis, analyze, policy_config_path
from offline.program import RecordedResource, run_program
from offline.stack_config import cli_config, stack_file
from policies.deployed_configs import COMMAND, Resource, deployed_proxies, nginx_config_path
from policies.model import APP_NETWORK, DOCKER_CONTAINER, K8S_CONFIG_MAP, K8S_DEPLOYMENT

DIGEST = "report-matches-deployed-config"
SCORES = "scores-match-deployed-config"
_LIMIT_REQ = re.compile(r"^[ \t]*limit_req[ \t][^;]*;\n", re.MULTILINE)


@functools.cache
def _program(stack: str) -> tuple[dict[str, str], list[RecordedResource]]:
    config = cli_config(stack_file(stack))
    return config, run_program(config, stack)


def _resources(stack: str) -> tuple[dict[str, str], list[RecordedResource]]:
    config, resources = _program(stack)
    return config, copy.deepcopy(resources)


def _one(resources: list[RecordedResource], kind: str, name: str | None = None) -> RecordedResource:
    (found,) = [r for r in resources if r.type == kind and (name is None or r.name == name)]
    return found


def _edit(resource: RecordedResource, change: Callable[[dict[str, Any]], None]) -> None:
    change(resource.inputs)
    resource.outputs = {}  # the stack gates then read the edited inputs, as they would the deployed state


def _unlimited(text: str) -> str:
    edited, count = _LIMIT_REQ.subn("", text)
    assert count >= 2, "the shipped configs limit several locations"
    return edited


def _analysis(stack: str, config: dict[str, str], resources: list[RecordedResource]) -> Analysis:
    return analyze(resources, stack=stack, config=config, policy_config=policy_config_path(config["netopt:environment"]))


def _messages(analysis: Analysis, policy: str) -> list[str]:
    return [d.message for d in analysis.diagnostics if d.policy == policy]


def _served_upload(resources: list[RecordedResource]) -> Callable[[dict[str, Any]], None]:
    """The gateway container starts serving a config (its Command's, unlimited) instead of its bootstrap."""
    delivered = _one(resources, COMMAND, "shop-staging-gateway-config").inputs["stdin"]

    def change(inputs: dict[str, Any]) -> None:
        inputs["uploads"][0]["content"] = _unlimited(delivered)

    return change


def _upload(inputs: dict[str, Any]) -> None:
    """Placeholder in COPIES: the staging case builds `_served_upload` from the recorded Command."""


def _stdin(inputs: dict[str, Any]) -> None:
    inputs["stdin"] = _unlimited(inputs["stdin"])


def _config_map(inputs: dict[str, Any]) -> None:
    inputs["data"]["nginx.conf"] = _unlimited(inputs["data"]["nginx.conf"])


COPIES = [
    ("staging", DOCKER_CONTAINER, "shop-staging-gateway", _upload, "container 'shop-staging-gateway' upload /etc/nginx/nginx.conf"),
    ("staging", COMMAND, "shop-staging-gateway-config", _stdin, "Command 'shop-staging-gateway-config' stdin"),
    ("prod", K8S_CONFIG_MAP, "shop-prod-gateway-nginx", _config_map,
     "ConfigMap 'shop-prod-gateway-nginx' key nginx.conf (mounted by shop-prod-gateway"),
]


@pytest.mark.parametrize(("stack", "kind", "name", "change", "where"), COPIES, ids=["docker-upload", "docker-command-stdin", "k8s-configmap"])
def test_each_deployed_copy_edited_alone_is_flagged(stack: str, kind: str, name: str | None, change: Callable[[dict[str, Any]], None],
                                                    where: str) -> None:
    config, resources = _resources(stack)
    _edit(_one(resources, kind, name), _served_upload(resources) if change is _upload else change)
    analysis = _analysis(stack, config, resources)
    assert analysis.violated() == {(DIGEST, "mandatory"), (SCORES, "mandatory")}, analysis.diagnostics
    (digest,) = _messages(analysis, DIGEST)
    assert where in digest, "the violation names the edited copy, and only it"
    (scores,) = _messages(analysis, SCORES)
    assert where in scores and "rps, reported" in scores and "deployed ∞ rps" in scores, scores


def test_a_report_that_follows_one_copy_is_caught_by_the_other() -> None:
    """A program bug that rendered the Command's stdin unlimited and reported that one, while the container starts
    serving the limited config: the upload disagrees."""
    config, resources = _resources("staging")
    command = _one(resources, COMMAND, "shop-staging-gateway-config")
    limited = command.inputs["stdin"]
    _edit(_one(resources, DOCKER_CONTAINER, "shop-staging-gateway"), lambda inputs: inputs["uploads"][0].update(content=limited))
    _edit(command, _stdin)
    network = _one(resources, APP_NETWORK)
    network.inputs["report"]["gateway"]["config_sha256"] = hashlib.sha256(command.inputs["stdin"].encode()).hexdigest()
    network.outputs = {**network.outputs, "report": network.inputs["report"]}
    analysis = _analysis("staging", config, resources)
    (digest,) = _messages(analysis, DIGEST)
    assert "container 'shop-staging-gateway' upload" in digest and "Command 'shop-staging-gateway-config'" not in digest
    assert (SCORES, "mandatory") in analysis.violated()


def _no_command(resources: list[RecordedResource]) -> None:
    resources.remove(_one(resources, COMMAND, "shop-staging-gateway-config"))


def _other_script(resources: list[RecordedResource]) -> None:
    _edit(_one(resources, COMMAND, "shop-staging-gateway-config"), lambda inputs: inputs.update(create="true"))


def _elsewhere(resources: list[RecordedResource]) -> None:
    _edit(_one(resources, COMMAND, "shop-staging-gateway-config"), lambda inputs: inputs["environment"].update(NETOPT_PROXY="shop-staging-web-0"))


def _upload_elsewhere(resources: list[RecordedResource]) -> None:
    _edit(_one(resources, DOCKER_CONTAINER, "shop-staging-gateway"), lambda inputs: inputs["uploads"][0].update(file="/etc/nginx/other.conf"))


@pytest.mark.parametrize(("change", "expected"), [
    (_no_command, "no Command delivers the config to container 'shop-staging-gateway'"),
    (_other_script, "Command 'shop-staging-gateway-config' does not run the delivery script"),
    (_elsewhere, "delivers a config to container 'shop-staging-web-0', which this stack does not run as a proxy"),
    (_upload_elsewhere, "runs nginx with /etc/nginx/nginx.conf, which no upload provides"),
], ids=["command-missing", "command-script-replaced", "command-delivers-elsewhere", "upload-of-another-file"])
def test_a_docker_copy_that_cannot_be_followed_is_flagged(change: Callable[[list[RecordedResource]], None], expected: str) -> None:
    config, resources = _resources("staging")
    change(resources)
    analysis = _analysis("staging", config, resources)
    assert any(expected in m for m in _messages(analysis, DIGEST)), analysis.diagnostics


def test_kubernetes_reads_the_configmap_the_deployment_mounts_and_only_that() -> None:
    config, resources = _resources("prod")
    mounted = _one(resources, K8S_CONFIG_MAP, "shop-prod-gateway-nginx")
    unmounted = copy.deepcopy(mounted)  # same labels, not mounted by any pod: not deployed config
    unmounted.name, unmounted.urn = "stray-gateway-nginx", mounted.urn.replace(mounted.name, "stray-gateway-nginx")
    unmounted.inputs["metadata"]["name"] = "gateway-nginx-stray"
    _config_map(unmounted.inputs)
    unmounted.outputs = {}
    resources.append(unmounted)
    assert _analysis("prod", config, resources).violated() == set(), "a ConfigMap no proxy mounts is not what nginx runs"
    deployment = _one(resources, K8S_DEPLOYMENT, "shop-prod-gateway")
    _edit(deployment, lambda inputs: inputs["spec"]["template"]["spec"]["volumes"][0]["configMap"].update(name="gateway-nginx-stray"))
    analysis = _analysis("prod", config, resources)
    (digest,) = _messages(analysis, DIGEST)
    assert "ConfigMap 'stray-gateway-nginx'" in digest, "once mounted, the edited ConfigMap is the deployed config"
    _edit(deployment, lambda inputs: inputs["spec"]["template"]["spec"]["volumes"][0]["configMap"].update(name="gateway-nginx-gone"))
    messages = _messages(_analysis("prod", config, resources), DIGEST)
    assert any("from ConfigMap 'gateway-nginx-gone', which this stack does not deploy" in m for m in messages), messages


# -- the reader itself: proxies by role and name, copies paired by the container they reach -------------------------

def _serving(upstream: str) -> str:
    """A config that passes requests on (so an upload of it is a copy, not a bootstrap)."""
    return f"http {{ server {{ location / {{ proxy_pass http://{upstream}; }} }} }}\n"


def _container(name: str, proxy: str | None, config: str, command: list[str] | None = None) -> Resource:
    labels = [{"label": "netopt.role", "value": "gateway"}] + ([{"label": "netopt.proxy", "value": proxy}] if proxy else [])
    return Resource(DOCKER_CONTAINER, name, {"name": name, "labels": labels, "command": command or ["nginx", "-c", "/etc/p.conf"],
                                             "uploads": [{"file": "/etc/p.conf", "content": _serving(config)}, {"file": "/etc/x", "content": "x"}]})


def _command(name: str, container: str, config: str) -> Resource:
    from policies.deployed_configs import DELIVERY_SCRIPT

    return Resource(COMMAND, name, {"create": DELIVERY_SCRIPT, "stdin": config, "environment": {"NETOPT_PROXY": container}})


def test_several_proxies_are_told_apart_by_role_name_and_the_container_each_command_reaches() -> None:
    proxies = deployed_proxies([
        _container("c-east", "east", "E1"), _container("c-west", "west", "W1"), _command("cmd-west", "c-west", "W2"),
        _command("cmd-east", "c-east", "E2"), Resource(DOCKER_CONTAINER, "backend", {"name": "backend", "labels": []}),
    ])
    assert [(p.role, p.name, p.resource, [c.text for c in p.copies], p.problems) for p in proxies] == [
        ("gateway", "east", "c-east", [_serving("E1"), "E2"], []),
        ("gateway", "west", "c-west", [_serving("W1"), "W2"], []),
    ]


def test_nginx_loads_the_file_its_command_line_names() -> None:
    assert nginx_config_path(["nginx", "-e", "stderr", "-c", "/etc/netopt/nginx.conf", "-g", "daemon off;"]) == "/etc/netopt/nginx.conf"
    assert nginx_config_path(["nginx", "-g", "daemon off;"]) == "/etc/nginx/nginx.conf"  # nginx's compiled-in default
    assert nginx_config_path(None) == "/etc/nginx/nginx.conf"


def _read(resources: list[RecordedResource]) -> list[Any]:
    return deployed_proxies(Resource(r.type, r.name, r.inputs, r.urn) for r in resources)


def _gateway(resources: list[RecordedResource]) -> Any:
    (proxy,) = [p for p in _read(resources) if p.role == "gateway"]
    return proxy


def test_the_reader_finds_each_copy_the_shipped_stacks_deploy() -> None:
    _, staging = _resources("staging")
    proxies = _read(staging)
    assert [(p.role, p.name, p.resource) for p in proxies] == [
        ("gateway", "gateway", "shop-staging-gateway"), ("service-proxy", "api-proxy", "shop-staging-api-proxy"),
        ("service-proxy", "auth-proxy", "shop-staging-auth-proxy")]
    proxy = proxies[0]
    delivered = _one(staging, COMMAND, "shop-staging-gateway-config").inputs["stdin"]
    assert (proxy.role, proxy.name, proxy.target, proxy.resource, proxy.problems) == ("gateway", "gateway", "docker", "shop-staging-gateway", [])
    # The container starts with its bootstrap, which serves nothing: the one copy is what its Command delivers.
    assert [(c.where, c.text) for c in proxy.copies] == [
        ("Command 'shop-staging-gateway-config' stdin (delivered to 'shop-staging-gateway')", delivered)]
    _, prod = _resources("prod")
    proxy = _gateway(prod)
    config_map = _one(prod, K8S_CONFIG_MAP, "shop-prod-gateway-nginx")
    assert (proxy.role, proxy.name, proxy.target, proxy.resource, proxy.problems) == ("gateway", "gateway", "kubernetes", "shop-prod-gateway", [])
    assert [(c.urn, c.where, c.text) for c in proxy.copies] == [
        (config_map.urn, "ConfigMap 'shop-prod-gateway-nginx' key nginx.conf (mounted by shop-prod-gateway container 'nginx' at "
         "/etc/netopt/nginx.conf)", config_map.inputs["data"]["nginx.conf"])]


def _pod(resources: list[RecordedResource]) -> dict[str, Any]:
    pod: dict[str, Any] = _one(resources, K8S_DEPLOYMENT, "shop-prod-gateway").inputs["spec"]["template"]["spec"]
    return pod


@pytest.mark.parametrize(("change", "problem"), [
    (lambda pod: pod["containers"][0].update(volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}]),
     "runs nginx with /etc/netopt/nginx.conf, which no volume mount provides"),
    (lambda pod: pod["volumes"][0].update(configMap=None, emptyDir={}),
     "loads /etc/netopt/nginx.conf from volume 'config', which is not a ConfigMap"),
    (lambda pod: pod["volumes"][0]["configMap"].update(items=[{"key": "other.conf", "path": "nginx.conf"}]),
     "loads /etc/netopt/nginx.conf from key 'other.conf' of ConfigMap 'gateway-nginx-"),
    (lambda pod: pod["containers"][0].update(command=["nginx", "-c", "/etc/netopt/sub/nginx.conf"]),
     "loads /etc/netopt/sub/nginx.conf from key 'sub/nginx.conf' of ConfigMap 'gateway-nginx-"),
    (lambda pod: pod["containers"][0]["volumeMounts"].append({"name": "tmp", "mountPath": "/etc/netopt/"}),  # the inner mount shadows
     "loads /etc/netopt/nginx.conf from volume 'tmp', which is not a ConfigMap"),
], ids=["no-mount", "not-a-configmap", "key-not-deployed", "path-not-in-items", "shadowed-by-another-mount"])
def test_the_reader_follows_the_mount_nginx_loads_its_config_from(change: Callable[[dict[str, Any]], None], problem: str) -> None:
    _, prod = _resources("prod")
    change(_pod(prod))
    proxy = _gateway(prod)
    assert proxy.copies == [] and len(proxy.problems) == 1 and problem in proxy.problems[0], proxy.problems


def test_the_reader_takes_the_configmap_of_the_workloads_namespace() -> None:
    _, prod = _resources("prod")
    config_map = _one(prod, K8S_CONFIG_MAP, "shop-prod-gateway-nginx")
    elsewhere = copy.deepcopy(config_map)
    elsewhere.inputs["metadata"]["namespace"] = "other"
    elsewhere.inputs["data"]["nginx.conf"] = "elsewhere"
    prod.insert(0, elsewhere)
    proxy = _gateway(prod)
    assert [c.text for c in proxy.copies] == [config_map.inputs["data"]["nginx.conf"]]


def test_a_command_without_a_target_container_is_not_a_copy_and_a_stray_one_is_a_problem() -> None:
    _, staging = _resources("staging")
    pause = next(r for r in staging if r.type == COMMAND and r.name.endswith("-settle"))
    assert "environment" not in pause.inputs or "NETOPT_PROXY" not in pause.inputs["environment"]
    _elsewhere(staging)
    proxies = [p for p in _read(staging) if p.role != "service-proxy"]
    assert [(p.role, p.name, len(p.copies)) for p in proxies] == [("gateway", "gateway", 0), ("unknown", "shop-staging-web-0", 0)]
    assert proxies[0].problems == ["no Command delivers the config to container 'shop-staging-gateway': a later config change would never reach it"]
