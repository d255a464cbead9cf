"""What a service mesh enforces of each call's rate limit: buckets of whole requests per second, one per pod.

Both meshes limit locally. Linkerd's HTTPLocalRateLimitPolicy is kept by the callee's inbound proxy, one bucket per
pod of each version, with a per-caller override (`clientRefs`); netopt's Istio resources keep the limit in the
caller's own sidecar (an EnvoyFilter on its outbound route to the callee), one bucket per caller pod. Either way a
call's limit L is spread over n pods as n buckets of ⌊L·share/n⌋ whole requests per second (at least 1): what the
mesh enforces, and so the call's f_l in the flow-control score, is Σ n·⌊L·share/n⌋, never more than L (but for the
floor of 1 per pod). Pods are, for Linkerd's callee-side buckets, a version's declared `replicas` (an autoscaled
workload's minimum: each added pod also serves its share, so the callee's load per pod stays the same); for Istio's
caller-side buckets, the caller's most pods (its autoscaler's maximum: an added caller pod serves nothing). The
mesh resources (`components/targets/mesh`) and the scores read these numbers; the policy pack recomputes them from
the deployed resources.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from components.plan.calls import Edge
from components.spec.schema import Spec


@dataclass(frozen=True)
class PodBuckets:
    """`pods` pods of `workload`, each holding `rps` whole requests per second of one call's limit."""

    workload: str
    pods: int
    rps: int


def _exact(limit_rps: float) -> Fraction:
    """A call limit is whole per second or per minute (spec/calls.py): read it back exactly."""
    return Fraction(round(limit_rps * 60), 60)


def buckets(limit_rps: float, groups: Sequence[tuple[str, int, Fraction]]) -> tuple[PodBuckets, ...]:
    """`limit_rps` split over groups of (workload, pods, share of the calls), each pod's bucket floored to whole rps."""
    return tuple(PodBuckets(workload, pods, max(1, math.floor(_exact(limit_rps) * share / pods))) for workload, pods, share in groups)


def enforced_rps(found: Sequence[PodBuckets]) -> int:
    return sum(b.pods * b.rps for b in found)


def callee_buckets(spec: Spec, edge: Edge) -> tuple[PodBuckets, ...]:
    """Linkerd: the callee's inbound proxies, each version's pods taking the version's share of the call."""
    assert edge.limit_rps is not None, "a tcp call has no rate limit"
    total = sum(weight for _, weight in edge.policy.versions)
    return buckets(edge.limit_rps, [(v, spec.workload(v).replicas, Fraction(weight, total)) for v, weight in edge.policy.versions])


def caller_buckets(spec: Spec, edge: Edge) -> tuple[PodBuckets, ...]:
    """Istio: the caller's sidecars, each caller pod keeping a bucket for its calls to the callee. Sized for the
    caller's most pods (its autoscaler's maximum): every pod the autoscaler adds brings a full bucket, so a bucket
    sized for the minimum would let a scaled-out caller send up to max/min times its limit."""
    assert edge.limit_rps is not None, "a tcp call has no rate limit"
    return buckets(edge.limit_rps, [(edge.caller, spec.max_replicas(edge.caller), Fraction(1))])


def mesh_call_routes(spec: Spec, edges: Sequence[Edge]) -> list[tuple[str, int, float | None]]:
    """(route, r_j, f_l) of every call a mesh carries: one route per call, found in one step (each callee's mesh route
    has one rule, matching every request), limited at what the mesh enforces (none for tcp)."""
    per_pod = callee_buckets if spec.kubernetes.mesh == "linkerd" else caller_buckets
    return [(edge.name, 1, None if edge.limit_rps is None else float(enforced_rps(per_pod(spec, edge)))) for edge in edges]
