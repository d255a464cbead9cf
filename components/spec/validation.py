"""Turn a raw `netopt` config mapping into a `Spec`, or into one report listing every problem.

Shape errors come from pydantic (all of them at once); reference and consistency checks run on the raw data
too, so a typo in a workload name is reported alongside a wrong type elsewhere. Each problem names its config
key path (`netopt:routes[2].backends[0].workload`) and how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from components.spec import shape_messages
from components.spec.schema import HttpMethod, Spec
from components.spec.shown import printable, shorten

NAMESPACE = "netopt"
SHOWN_ISSUES = 100
"""Problems a report lists; the rest are counted. Every problem is collected, but a report of 100,000 lines (one per
item of a huge list) helps nobody: fixing the first ones usually fixes the rest."""


@dataclass(frozen=True)
class Issue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SpecError(Exception):
    """Invalid stack config; `str()` is the full report, ready to show to a user."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__(self.report())

    def report(self) -> str:
        count = len(self.issues)
        lines = [f"{NAMESPACE}: {count} problem{'s' if count != 1 else ''} in the stack config (nothing was deployed or rendered):"]
        lines += [f"  - {printable(str(issue))}" for issue in self.issues[:SHOWN_ISSUES]]
        if count > SHOWN_ISSUES:
            lines.append(f"  ... and {count - SHOWN_ISSUES:,} more problems like these (fix these first)")
        return "\n".join(lines)


def parse_spec(raw: Mapping[str, Any]) -> Spec:
    """Validate the `netopt` namespace of a stack config; raise `SpecError` with every problem found."""
    issues = list(_unknown_top_level_keys(raw))
    spec: Spec | None = None
    try:
        spec = Spec.model_validate({k: v for k, v in raw.items() if k in Spec.model_fields})
    except ValidationError as err:
        issues += _pydantic_issues(err, raw)
    issues += _reference_issues(raw)
    if spec is not None and not issues:  # consistency checks build on a spec whose references all resolve
        issues += _consistency_issues(spec)
    if issues:
        raise SpecError(_dedupe(issues))
    assert spec is not None
    return spec


def key_path(loc: Iterable[str | int]) -> str:
    text = NAMESPACE
    for i, part in enumerate(loc):
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += (":" if i == 0 else ".") + part
    return text


def _unknown_top_level_keys(raw: Mapping[str, Any]) -> Iterable[Issue]:
    for key in raw:
        if key not in Spec.model_fields:
            yield Issue(key_path([key]), f"unknown key.{_did_you_mean(key, Spec.model_fields)} Known keys: {', '.join(Spec.model_fields)}")


def _pydantic_issues(err: ValidationError, raw: Mapping[str, Any]) -> list[Issue]:
    """One issue per problem, at the user's key path; a value fitting none of a union's alternatives is one issue."""
    issues: list[Issue] = []
    unions: dict[tuple[str | int, ...], list[tuple[list[str | int], ErrorDetails]]] = {}
    for error in err.errors(include_url=False):
        path, union_at = _user_path(raw, error["loc"], missing=error["type"] == "missing")
        if union_at is not None:
            unions.setdefault(tuple(union_at), []).append((path, error))
        else:
            issues.append(_issue(path, error))
    for point, members in unions.items():
        deeper = [(path, error) for path, error in members if len(path) > len(point)]
        if deeper:  # the alternative that got inside the value is the one the user meant; the others' objections are noise
            issues += [_issue(path, error) for path, error in deeper]
        else:
            issues.append(Issue(key_path(list(point)), shape_messages.union_message([error for _, error in members])))
    return issues


def _user_path(raw: Mapping[str, Any], loc: tuple[str | int, ...], missing: bool) -> tuple[list[str | int], list[str | int] | None]:
    """The key path of `loc` in the user's config, and where a union or constraint tag of pydantic's sat in it (if any).

    A part of `loc` belongs to the user's path when it indexes the config value reached so far (or, for a missing
    key, names it last); anything else (`constrained-float`, `list[...]`, `function-after[...]`) is pydantic's.
    """
    data: Any = raw
    path: list[str | int] = []
    union_at: list[str | int] | None = None
    for i, part in enumerate(loc):
        indexes = ((isinstance(data, Mapping) and isinstance(part, str) and part in data)
                   or (isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)))
        if indexes:
            data = data[part]
        elif not (missing and i == len(loc) - 1):
            union_at = list(path) if union_at is None else union_at
            continue
        path.append(part)
    return path, union_at


