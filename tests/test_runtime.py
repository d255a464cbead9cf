"""How workloads run, on both targets (issue 21): users, capabilities, ports below 1024, probe timing, requests, restart
policies, named ports, port-less consumers and singletons without storage. Expected values are written out by hand
from Docker's and Kubernetes' documented semantics, or read from the kernel's own header."""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any

import pytest

from components.plan.docker_links import links
from components.spec.runtime import CAPABILITIES
from components.spec.validation import SpecError, parse_spec
from offline.manifests import manifests, validate_manifests
from offline.program import run_program
from testbed.tools import find_tool
from tests.kubernetes.conftest import by_kind

CONTAINER = "docker:index/container:Container"


def _cli(raw: dict[str, Any]) -> dict[str, str]:
    return {f"netopt:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}


def _kubernetes(raw: dict[str, Any]) -> dict[str, Any]:
    return {**copy.deepcopy(raw), "target": "kubernetes", "network": {"name": "t"}}


def _containers(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Docker container inputs by container name."""
    return {r.inputs["name"]: r.inputs for r in run_program(_cli(raw), "dev") if r.type == CONTAINER}


def _documents(raw: dict[str, Any]) -> list[dict[str, Any]]:
    return manifests(run_program(_cli(_kubernetes(raw)), "dev"))


def _pod(documents: list[dict[str, Any]], name: str, kind: str = "Deployment") -> dict[str, Any]:
    spec: dict[str, Any] = by_kind(documents)[kind][name]["spec"]["template"]["spec"]
    return spec


def _problems(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    return {issue.path: issue.message for issue in caught.value.issues}


# -- users --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("written", "uid", "gid"), [("10001", 10001, 10001), (10001, 10001, 10001), ("999:999", 999, 999),
                                                      ("100:101", 100, 101)])
def test_a_uid_alone_or_uid_gid_runs_as_that_user_on_both_targets(minimal: dict[str, Any], written: object, uid: int, gid: int) -> None:
    """A uid alone gets the gid equal to it: Docker would give a uid the image does not know the group 0 (root's)."""
    minimal["workloads"][1]["run_as_user"] = written
    assert _containers(minimal)["t-web-0"]["user"] == f"{uid}:{gid}"
    security = _pod(_documents(minimal), "web")["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"], security["fsGroup"], security["runAsNonRoot"]) == (uid, gid, gid, True)


@pytest.mark.parametrize("root", ["0", 0, "0:0", "0:1000"])
def test_root_is_refused_with_the_reason(minimal: dict[str, Any], root: object) -> None:
    minimal["workloads"][0]["run_as_user"] = root
    minimal["gateway"]["run_as_user"] = root
    problems = _problems(minimal)
    for path in ("netopt:workloads[0].run_as_user", "netopt:gateway.run_as_user"):
        assert "is root (uid 0)" in problems[path] and "restricted" in problems[path] and "999" in problems[path], problems


@pytest.mark.parametrize(("written", "words"), [("mongodb", "not a numeric user"), ("10001:", "not a numeric user"),
                                                ("2147483648", "ids go up to 2147483647")])
def test_a_user_that_cannot_be_stated_as_numbers_is_refused(minimal: dict[str, Any], written: str, words: str) -> None:
    minimal["workloads"][0]["run_as_user"] = written
    assert words in _problems(minimal)["netopt:workloads[0].run_as_user"]


# -- capabilities -------------------------------------------------------------------------------------------------

def test_the_capability_names_are_the_kernels() -> None:
    """Bit i of a capability mask is CAPABILITIES[i], as libcap (`capsh --decode`, checked by `make tools`) names it."""
    capsh = find_tool("capsh")
    for bit, name in enumerate(CAPABILITIES):
        decoded = subprocess.run([capsh, f"--decode={1 << bit:x}"], capture_output=True, text=True, check=True).stdout.strip()
        assert decoded.partition("=")[2] == f"cap_{name.lower()}", (bit, decoded)


def test_declared_capabilities_are_added_after_dropping_all(minimal: dict[str, Any]) -> None:
    minimal["workloads"][1]["capabilities"] = {"add": ["CHOWN", "SETUID"]}
    docker = _containers(minimal)
    assert docker["t-web-0"]["capabilities"] == {"drops": ["ALL"], "adds": ["CHOWN", "SETUID"]}
    assert docker["t-api-0"]["capabilities"] == {"drops": ["ALL"]}
    minimal["workloads"][1]["capabilities"] = {"add": ["NET_BIND_SERVICE"]}  # the only one the restricted standard admits
    documents = _documents(minimal)
    validate_manifests(documents)
    (container,) = _pod(documents, "web")["containers"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}


@pytest.mark.parametrize(("add", "words"), [(["CAP_CHOWN"], "write 'CAP_CHOWN' as 'CHOWN'"), (["chown"], "as 'CHOWN'"),
                                            (["ALL"], "privileged mode in all but name"), (["SYS_ADMN"], "not a Linux capability"),
                                            (["CHOWN", "CHOWN"], "lists a capability twice (CHOWN)")])
def test_capability_names_are_checked(minimal: dict[str, Any], add: list[str], words: str) -> None:
    minimal["workloads"][0]["capabilities"] = {"add": add}
    assert words in _problems(minimal)["netopt:workloads[0].capabilities.add"]


def test_kubernetes_refuses_what_its_restricted_namespace_would(minimal: dict[str, Any]) -> None:
    raw = _kubernetes(minimal)
    raw["workloads"][0]["capabilities"] = {"add": ["NET_BIND_SERVICE", "SYS_PTRACE", "CHOWN"]}
    message = _problems(raw)["netopt:workloads[0].capabilities.add"]
    assert message.startswith("SYS_PTRACE, CHOWN cannot be added on the kubernetes target") and "\"restricted\" Pod Security" in message


# -- ports below 1024 ---------------------------------------------------------------------------------------------

def test_a_port_below_1024_lowers_the_unprivileged_port_start_to_it_on_both_targets(minimal: dict[str, Any]) -> None:
    minimal["workloads"][1]["port"] = 80
    minimal["gateway"].update(listen_port=443, status_port=8081)
    docker = _containers(minimal)
    assert docker["t-web-0"]["sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "80"}
    assert "sysctls" not in docker["t-api-0"], "ports from 1024 up need nothing"
    assert docker["t-gateway"]["sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "443"}
    documents = _documents(minimal)
    validate_manifests(documents)
    assert _pod(documents, "web")["securityContext"]["sysctls"] == [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"}]
    assert "sysctls" not in _pod(documents, "api")["securityContext"]
    gateway = _pod(documents, "gateway")
    assert gateway["securityContext"]["sysctls"] == [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "443"}]
    assert gateway["securityContext"]["runAsUser"] == 101 and "add" not in gateway["containers"][0]["securityContext"]["capabilities"]


def test_the_lowest_port_the_process_binds_counts_its_named_ports_and_probe(minimal: dict[str, Any]) -> None:
    minimal["workloads"][0]["ports"] = [{"name": "metrics", "port": 9100}, {"name": "admin", "port": 900}]
    minimal["workloads"][1]["health"] = {"kind": "tcp", "port": 700}
    docker = _containers(minimal)
    assert docker["t-api-1"]["sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "900"}
    assert docker["t-web-0"]["sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "700"}


# -- probe timing -------------------------------------------------------------------------------------------------

def test_probe_timing_and_a_startup_probe_on_kubernetes(minimal: dict[str, Any]) -> None:
    """period 10 s, 2 failures: readiness after 2, liveness after 4; a 300 s start is 30 startup periods."""
    minimal["workloads"][1]["health"] = {"path": "/health", "initial_delay_s": 5, "period_s": 10, "timeout_s": 3, "failure_threshold": 2,
                                         "start_period_s": 300}
    documents = _documents(minimal)
    validate_manifests(documents)
    (container,) = _pod(documents, "web")["containers"]
    common = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 3, "successThreshold": 1,
              "initialDelaySeconds": 5}
    assert container["readinessProbe"] == {**common, "failureThreshold": 2}
    assert container["livenessProbe"] == {**common, "failureThreshold": 4}
    assert container["startupProbe"] == {**common, "failureThreshold": 30}
    (api,) = _pod(documents, "api")["containers"]
    assert "startupProbe" not in api and "initialDelaySeconds" not in api["readinessProbe"]
    assert api["livenessProbe"]["initialDelaySeconds"] == 5, "without initial_delay_s liveness waits one period, as before"


def test_probe_timing_on_docker(minimal: dict[str, Any]) -> None:
    """Docker has no initial delay or startup probe: both become start_period, during which failures do not count."""
    minimal["workloads"][1]["health"] = {"path": "/health", "initial_delay_s": 5, "interval_s": 10, "retries": 2, "start_period_s": 300}
    check = _containers(minimal)["t-web-0"]
    assert check["healthcheck"] == {"tests": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:3000/health"], "interval": "10000ms",
                                    "timeout": "2000ms", "retries": 2, "startPeriod": "305000ms"}
    assert check["waitTimeout"] == 305 + 10 * 3 + 2 * 2 + 30, "pulumi up waits out the start period too"


@pytest.mark.parametrize(("given", "key"), [({"interval_s": 3, "period_s": 3}, "interval_s and period_s"),
                                            ({"retries": 2, "failure_threshold": 2}, "retries and failure_threshold")])
def test_one_name_per_probe_setting(minimal: dict[str, Any], given: dict[str, int], key: str) -> None:
    minimal["workloads"][0]["health"] = {"kind": "http", **given}
    assert f"{key} are the same setting" in _problems(minimal)["netopt:workloads[0].health"]


# -- requests -----------------------------------------------------------------------------------------------------

def test_requests_below_the_limits_on_both_targets(minimal: dict[str, Any]) -> None:
    minimal["workloads"][1]["resources"] = {"cpu": 1, "memory_mb": 512, "requests": {"cpu": 0.25, "memory_mb": 256}}
    docker = _containers(minimal)
    assert (docker["t-web-0"]["cpus"], docker["t-web-0"]["memory"]) == ("1", 512)
    assert (docker["t-web-0"]["cpuShares"], docker["t-web-0"]["memoryReservation"]) == (256, 256)  # 1024 shares per CPU
    assert "cpuShares" not in docker["t-api-0"] and "memoryReservation" not in docker["t-api-0"]
    documents = _documents(minimal)
    (web,) = _pod(documents, "web")["containers"]
    assert web["resources"] == {"limits": {"cpu": "1000m", "memory": "512Mi"}, "requests": {"cpu": "250m", "memory": "256Mi"}}
    (api,) = _pod(documents, "api")["containers"]
    assert api["resources"] == {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "500m", "memory": "128Mi"}}


def test_a_request_above_its_limit_is_refused(minimal: dict[str, Any]) -> None:
    minimal["workloads"][0]["resources"] = {"cpu": 0.5, "requests": {"cpu": 1}}
    assert "requests.cpu (1) is above the limit cpu (0.5)" in _problems(minimal)["netopt:workloads[0].resources"]


# -- restart ------------------------------------------------------------------------------------------------------

def test_the_docker_restart_policy_per_workload(minimal: dict[str, Any]) -> None:
    minimal["workloads"][1]["restart"] = "on-failure"
    docker = _containers(minimal)
    assert (docker["t-web-0"]["restart"], docker["t-api-0"]["restart"]) == ("on-failure", "unless-stopped")
    raw = _kubernetes(minimal)
    assert "restartPolicy Always" in _problems(raw)["netopt:workloads[1].restart"]
    raw["workloads"][1]["restart"] = "always"
    parse_spec(raw)


# -- named ports --------------------------------------------------------------------------------------------------

def _broker(minimal: dict[str, Any], *calls: dict[str, Any]) -> dict[str, Any]:
    """MINIMAL plus `mq` (AMQP on 5672, management on 15672), called by web with `calls`."""
    raw = copy.deepcopy(minimal)
    raw["workloads"].append({"name": "mq", "image": "rabbitmq:3.13", "port": 5672, "protocol": "tcp", "response_time_ms": 2,
                             "max_concurrency": 100, "ports": [{"name": "management", "port": 15672, "protocol": "http"}]})
    raw["workloads"][1]["calls"] = list(calls)
    return raw


def test_named_ports_on_kubernetes(minimal: dict[str, Any]) -> None:
    documents = _documents(_broker(minimal, {"workload": "mq", "port": "management"}))
    validate_manifests(documents)
    found = by_kind(documents)
    # mq's pods: every named port, behind `mq-backend`; `mq` is its service proxy, which web calls on the management port.
    assert found["Service"]["mq-backend"]["spec"]["ports"] == [
        {"name": "tcp", "port": 5672, "targetPort": "tcp", "protocol": "TCP"},
        {"name": "management", "port": 15672, "targetPort": "management", "protocol": "TCP", "appProtocol": "http"}]
    (container,) = _pod(documents, "mq")["containers"]
    assert container["ports"] == [{"name": "tcp", "containerPort": 5672, "protocol": "TCP"},
                                  {"name": "management", "containerPort": 15672, "protocol": "TCP"}]
    assert found["Service"]["mq"]["spec"]["ports"] == [{"name": "management", "port": 15672, "targetPort": "management", "protocol": "TCP"}]
    ingress = found["NetworkPolicy"]["allow-to-mq"]["spec"]["ingress"]
    assert [rule["ports"] for rule in ingress] == [[{"port": 15672, "protocol": "TCP"}]], "the proxy reaches the management port only"
    into_proxy = found["NetworkPolicy"]["allow-to-mq-proxy"]["spec"]["ingress"]
    assert [rule["ports"] for rule in into_proxy] == [[{"port": 15672, "protocol": "TCP"}]], "web may reach the management port only"


def test_two_ports_of_one_callee_share_one_docker_link(minimal: dict[str, Any]) -> None:
    """A bridge cannot tell ports apart: web calling both of mq's ports is one link, web -> mq."""
    spec = parse_spec(_broker(minimal, {"workload": "mq"}, {"workload": "mq", "port": "management", "ratio": 0.1}))
    called = [link.name for link in links(spec) if link.kind == "call" and link.alias == "mq"]
    assert called == ["t.call.web.mq"]
    containers = _containers(_broker(minimal, {"workload": "mq"}, {"workload": "mq", "port": "management", "ratio": 0.1}))
    assert [n["aliases"] for n in containers["t-mq-0"]["networksAdvanced"]] == [["mq"]]


def test_named_port_mistakes(minimal: dict[str, Any]) -> None:
    problems = _problems(_broker(minimal, {"workload": "mq", "port": "amqp"}, {"workload": "api", "port": "tcp"}))
    assert problems["netopt:workloads[1].calls[0].port"] == ("'mq' has no port named 'amqp' (its ports: tcp, management); use one of them "
                                                            "or declare it under its ports")
    assert "'api' has no port named 'tcp' (its ports: http)" in problems["netopt:workloads[1].calls[1].port"]
    twice = _problems(_broker(minimal, {"workload": "mq", "port": "management"}, {"workload": "mq", "port": "management"}))
    assert "called twice by 'web' on port 'management'" in twice["netopt:workloads[1].calls[1].workload"]
    clash = _broker(minimal)
    clash["workloads"][2]["ports"] += [{"name": "tcp", "port": 5673}, {"name": "again", "port": 15672}]
    problems = _problems(clash)
    assert "already names the main port" in problems["netopt:workloads[2].ports[1].name"]
    assert "15672 is already ports[0]" in problems["netopt:workloads[2].ports[2].port"]
    clash["workloads"][2]["ports"] = [{"name": "a--b", "port": 1}, {"name": "1234", "port": 2}, {"name": "sixteen-letters1", "port": 3}]
    problems = _problems(clash)
    for j, name in enumerate(("a--b", "1234", "sixteen-letters1")):
        assert problems[f"netopt:workloads[2].ports[{j}].name"].startswith(f"'{name}' is not a port name Kubernetes accepts: 1 to 15")


# -- port-less workloads (a queue consumer) ------------------------------------------------------------------------

def _consumer(minimal: dict[str, Any]) -> dict[str, Any]:
    raw = _broker(minimal, {"workload": "mq"})
    raw["workloads"].append({"name": "worker", "image": "worker:1", "response_time_ms": 50, "max_concurrency": 2, "replicas": 2,
                             "load_rps": 8, "health": {"kind": "exec", "command": ["/bin/alive"]}, "calls": [{"workload": "mq"}]})
    return raw


def test_a_workload_without_a_port_listens_nowhere(minimal: dict[str, Any]) -> None:
    raw = _consumer(minimal)
    env = _containers(raw)["t-worker-0"]["envs"]
    assert not any(e.startswith("PORT=") for e in env) and "NETOPT_REPLICA=worker-0" in env
    documents = _documents(raw)
    validate_manifests(documents)
    assert "worker" not in by_kind(documents)["Service"], "nothing to reach: no Service"
    (container,) = _pod(documents, "worker")["containers"]
    assert container["ports"] == [] and container["readinessProbe"]["exec"] == {"command": ["/bin/alive"]}
    raw["workloads"][3]["health"] = {"kind": "none"}
    assert "wait" not in _containers(raw)["t-worker-0"], "the provider's wait needs a healthcheck: without one it waits for running"


def test_a_workload_without_a_port_is_neither_routed_nor_called_by_default(minimal: dict[str, Any]) -> None:
    raw = _consumer(minimal)
    raw["workloads"][3]["health"] = {"kind": "http"}
    raw["workloads"][0]["calls"] = [{"workload": "worker"}]
    raw["routes"].append({"name": "w", "match": {"path": "/w/"}, "backends": [{"workload": "worker"}]})
    problems = _problems(raw)
    assert "a http probe needs its own; give health.port" in problems["netopt:workloads[3].health.port"]
    assert "'worker' has no main port; name the port this call reaches (port: one of none)" in problems["netopt:workloads[0].calls[0]"]
    assert "has no port for the gateway to proxy to" in problems["netopt:routes[2].backends[0].workload"]
    del raw["workloads"][3]["health"]
    assert "declare health: {kind: exec" in _problems(raw)["netopt:workloads[3].health"]


def test_load_rps_feeds_the_capacity_model(minimal: dict[str, Any]) -> None:
    """worker takes 8 msg/s from its queue: 4 per replica (t = 50 ms, c = 2: utilization 4 / 40 = 0.1), and calls mq once per
    message: mq gets 8 from it on top of web's 0 (web's route has no declared peak)."""
    from components.plan.capacity import compute_capacity
    from tests.conftest import plan_of

    capacity = compute_capacity(plan_of(parse_spec(_consumer(minimal))))
    rows = {(r.workload, r.replica): r for r in capacity.replicas}
    for replica in (0, 1):
        row = rows[("worker", replica)]
        assert (row.offered_rps, row.from_load_rps, row.from_calls_rps) == (4.0, 4.0, 0.0)
        assert row.utilization == pytest.approx(0.1) and row.admitted_utilization == pytest.approx(0.1)
    workloads = {w.workload: w for w in capacity.workloads}
    assert (workloads["worker"].arrival_rps, workloads["worker"].from_load_rps, workloads["worker"].from_gateway_rps) == (8.0, 8.0, 0.0)
    assert (workloads["mq"].from_calls_rps, workloads["mq"].from_load_rps) == (8.0, 0.0)


# -- singletons ---------------------------------------------------------------------------------------------------

def test_a_singleton_without_persistent_storage_is_one_statefulset_pod(minimal: dict[str, Any]) -> None:
    raw = _broker(minimal, {"workload": "mq"})
    raw["workloads"][2].update(singleton=True, volumes=[{"name": "data", "path": "/var/lib/rabbitmq", "kind": "scratch"}])
    documents = _documents(raw)
    validate_manifests(documents)
    found = by_kind(documents)
    assert "mq" not in found["Deployment"]
    stateful = found["StatefulSet"]["mq"]["spec"]
    assert stateful["replicas"] == 1 and stateful.get("volumeClaimTemplates", []) == []
    assert {"name": "data", "emptyDir": {"sizeLimit": "1024Mi"}} in stateful["template"]["spec"]["volumes"]
    raw["workloads"][2]["replicas"] = 2
    assert "a singleton runs exactly one instance" in _problems(raw)["netopt:workloads[2].singleton"]


# -- the defaults, shown ------------------------------------------------------------------------------------------

def test_the_plan_text_shows_how_each_workload_runs_and_marks_the_defaults(minimal: dict[str, Any]) -> None:
    """MINIMAL declares no resources, user or probe: 0.5 CPU, 128 MiB, 65532:65532 and the http probe, each marked `*`."""
    from components.resources.app_network import analyse
    from offline.plan import workload_lines

    minimal["workloads"][1].update(resources={"cpu": 1, "requests": {"cpu": 0.25}}, run_as_user=10001, capabilities={"add": ["CHOWN"]})
    _, _, report = analyse(parse_spec(minimal))
    lines = {line.split()[0]: line for line in workload_lines(report["workloads"], docker=True)[3:]}
    assert lines["api"].split()[1:5] == ["65532:65532*", "0.5/0.5*", "128/128*", "http"]
    assert lines["web"].split()[1:4] == ["10001:10001", "1/0.25", "128/128*"]
    assert "caps +CHOWN" in lines["web"] and "restart unless-stopped" in lines["web"]
    assert report["workloads"]["api"]["defaults"] == ["resources.cpu", "resources.memory_mb", "run_as_user", "health"]
