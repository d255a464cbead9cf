"""Gateway behaviour gates, read from the rendered nginx.conf the gateway actually runs and from the report.

The Docker target uploads nginx.conf into the gateway container (`uploads[].content`) and delivers every later
config through a Command's `stdin`; the Kubernetes target puts it in the gateway ConfigMap (`data["nginx.conf"]`).
All are inputs of those resources (policies/deployed_configs.py finds them), so these gates check the very text
nginx will load, not a re-rendering of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Policy, ResourceValidationArgs, StackValidationArgs

from components.spec.methods import IDEMPOTENT_METHODS
from policies.deployed_configs import CONFIG_CARRIERS, carried_configs, serves_traffic, stack_proxies
from policies.framework import Gate, Report, StackReport, number, resource_policy, stack_policy
from policies.model import APP_NETWORK, get, items
from policies.nginx_config import Directive, parse_nginx, walk

MIN_REPLICAS = Gate(
    "min-replicas", "structure",
    "Every workload runs at least the environment's minimum number of replicas (one replica is a single point of failure); "
    "a workload declared singleton (one store: a database, a cache, a broker) is exempt.",
    {"minimum": {"type": "integer", "minimum": 1, "default": 2, "description": "fewest replicas per workload"},
     "includeGateway": {"type": "boolean", "default": False, "description": "hold the gateway to the same minimum"}},
    "Raise `replicas` of a stateless workload in the stack config (the capacity model then spreads its load over more replicas); "
    "a workload that holds state is declared `singleton: true` instead: more replicas of it would be independent copies.",
)
STATEFUL_FIX = ("it keeps state on persistent volumes, so more replicas would be independent copies of that state behind one "
                "name; if it is one store (a database, a broker), declare singleton: true (exempt from this gate); if its replicas "
                "are interchangeable, remove the volumes or make them scratch, then raise replicas")

KEEPALIVE = Gate(
    "upstream-keepalive", "structure",
    "The gateway keeps idle upstream connections open (keepalive in every upstream, HTTP/1.1 and no 'Connection: close' to backends).",
    {"minConnections": {"type": "integer", "minimum": 1, "default": 8,
                        "description": "fewest idle keepalive connections per upstream per nginx worker"}},
    "Set gateway.keepalive.connections in the stack config; the renderer emits keepalive, proxy_http_version 1.1 and an empty Connection header.",
)

RETRIES = Gate(
    "retries-idempotent-only", "structure",
    "The gateway never resends a non-idempotent request (POST, PATCH) to another replica unless the route opted in with retry_non_idempotent.",
    {},
    "Remove `non_idempotent` from proxy_next_upstream (the renderer adds it only for routes with retry_non_idempotent: true), "
    "or restrict the route to idempotent methods, or opt the route in after making its handler idempotent (e.g. an idempotency key).",
)


# -- min-replicas -------------------------------------------------------------------------------------------------

def _min_replicas(args: ResourceValidationArgs, config: dict[str, Any], report_violation: Report) -> None:
    report = args.props["report"]
    minimum = config["minimum"]
    workloads = report["workloads"]
    for name in workloads:
        replicas = int(number(workloads[name]["replicas"]))
        if get(workloads[name], "singleton", default=False):
            continue  # one instance by declaration: stateful-singletons checks it runs as one, on persistent storage
        if replicas < minimum:
            fix = STATEFUL_FIX if get(workloads[name], "persistent", default=False) else f"set replicas: {minimum} (or more)"
            report_violation(f"AppNetwork '{args.name}': workload '{name}' declares {replicas} replica(s), below the minimum {minimum} "
                             f"for environment {get(report, 'environment', default='?')}. Fix: on workload '{name}', {fix}.")
    gateway = get(report, "gateway", "replicas")
    if config["includeGateway"] and gateway is not None and int(number(gateway)) < minimum:
        report_violation(f"AppNetwork '{args.name}': the gateway runs {int(number(gateway))} replica(s), below the minimum {minimum}. "
                         f"Fix: set gateway.replicas: {minimum} (the kubernetes target runs several gateways behind one Service).")


# -- upstream-keepalive -------------------------------------------------------------------------------------------

def _effective(directives: list[Directive], name: str) -> list[str] | None:
    found = [d.args for d in directives if d.name == name]
    return found[-1] if found else None


def _keepalive(args: ResourceValidationArgs, config: dict[str, Any], report_violation: Report) -> None:
    for where, text in carried_configs(args.resource_type, args.name, args.props):
        if not serves_traffic(text):
            continue  # a container's bootstrap (the status server alone): its config arrives through its Command
        minimum = config["minConnections"]
        tree = parse_nginx(text)
        http = next((d for d in tree if d.name == "http"), None)
        if http is None or http.block is None:
            report_violation(f"{where}: no http block found in the gateway config, so upstream keepalive cannot be verified "
                             f"(threshold: keepalive >= {minimum} per upstream). Fix: render the gateway config from the stack (do not "
                             f"replace it by hand).")
            continue
        if not any(d.name == "proxy_pass" for d in walk(http.block)):
            pass  # grpc_pass speaks HTTP/2 to its upstreams, whose connections keepalive pools as they are
        elif (version := _effective(http.block, "proxy_http_version")) != ["1.1"]:
            report_violation(f"{where}: proxy_http_version is {' '.join(version) if version else 'unset (1.0)'}; upstream keepalive needs 1.1. "
                             "Fix: set `proxy_http_version 1.1;` in the http block.")
        headers = [d.args for d in http.block if d.name == "proxy_set_header" and d.args and d.args[0].lower() == "connection"]
        if any(d.name == "proxy_pass" for d in walk(http.block)) and (not headers or headers[-1][1:] != [""]):
            report_violation(f"{where}: the Connection header to upstreams is "
                f"{('set to ' + repr(headers[-1][1:])) if headers else 'left as the client sent it'}; "
                             "nginx then closes every upstream connection after one request. Fix: set `proxy_set_header Connection \"\";` "
                             "in the http block.")
        for upstream in http.children("upstream"):
            name = upstream.args[0] if upstream.args else "?"
            keepalive = _effective(upstream.block or [], "keepalive")
            value = int(keepalive[0]) if keepalive and keepalive[0].isdigit() else 0
            if value < minimum:
                report_violation(f"{where}: upstream '{name}' keeps {value or 'no'} idle connection(s) (keepalive {value}), below the "
                    f"minimum {minimum}: "
                                 f"every request pays a new TCP handshake to the backend. Fix: {KEEPALIVE.remediation}")


# -- retries-idempotent-only --------------------------------------------------------------------------------------

def _retries_non_idempotent(args: list[str] | None, tries: list[str] | None) -> bool:
    if not args or args == ["off"] or "non_idempotent" not in args:
        return False
    return not (tries and tries[0] == "1")


def _location_routes(location: Directive, maps: dict[str, list[str]]) -> list[str]:
    for directive in location.block or []:
        if directive.name == "set" and len(directive.args) == 2 and directive.args[0] == "$netopt_route":
            value = directive.args[1]
            return maps.get(value, []) if value.startswith("$") else [value] if value else []
    return []


def _report_routes(resources: list[Any]) -> dict[str, Mapping[str, Any]]:
    routes: dict[str, Mapping[str, Any]] = {}
    for resource in resources:
        if resource.resource_type == APP_NETWORK:
            for route in items(get(resource.props, "report", "routes")):
                routes[str(route["name"])] = route
    return routes


def _retries(args: StackValidationArgs, config: dict[str, Any], report_violation: StackReport) -> None:
    routes = _report_routes(args.resources)
    proxies = stack_proxies(args.resources)
    carriers: dict[str, tuple[str | None, list[str]]] = {}  # identical copies judged once: text -> (urn, where each is)
    for copy in (copy for proxy in proxies for copy in proxy.copies):
        carriers.setdefault(copy.text, (copy.urn, []))[1].append(copy.where)
    if not carriers:
        args.not_applicable("no gateway config (nginx.conf) in this stack")
    for text, (urn, places) in carriers.items():
        where = " and the ".join(places)
        http = next((d for d in parse_nginx(text) if d.name == "http"), None)
        if http is None or http.block is None:
            continue
        # map <source> $netopt_sel_... { default <route>; "<regex>" <route>; }: the routes a dispatched location serves
        maps = {m.args[1]: [d.args[0] for d in m.block or [] if d.args and d.args[0]] for m in http.children("map") if len(m.args) == 2}
        http_next, http_tries = _effective(http.block, "proxy_next_upstream"), _effective(http.block, "proxy_next_upstream_tries")
        for server in http.children("server"):
            server_next = _effective(server.block or [], "proxy_next_upstream") or http_next
            server_tries = _effective(server.block or [], "proxy_next_upstream_tries") or http_tries
            for location in walk(server.block or []):
                if location.name != "location":
                    continue
                own = location.block or []
                effective = _effective(own, "proxy_next_upstream") or server_next
                tries = _effective(own, "proxy_next_upstream_tries") or server_tries
                if not _retries_non_idempotent(effective, tries):
                    continue
                for route_name in _location_routes(location, maps):
                    route = routes.get(route_name)
                    if route is None:
                        continue
                    methods = [str(m) for m in items(get(route, "methods"))] or None
                    if methods is not None and set(methods) <= IDEMPOTENT_METHODS:
                        continue
                    if get(route, "retry_non_idempotent", default=False):
                        continue
                    accepted = ", ".join(methods) if methods else "every method, POST and PATCH included"
                    report_violation(
                        f"{where}: location '{' '.join(location.args)}' resends non-idempotent requests to another replica "
                        f"(proxy_next_upstream {' '.join(effective or [])}; tries {' '.join(tries or ['unlimited'])}) for route '{route_name}' "
                        f"({accepted}), which did not opt in (retry_non_idempotent: false; required: opted in, or no retry of "
                        f"non-idempotent methods). "
                        f"A retried POST can be applied twice. Fix: {RETRIES.remediation}", urn)


def policies() -> list[Policy]:
    return [
        resource_policy(MIN_REPLICAS, _min_replicas, reads=[APP_NETWORK]),
        resource_policy(KEEPALIVE, _keepalive, reads=CONFIG_CARRIERS),
        stack_policy(RETRIES, _retries),
    ]

