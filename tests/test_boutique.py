"""The shipped example, stacks/Pulumi.boutique.yaml: Google's Online Boutique (an application we did not design
for netopt) as a service graph. It plans on Kubernetes and on Docker with no mandatory violation of the prod
policies, its NetworkPolicies allow exactly its graph (network-config-analyzer), and its capacity table carries
the load propagated along the calls, checked here against a hand calculation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.plan.capacity import compute_capacity
from offline.analyzer import analyze_config, policy_config_path
from offline.manifests import manifests
from offline.program import run_program
from offline.stack_config import cli_config, stack_file
from tests.conftest import plan_of, stack_spec
from tests.kubernetes.nca import connectivity, in_namespace
from tests.kubernetes.test_network_policies import declared

STACK = "boutique"


def test_the_example_has_the_shape_of_a_real_application() -> None:
    spec = stack_spec(STACK)
    routed = {b.workload for r in spec.routes for b in r.backends}
    edges = [(w.name, c.workload) for w in spec.workloads for c in w.calls]
    assert len(spec.workloads) >= 8 and len(edges) >= 10
    assert any(w.protocol == "grpc" for w in spec.workloads)
    assert any(w.protocol == "tcp" and w.persistent() and w.singleton for w in spec.workloads)
    assert any(len(r.backends) > 1 for r in spec.routes), "a canary split"
    assert {w.name for w in spec.workloads} - routed, "internal-only workloads"


@pytest.mark.parametrize("target", ["kubernetes", "docker"])
def test_it_plans_on_both_targets_with_no_mandatory_violation_in_prod(target: str) -> None:
    config = {**cli_config(stack_file(STACK)), "netopt:target": target}
    # Kubernetes without a mesh: each gRPC proxy reaches its callee's pods through their ClusterIP Service, per
    # connection (policies/README.md, grpc-replicas-per-call: advisory until the proxies reach pods per call)
    allowed: set[tuple[str, str]] = {("grpc-replicas-per-call", "advisory")} if target == "kubernetes" else set()
    if target == "docker":  # one Docker host publishes the port once: one gateway, which prod's min-replicas refuses
        gateway = json.loads(config["netopt:gateway"])
        config["netopt:gateway"] = json.dumps({**gateway, "replicas": 1})
        allowed = {("min-replicas", "mandatory")}
    analysis = analyze_config(config, STACK, policy_config_path("prod"))
    assert analysis.violated() <= allowed, "\n".join(d.message for d in analysis.diagnostics)
    assert all("gateway" in d.message for d in analysis.diagnostics if d.policy == "min-replicas")
    assert analysis.config["stateful-singletons"]["enforcementLevel"] == "mandatory"
    assert "stateful-singletons" not in {n.policy for n in analysis.not_applicable}, "the singleton was checked, not skipped"


def test_the_network_policies_allow_exactly_its_graph(tmp_path: Path) -> None:
    documents: list[dict[str, Any]] = manifests(run_program(cli_config(stack_file(STACK)), STACK))
    found = in_namespace(connectivity(documents, tmp_path), "boutique")
    assert found == declared(stack_spec(STACK), "boutique")
    kinds = {(d["kind"], d["metadata"]["name"]): d for d in documents}
    assert ("StatefulSet", "redis-cart") in kinds and ("Deployment", "redis-cart") not in kinds
    # redis-cart is called (by cartservice): the name is its proxy's Service; the set is governed by its pods' Service
    assert kinds[("StatefulSet", "redis-cart")]["spec"]["serviceName"] == "redis-cart-backend"
    assert kinds[("Service", "redis-cart")]["spec"]["selector"]["app.kubernetes.io/name"] == "redis-cart-proxy"


def test_its_capacity_table_matches_a_hand_calculation() -> None:
    capacity = compute_capacity(plan_of(stack_spec(STACK)))
    arrivals = {w.workload: w.arrival_rps for w in capacity.workloads}
    pages = 300 + 1  # shop's peak (frontend 90 % + canary 10 %) plus the probe route's 1 req/s to frontend
    checkout = pages * 0.02
    cart = pages * 1 + checkout * 2
    hand = {
        "frontend": 300 * 0.9 + 1,
        "frontend-canary": 300 * 0.1,
        "checkoutservice": checkout,
        "currencyservice": pages * 2 + checkout * 3,
        "productcatalogservice": pages * 1.5 + checkout * 3 + pages * 0.3 * 1,
        "cartservice": cart,
        "redis-cart": cart * 1.5,
        "recommendationservice": pages * 0.3,
        "adservice": pages * 0.5,
        "shippingservice": pages * 0.1 + checkout * 2,
        "paymentservice": checkout,
        "emailservice": checkout,
    }
    assert arrivals == pytest.approx(hand)
    redis = [r for r in capacity.replicas if r.workload == "redis-cart"]
    assert len(redis) == 1 and redis[0].from_calls_rps == pytest.approx(cart * 1.5)
    first = capacity.saturates_first()
    assert first is not None and first.workload == max(capacity.workloads, key=lambda w: w.peak_utilization).workload


def test_the_plan_prints_every_workload(capsys: pytest.CaptureFixture[str]) -> None:
    from offline.plan import main

    assert main(["--stack", STACK, "--no-policy"]) == 0
    out = capsys.readouterr().out
    table = out.split("Capacity per workload", 1)[1]
    for workload in json.loads(cli_config(stack_file(STACK))["netopt:workloads"]):
        assert f"\n  {workload['name']} " in table
    assert "saturates first: " in table
