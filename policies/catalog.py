"""Every gate of the pack, in one list: the order the engine runs them and the README documents them."""

from __future__ import annotations

from pulumi_policy import Policy

from policies import calls, containers, drift, gateway, kubernetes, state, strategy, trust
from policies.framework import Gate

GATES: tuple[Gate, ...] = (
    trust.APP_NETWORK_REPORT,
    trust.REPORT_DIGEST,
    trust.SCORES_RECOMPUTED,
    *(gate for gate, _, _ in strategy.SCORES.values()),
    strategy.PEAK_UTILIZATION,
    strategy.ADMITS_PEAK,
    strategy.PROTECT,
    calls.CALL_LIMITS_WITHIN_CAPACITY,
    drift.DRIFT,
    gateway.MIN_REPLICAS,
    gateway.KEEPALIVE,
    gateway.RETRIES,
    calls.CALL_TIMEOUTS_AND_LIMITS,
    calls.GRPC_PER_REQUEST,
    calls.GRPC_REPLICAS_PER_CALL,
    containers.ONLY_GATEWAY_EXPOSED,
    containers.BACKENDS_INTERNAL,
    containers.IMAGES_PINNED,
    containers.HEALTH_CHECKS,
    containers.HEALTH_PROBES_VALID,
    containers.RESOURCE_LIMITS,
    containers.HARDENING,
    containers.READ_ONLY,
    kubernetes.DEFAULT_DENY,
    kubernetes.PDB,
    state.SINGLETONS,
)


def all_policies() -> list[Policy]:
    policies: list[Policy] = [*trust.policies(), *strategy.policies(), *gateway.policies(), *containers.policies(), *kubernetes.policies(),
                              *state.policies(), *drift.policies(), *calls.policies()]
    by_name = {p.name: p for p in policies}
    assert sorted(by_name) == sorted(g.name for g in GATES), "catalog.GATES and the policy modules disagree"
    return [by_name[g.name] for g in GATES]