def _issue(path: list[str | int], error: ErrorDetails) -> Issue:
    if error["type"] == "extra_forbidden":
        known = _fields_at(path[:-1])
        return Issue(key_path(path), f"unknown key.{_did_you_mean(str(path[-1]), known)} Known keys here: {', '.join(known)}")
    if error["type"] == "missing":
        return Issue(key_path(path), "required key is missing; add it")
    if error["type"] == "string_pattern_mismatch":
        return Issue(key_path(path), f"{shorten(repr(error['input']))} does not match the expected form {error['ctx']['pattern']}")
    return Issue(key_path(path), shape_messages.message(error))


def _fields_at(loc: list[str | int]) -> list[str]:
    """Field names of the spec model found at `loc`, so an unknown key can be answered with the known ones."""
    model: Any = Spec
    named = False  # the model is the value of a mapping keyed by the user's names: the next part is one of those
    for part in loc:
        if isinstance(part, int):
            continue
        if named:
            named = False
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return []
        annotation = model.model_fields[part].annotation
        named = _keyed_by_name(annotation)
        model = _model_in(annotation)
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _keyed_by_name(annotation: Any) -> bool:
    """Whether an annotation is, or wraps (`dict[str, X] | None`, `Annotated[...]`), a mapping from names to values."""
    if get_origin(annotation) in (dict, Mapping):
        return True
    return any(_keyed_by_name(arg) for arg in get_args(annotation) if get_origin(arg) is not None)


