"""The checks of calls' traffic policies, for the one validation report (`validation.parse_spec` calls these).

`split_reference_issues` reads the raw config (an unknown version is reported even when other keys are malformed);
`policy_issues` reads the typed spec once every reference resolves: what a protocol cannot do, and versions that
would be reached two ways.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from components.spec.schema import Spec
from components.spec.validation import Issue, key_path
from components.spec.validation import _did_you_mean as did_you_mean


def split_reference_issues(raw: Mapping[str, Any], workloads: list[str] | None) -> Iterable[Issue]:
    """Each version of a split names a declared workload, once (`workloads` None: malformed, reported elsewhere)."""
    entries = raw.get("workloads")
    if workloads is None or not isinstance(entries, list):
        return
    for i, workload in enumerate(entries):
        policy = workload.get("traffic_policy") if isinstance(workload, Mapping) else None
        split = policy.get("split") if isinstance(policy, Mapping) else None
        seen: set[str] = set()
        for j, version in enumerate(split if isinstance(split, list) else []):
            name = version.get("workload") if isinstance(version, Mapping) else None
            if not isinstance(name, str):
                continue
            path = key_path(["workloads", i, "traffic_policy", "split", j, "workload"])
            if name not in workloads:
                yield Issue(path, f"unknown workload '{name}'.{did_you_mean(name, workloads)} Declared workloads: {', '.join(workloads)}")
            elif name in seen:
                yield Issue(path, f"workload '{name}' is listed twice in this split; merge the entries and add their weights")
            seen.add(name)


def policy_issues(spec: Spec) -> Iterable[Issue]:
    index = {w.name: i for i, w in enumerate(spec.workloads)}
    yield from _split_issues(spec, index)
    yield from _tcp_issues(spec, index)
    yield from _name_issues(spec, index)


def _name_issues(spec: Spec, index: dict[str, int]) -> Iterable[Issue]:
    """A called workload's service proxy is named `<w>-proxy`, and on Kubernetes its own pods' Service `<w>-backend`:
    a workload with either name would collide with them."""
    called = {call.workload for w in spec.workloads for call in w.calls}
    taken = {f"{name}-proxy": name for name in called} | {f"{name}-backend": name for name in called}
    for workload in spec.workloads:
        if workload.name in taken:
            yield Issue(key_path(["workloads", index[workload.name], "name"]), f"'{workload.name}' is the name netopt gives the service "
                        f"proxy of '{taken[workload.name]}' (or, on kubernetes, the Service of its pods); rename the workload")


def _split_issues(spec: Spec, index: dict[str, int]) -> Iterable[Issue]:
    """A version serves calls to its callee's name through the callee's service proxy only: same protocol, not split
    itself, in one split, and not called directly (it would sit behind two proxies)."""
    called = {call.workload: (caller.name, j) for caller in spec.workloads for j, call in enumerate(caller.calls)}
    owner: dict[str, str] = {}
    for workload in spec.workloads:
        for j, version in enumerate(workload.traffic_policy.split or []):
            path = key_path(["workloads", index[workload.name], "traffic_policy", "split", j, "workload"])
            other = spec.workload(version.workload)
            if version.workload == workload.name:
                owner.setdefault(version.workload, workload.name)
                continue
            if other.protocol != workload.protocol:
                yield Issue(path, f"'{other.name}' speaks {other.protocol} but '{workload.name}' speaks {workload.protocol}: callers of "
                            f"'{workload.name}' would send it the wrong protocol; split only between versions of one protocol")
            if other.traffic_policy.split:
                yield Issue(path, f"'{other.name}' has a split of its own; a version is one workload, list its versions here instead")
            if version.workload in owner:
                yield Issue(path, f"'{other.name}' is already a version of '{owner[version.workload]}'; a workload serves one name")
            owner[version.workload] = workload.name
            if version.workload in called:
                caller, k = called[version.workload]
                yield Issue(key_path(["workloads", index[caller], "calls", k, "workload"]), f"calls '{other.name}', a version of "
                            f"'{workload.name}' (its traffic_policy.split): callers reach a version through '{workload.name}', "
                            f"which splits the calls by weight; call '{workload.name}' instead")


def _tcp_issues(spec: Spec, index: dict[str, int]) -> Iterable[Issue]:
    """A tcp proxy balances and caps connections: there is no request to rate-limit, retry on a status, or hash by
    URI, header or cookie."""
    for workload in spec.workloads:
        if workload.protocol != "tcp":
            continue
        i = index[workload.name]
        policy = workload.traffic_policy
        base: list[str | int] = ["workloads", i, "traffic_policy"]
        if policy.limit_rps is not None or policy.burst is not None:
            yield Issue(key_path([*base, "limit_rps" if policy.limit_rps is not None else "burst"]), f"'{workload.name}' speaks tcp: its "
                        "proxy counts connections, not requests; remove it and cap connections with max_concurrency")
        if "conditions" in policy.retries.model_fields_set or policy.retries.non_idempotent:
            yield Issue(key_path([*base, "retries"]), f"'{workload.name}' speaks tcp: a try is a connection attempt, retried on the next "
                        "replica when it fails; conditions and non_idempotent do not apply, keep only tries")
        if policy.hash_key is not None and policy.hash_key != "client_ip":
            yield Issue(key_path([*base, "hash_key"]), f"'{workload.name}' speaks tcp: a connection has no URI, header or cookie; "
                        "use hash_key client_ip")
        for caller in spec.workloads:
            for j, call in enumerate(caller.calls):
                if call.workload == workload.name and (call.limit_rps is not None or call.burst is not None):
                    yield Issue(key_path(["workloads", index[caller.name], "calls", j, "limit_rps"]), f"'{workload.name}' speaks tcp: "
                                "its proxy counts connections, not requests; remove it and cap this caller with max_concurrency")
