"""A call to a named port opens that port only, as network-config-analyzer computes from the rendered NetworkPolicies."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from offline.manifests import manifests
from offline.program import run_program
from tests.kubernetes.nca import connectivity, deployment, in_namespace, tcp


def test_a_call_on_a_named_port_opens_that_port_and_no_other(k8s_minimal: dict[str, Any], tmp_path: Path) -> None:
    raw = copy.deepcopy(k8s_minimal)
    raw["workloads"].append({"name": "mq", "image": "rabbitmq:3.13", "port": 5672, "protocol": "tcp", "response_time_ms": 2,
                             "max_concurrency": 100, "ports": [{"name": "management", "port": 15672, "protocol": "http"}]})
    raw["workloads"][0]["calls"] = [{"workload": "mq"}]                          # api: AMQP, the main port
    raw["workloads"][1]["calls"] = [{"workload": "mq", "port": "management"}]    # web: the management UI only
    config = {f"netopt:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
    found = in_namespace(connectivity(manifests(run_program(config, "dev")), tmp_path), "t")
    # Each call reaches mq's service proxy on the port it calls, and the proxy reaches mq on exactly those two ports.
    into_proxy = {(c.source, c.allowed) for c in found if c.destination == deployment("t", "mq-proxy")}
    assert into_proxy == {(deployment("t", "api"), tcp(5672)), (deployment("t", "web"), tcp(15672))}
    into_mq = {(c.source, c.allowed) for c in found if c.destination == deployment("t", "mq")}
    assert into_mq == {(deployment("t", "mq-proxy"), "{protocols:TCP,dst_ports:5672,15672}")}