def _model_in(annotation: Any) -> Any:
    """The BaseModel inside an annotation like `list[Route]`, `Timeouts | None` or `Annotated[...]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation) if get_origin(annotation) is not None or get_args(annotation) else ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def _items(raw: Mapping[str, Any], key: str) -> list[tuple[int, Mapping[str, Any]]]:
    value = raw.get(key)
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, Mapping)]


def _names(raw: Mapping[str, Any], key: str) -> list[str] | None:
    """The names declared in a section; None when the section is malformed (its shape error says why), so that
    references into it are not also reported as unknown."""
    value = raw.get(key, [])
    names = [item.get("name") for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []
    if not isinstance(value, list) or len(names) != len(value) or not all(isinstance(n, str) for n in names):
        return None
    return [str(n) for n in names]


def _reference_issues(raw: Mapping[str, Any]) -> list[Issue]:
    """Duplicate names and references to things that do not exist, checked on the raw config."""
    issues: list[Issue] = []
    for section in ("workloads", "routes", "rate_limits", "concurrency_limits"):
        seen: dict[str, int] = {}
        for i, item in _items(raw, section):
            name = item.get("name")
            if isinstance(name, str) and name in seen:
                first = key_path([section, seen[name]])
                issues.append(Issue(key_path([section, i, "name"]), f"duplicate name '{name}' (also {first}); names must be unique"))
            elif isinstance(name, str):
                seen[name] = i
    workloads = _names(raw, "workloads")
    limits = {"rate_limit": _names(raw, "rate_limits"), "concurrency_limit": _names(raw, "concurrency_limits")}
    for i, route in _items(raw, "routes"):
        used: set[str] = set()
        backends = route.get("backends")
        for j, backend in enumerate(backends if isinstance(backends, list) else []):
            target = backend.get("workload") if isinstance(backend, Mapping) else None
            if not isinstance(target, str):
                continue
            path = key_path(["routes", i, "backends", j, "workload"])
            if workloads is not None and target not in workloads:
                declared = ", ".join(workloads) or "none"
                issues.append(Issue(path, f"unknown workload '{target}'.{_did_you_mean(target, workloads)} Declared workloads: {declared}"))
            if target in used:
                issues.append(Issue(path, f"workload '{target}' is listed twice in this route; merge the entries and add their weights"))
            used.add(target)
        for field, known in limits.items():
            ref = route.get(field)
            if isinstance(ref, str) and known is not None and ref not in known:
                section = field + "s"
                kind = field.replace("_", " ")
                message = f"unknown {kind} '{ref}'.{_did_you_mean(ref, known)} Declare it under {key_path([section])} or fix the name"
                issues.append(Issue(key_path(["routes", i, field]), message))
    issues += _call_issues(raw, workloads)
    from components.spec.call_checks import split_reference_issues  # it builds on this module's Issue

    issues += split_reference_issues(raw, workloads)
    routes = _names(raw, "routes")
    traffic = raw.get("traffic")
    if isinstance(traffic, Mapping) and routes is not None:
        for route_name in traffic:
            if route_name not in routes:
                hint = _did_you_mean(str(route_name), routes)
                message = f"no route named '{route_name}'.{hint} Traffic is declared per route name"
                issues.append(Issue(key_path(["traffic", str(route_name)]), message))
    return issues


def _call_issues(raw: Mapping[str, Any], workloads: list[str] | None) -> Iterable[Issue]:
    """Each call names another declared workload, once per caller (`workloads` None: malformed, reported elsewhere)."""
    if workloads is None:
        return
    for i, workload in _items(raw, "workloads"):
        caller = workload.get("name")
        seen: set[tuple[str, object]] = set()
        calls = workload.get("calls")
        for j, call in enumerate(calls if isinstance(calls, list) else []):
            target = call.get("workload") if isinstance(call, Mapping) else None
            if not isinstance(target, str):
                continue
            path = key_path(["workloads", i, "calls", j, "workload"])
            if target not in workloads:
                declared = ", ".join(workloads) or "none"
                yield Issue(path, f"unknown workload '{target}'.{_did_you_mean(target, workloads)} Declared workloads: {declared}")
            elif target == caller:
                yield Issue(path, f"workload '{caller}' calls itself; a call is between two workloads (work a replica does "
                            "for itself belongs in its response_time_ms), remove it")
            elif (target, call.get("port")) in seen:
                on = f" on port '{call['port']}'" if call.get("port") is not None else ""
                yield Issue(path, f"workload '{target}' is called twice by '{caller}'{on}; merge the entries and add their ratios")
            seen.add((target, call.get("port")))


def _cycle_issues(spec: Spec) -> Iterable[Issue]:
    from components.plan.graph import find_cycle

    cycle = find_cycle(spec)
    if cycle:
        index = {w.name: i for i, w in enumerate(spec.workloads)}
        yield Issue(key_path(["workloads", index[cycle[0]], "calls"]), f"the calls form a cycle ({' -> '.join(cycle)}): a request would "
                    "call itself again with no end, so the load along it has no steady state; remove one of these calls")


def _consistency_issues(spec: Spec) -> list[Issue]:
    """Checks that need the typed values: conflicting routes, keepalive vs idle timeouts, address room, how workloads run."""
    from components.spec.runtime_checks import runtime_issues

    runtime = [Issue(key_path(path), message) for path, message in runtime_issues(spec)]  # the flows below need their ports
    issues = list(_route_conflicts(spec)) + list(_cycle_issues(spec)) + runtime
    if not issues:
        issues += _shared_location_issues(spec)
    issues += _keepalive_issues(spec)
    issues += _latency_optimal_issues(spec)
    issues += _injected_env_issues(spec)
    issues += _gateway_protocol_issues(spec)
    issues += _state_issues(spec)
    from components.spec.call_checks import policy_issues

    issues += policy_issues(spec)
    if spec.target == "docker" and not runtime:
        issues += _docker_address_issues(spec)
        if spec.gateway.replicas > 1:
            message = f"{spec.gateway.replicas} gateways cannot publish the same host port on one Docker host; use 1, or target kubernetes"
            issues.append(Issue(key_path(["gateway", "replicas"]), message))
    return issues


def _keepalive_issues(spec: Spec) -> Iterable[Issue]:
    """One issue for every workload whose idle timeout the pooled connections outlive (one fix: a lower keepalive timeout)."""
    timeout = spec.gateway.keepalive.timeout_s
    closing = [(w.name, w.idle_timeout_s) for w in spec.workloads if timeout >= w.idle_timeout_s]
    if closing:
        listed = ", ".join(f"{name} ({idle:g}s)" for name, idle in closing)
        lowest = min(idle for _, idle in closing)
        yield Issue(key_path(["gateway", "keepalive", "timeout_s"]), f"{timeout:g}s is not below the idle_timeout_s of workload"
                    f"{'s' if len(closing) > 1 else ''} {listed}, so a backend would close pooled connections under the gateway; "
                    f"set it below {lowest:g} (or raise those workloads' idle_timeout_s)")


def _route_conflicts(spec: Spec) -> Iterable[Issue]:
    seen: dict[tuple[object, ...], tuple[int, set[HttpMethod] | None]] = {}
    for i, route in enumerate(spec.routes):
        m = route.match
        key = (m.host, *m.key, tuple(sorted(m.headers.items())))  # a prefix's trailing slash does not count: match_key
        methods = set(m.methods) if m.methods else None
        if key in seen:
            j, other = seen[key]
            overlap = methods is None or other is None or bool(methods & other)
            if overlap:
                written = spec.routes[j].match.path
                slash = "" if written == m.path else f" (prefixes {written} and {m.path} are one path: a trailing slash does not count)"
                yield Issue(key_path(["routes", i, "match"]), f"conflicts with {key_path(['routes', j])} ('{spec.routes[j].name}'): same host, path "
                            f"and headers with overlapping methods{slash}; make the methods, headers or path differ")
                continue
        seen[key] = (i, methods)


def _shared_location_issues(spec: Spec) -> Iterable[Issue]:
    """Routes dispatched from one nginx location (sharing a path, or one falling back to the other when its
    methods/headers do not match) share that location's timeouts and retry policy, so they must agree."""
    from components.plan.build import build_plan
    from components.plan.deployment import deployment_of

    index = {route.name: i for i, route in enumerate(spec.routes)}
    reported: set[tuple[str, str]] = set()
    for server in build_plan(spec, deployment_of(spec)).gateway.servers:
        for location in server.locations:
            first = location.rules[0].route if location.rules else None
            for rule in location.rules[1:]:
                other = rule.route
                assert first is not None
                pair = (first.name, other.name)
                if (first.timeouts, first.retries) == (other.timeouts, other.retries) or pair in reported:
                    continue
                reported.add(pair)
                shared = key_path(["routes", index[first.name]])
                yield Issue(key_path(["routes", index[other.name]]), f"is dispatched from the same nginx location as {shared} ('{first.name}', "
                            f"path {location.path}) but sets different timeouts or retry_non_idempotent; make them equal")


def _gateway_protocol_issues(spec: Spec) -> Iterable[Issue]:
    """The gateway is an HTTP/1.1 proxy: a route can only send traffic to http workloads."""
    index = {w.name: i for i, w in enumerate(spec.workloads)}
    for i, route in enumerate(spec.routes):
        for j, backend in enumerate(route.backends):
            workload = spec.workload(backend.workload)
            if workload.protocol != "http":
                yield Issue(key_path(["routes", i, "backends", j, "workload"]), f"workload '{workload.name}' speaks "
                            f"{workload.protocol} ({key_path(['workloads', index[workload.name], 'protocol'])}), but the gateway proxies "
                            "HTTP/1.1 only; reach it from an http workload through `calls`, or route to an http workload in front of it")


def _state_issues(spec: Spec) -> Iterable[Issue]:
    """Volumes have distinct names and paths (not /tmp, which is always scratch); a singleton is one stateful instance."""
    for i, workload in enumerate(spec.workloads):
        names: dict[str, int] = {}
        paths: dict[str, int] = {}
        for j, volume in enumerate(workload.volumes):
            where = key_path(["workloads", i, "volumes", j])
            if volume.name in names:
                yield Issue(f"{where}.name", f"duplicate volume name '{volume.name}' (also volumes[{names[volume.name]}]); rename one")
            if volume.path in paths or volume.path == "/tmp":
                also = f"volumes[{paths[volume.path]}]" if volume.path in paths else "the scratch /tmp every container gets"
                yield Issue(f"{where}.path", f"{volume.path} is already mounted ({also}); choose another directory")
            names.setdefault(volume.name, j)
            paths.setdefault(volume.path, j)
        if not workload.singleton:
            continue
        where = key_path(["workloads", i, "singleton"])
        if workload.replicas != 1:
            yield Issue(where, f"a singleton runs exactly one instance, but replicas is {workload.replicas}; set replicas: 1, or drop "
                        "singleton if the replicas are interchangeable")
        if spec.target == "kubernetes" and workload.name in spec.kubernetes.autoscaling:
            yield Issue(key_path(["kubernetes", "autoscaling", workload.name]), f"'{workload.name}' is a singleton: an autoscaler would "
                        "start independent copies of its state; remove the autoscaling entry")


def _injected_env_issues(spec: Spec) -> Iterable[Issue]:
    """A user's own PORT or NETOPT_REPLICA would be overridden by what the targets inject: say so instead."""
    for i, workload in enumerate(spec.workloads):
        port = workload.env.get("PORT")
        if port is not None and workload.port is not None and port != str(workload.port):
            yield Issue(key_path(["workloads", i, "env", "PORT"]), f"is {port!r}, but the targets set PORT to the workload's port "
                        f"({workload.port}) so the process listens where the gateway and the health check connect; change "
                        f"{key_path(['workloads', i, 'port'])} instead, or remove env.PORT")
        if "NETOPT_REPLICA" in workload.env:
            yield Issue(key_path(["workloads", i, "env", "NETOPT_REPLICA"]), "is set by the targets to each replica's name "
                        "(<workload>-<i> on Docker, the pod name on Kubernetes); remove it or use another name")


def _latency_optimal_issues(spec: Spec) -> Iterable[Issue]:
    """latency_optimal splits a workload with unequal replicas at its declared peak: every route feeding it declares one.

    With service balancing (kubernetes) the platform spreads a workload's pods evenly whatever the peak: nothing needed.
    """
    from components.plan.balancing import service_rate, target_balancing

    if spec.gateway.algorithm != "latency_optimal" or target_balancing(spec.target) != "gateway":
        return
    for route in spec.routes:
        if spec.peak(route.name).peak_rps > 0:
            continue
        for backend in route.backends:
            workload = spec.workload(backend.workload)
            if len({service_rate(workload, r) for r in range(workload.replicas)}) > 1:  # equal rates split evenly at any load
                times = workload.replica_response_times_s()
                listed = ", ".join(f"{t * 1000:g}" for t in times)
                yield Issue(key_path(["traffic", route.name]), f"route '{route.name}' declares no peak_rps > 0, but it sends traffic to "
                            f"workload '{backend.workload}' (replicas at {listed} ms), and gateway.algorithm latency_optimal splits such a "
                            f"workload by its declared peak load; declare the route's peak (e.g. traffic: {{{route.name}: <req/s>}}) "
                            f"or use algorithm latency_weighted, which needs none")
                break


def _docker_address_issues(spec: Spec) -> Iterable[Issue]:
    subnet = spec.network.subnet
    if subnet is None:
        yield Issue(key_path(["network", "subnet"]), "the docker target gives every backend a fixed address (nginx resolves names once), "
                    "so it needs an IPv4 subnet; add e.g. 10.42.0.0/24")
        return
    from components.plan.docker_links import block_size, blocks_needed, room_needed

    count, prefix = room_needed(spec)
    if prefix < subnet.prefixlen:
        message = (f"{subnet} is too small for the service graph on docker: each of its {count} hops (the gateway to a "
                   f"routed workload, a caller to its callee's service proxy, a proxy to the replicas it balances) gets an "
                   f"internal network of its own, and the layout spans {max(blocks_needed(spec), 1)} blocks of {block_size(spec)} "
                   f"addresses (every workload keeps a block for its ingress and one for its serve network, so a graph change "
                   f"moves no replica's address); use a /{max(prefix, 0)} or larger (e.g. {subnet.supernet(new_prefix=max(prefix, 0))})")
        yield Issue(key_path(["network", "subnet"]), message)
    edge = spec.network.edge_subnet
    if edge is not None and edge.overlaps(subnet):
        yield Issue(key_path(["network", "edge_subnet"]), f"{edge} overlaps the internal subnet {subnet}; use a separate range")


def _dedupe(issues: list[Issue]) -> list[Issue]:
    """Each problem once, in the order found; different problems at one key stay separate lines."""
    return list(dict.fromkeys(issues))
