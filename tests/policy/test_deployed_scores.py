"""The pack's second computation of r_j and f_l (policies/deployed_scores.py) from rendered configs, against the plan's.

The pack must never import components' scoring; these tests are where the two computations meet: on the shipped
stacks, on generated specs (exact/prefix/regex mixes, hosts, method and header dispatch, shared and global limits),
and on hand edits of a rendered config that change what nginx does.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings

from components.resources.app_network import analyse
from components.resources.pulumi_config import namespace_values
from components.spec.schema import Spec
from components.spec.validation import SpecError, parse_spec
from components.targets import proxy_config
from offline.stack_config import cli_config, stack_file
from policies.deployed_scores import DeployedScores, deployed_scores
from policies.nginx_config import parse_config
from tests.conftest import stack_spec
from tests.test_nginx_render import valid_specs

from .overlays import SHIPPED

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def _deployed(spec: Spec) -> tuple[DeployedScores, dict[str, Any], str]:
    """The scores of every proxy's config together (the gateway's routes, each service proxy's call routes), as the
    pack reads them from what is deployed; and the gateway's config."""
    target, plan, report = analyse(spec)
    configs = [proxy_config(target, proxy) for proxy in plan.proxies]
    together = DeployedScores()
    for config in configs:
        scores = deployed_scores(parse_config(config))
        together.steps.update(scores.steps)
        together.limits.update(scores.limits)
        together.problems += scores.problems
    return together, report, configs[0]


def _assert_agree(scores: DeployedScores, report: dict[str, Any]) -> None:
    assert scores.problems == []
    assert scores.steps == {i["item"]: i["value"] for i in report["scores"]["inputs"]["r"]}
    assert scores.limits == {i["item"]: i["value"] for i in report["scores"]["inputs"]["f_rps"]}
    assert scores.routing == pytest.approx(report["scores"]["routing"], rel=1e-12)
    assert scores.flow_control == pytest.approx(report["scores"]["flow_control"], rel=1e-12)


@pytest.mark.parametrize("stack", SHIPPED)
def test_shipped_configs_give_the_reported_scores(stack: str) -> None:
    scores, report, _ = _deployed(parse_spec(namespace_values(cli_config(stack_file(stack)))))
    _assert_agree(scores, report)
    # the README's shipped r_j: 7 routes, then 3 call routes (web.api, api.auth, api-canary.auth on docker; on
    # kubernetes, where callers are not told apart, one per callee: -.api, -.auth)
    routes = 7 + (3 if stack_spec(stack).target == "docker" else 2)
    assert len(scores.steps) == routes and max(scores.steps.values()) == 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs())
def test_any_valid_spec_gives_the_reported_scores(raw: dict[str, Any]) -> None:
    try:
        spec = parse_spec(raw)
    except SpecError:
        assume(False)
        return
    scores, report, _ = _deployed(spec)
    _assert_agree(scores, report)


def _prod() -> tuple[DeployedScores, dict[str, Any], str]:
    return _deployed(parse_spec(namespace_values(cli_config(stack_file("prod")))))


def test_a_prefix_that_no_longer_stops_the_regex_search_costs_a_regex_try() -> None:
    _, _, config = _prod()
    edited = deployed_scores(parse_config(config.replace("location ^~ /api/ {", "location /api/ {")))
    assert edited.steps["api"] == 3 and edited.steps["api_beta"] == 3  # tree + 1 regex + dispatch


def test_a_looser_zone_or_a_missing_limit_changes_f() -> None:
    _, _, config = _prod()
    looser = deployed_scores(parse_config(config.replace("rate=5r/s;", "rate=300r/m;").replace("rate=20r/s;", "rate=40r/s;")))
    assert looser.limits["login"] == 5.0 and looser.limits["auth"] == 40.0  # 300 r/m = 5 r/s
    # Drop web's limit from the location serving it: a client can reach the route unlimited there.
    location = ("location / {\n            set $netopt_route web;\n            proxy_pass http://up_web;\n"
                "            limit_req zone=netopt_rl_web__per__client burst=50 nodelay;")
    assert location in config
    unlimited = deployed_scores(parse_config(config.replace(location, location.rsplit("\n", 1)[0])))
    assert unlimited.limits["web"] is None and unlimited.limits["static"] == 50.0


def test_a_limit_at_server_level_is_inherited_by_locations_without_their_own() -> None:
    _, _, config = _prod()
    edited = config.replace("limit_req zone=netopt_rl_web__per__client burst=50 nodelay;", "")
    edited = edited.replace("        server_name _;\n", "        server_name _;\n        limit_req zone=netopt_rl_web__per__client;\n", 1)
    scores = deployed_scores(parse_config(edited))
    # ^~ /static/ keeps its own limit_req (static's zone), so it does not inherit the server's: web is unlimited there.
    assert scores.problems == [] and scores.limits["web"] is None and scores.limits["api"] == 50.0
    inherited = deployed_scores(parse_config(edited.replace("limit_req zone=netopt_rl_static__per__client burst=100 nodelay;", "")))
    # Now every location serving web inherits the server's zone; static's key is empty in web's zone: unlimited.
    assert inherited.limits["web"] == 100.0 and inherited.limits["static"] is None


def test_a_config_crossplane_rejects_or_an_undefined_dispatch_variable_is_a_problem() -> None:
    _, _, config = _prod()
    broken = deployed_scores(parse_config(config.replace("limit_req_status 429;", "limit_req_status;")))
    assert any("crossplane" in p and "limit_req_status" in p for p in broken.problems)
    undefined = deployed_scores(parse_config(config.replace("set $netopt_route $netopt_sel_5;", "set $netopt_route $nowhere;")))
    assert any("$nowhere, which no map defines" in p for p in undefined.problems)


def test_the_pack_does_not_import_components_scoring() -> None:
    # An independent second computation: the recomputation and its parser import nothing from components.
    for module in ("deployed_scores.py", "deployed_configs.py", "nginx_config.py", "trust.py"):
        tree = ast.parse((POLICIES / module).read_text())
        imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not any(name.startswith("components") for name in imported), (module, imported)


_HAND_WRITTEN = """
events {}
http {
    map $http_x_v $netopt_sel_1 { default web; "~*^BETA$" beta; }
    map $netopt_route $rl_key { default ""; "~*^API" api; }
    limit_req_zone $binary_remote_addr zone=per:10m rate=10r/s;
    limit_req_zone $rl_key zone=apionly:10m rate=300r/m;
    server {
        listen 8080 default_server;
        location @fallback { set $netopt_route ignored; }
        location ~* \\.png$ { set $netopt_route images; }
        location ~ ^/v[0-9]+/ { set $netopt_route api_v; limit_req zone=apionly; }
        location / { set $netopt_route $netopt_sel_1; limit_req zone=per; }
        location ^~ /api/ { set $netopt_route api; limit_req zone=apionly; limit_req zone=per; }
    }
}
"""


def test_a_hand_written_config_scores_as_worked_out_by_hand() -> None:
    """nginx's rules applied by hand: a named location (@) is never selected; `~*` is a regex location like `~`;
    a prefix without `^~` tries both regexes first; `^~` stops the search. The header map's `~*^BETA$` entry is tested
    before its default. A zone keyed by a map of $netopt_route counts only the routes mapped to a non-empty key,
    matched caselessly by `~*^API` (api_v, api; not web, beta, images); 300 r/m is 5 r/s; the strictest zone binds.

    images: regex 1st -> r = 1 + 1 = 2, no limit.  api_v: regex 2nd -> r = 3, apionly 5 r/s.
    beta: prefix tries 2 regexes, map entry 1 -> r = 1 + 2 + 1 = 4, per 10 r/s.  web: the map's default, after its one
    entry -> r = 4, 10 r/s.  api: ^~ -> r = 1, min(5, 10) = 5 r/s.
    R = (1/2 + 1/3 + 1/4 + 1/4 + 1) / 5 = 7/15;  F = (0 + 1/5 + 1/10 + 1/10 + 1/5) / 5 = 3/25."""
    scores = deployed_scores(parse_config(_HAND_WRITTEN))
    assert scores.problems == []
    assert scores.steps == {"images": 2, "api_v": 3, "beta": 4, "web": 4, "api": 1}
    assert scores.limits == {"images": None, "api_v": 5.0, "beta": 10.0, "web": 10.0, "api": 5.0}
    assert scores.routing == pytest.approx(7 / 15) and scores.flow_control == pytest.approx(3 / 25)


def test_routes_that_cannot_be_owned_are_problems_and_the_others_still_scored() -> None:
    config = """
events {}
http {
    limit_req_zone $binary_remote_addr zone=bad:1m sync;
    server { listen 8081; location /a/ { set $netopt_route split; } }
    server { listen 8082; location /a/ { set $netopt_route split; } location /n/ { location /n/x { } set $netopt_route nested; } }
    server {
        listen 8080 default_server;
        location ~ ^/x { set $netopt_route twice; }
        location ~ ^/y { set $netopt_route twice; }
        location /fine/ { set $netopt_route fine; }
    }
}
"""
    scores = deployed_scores(parse_config(config))
    assert scores.steps == {"nested": 1, "fine": 3}, "a route no location can own is left out; the others are scored"
    assert sorted(scores.problems) == sorted([
        "line 4: limit_req_zone $binary_remote_addr zone=bad:1m sync has no zone=NAME:SIZE or rate=Nr/s|Nr/m",
        "line 6: nested locations inside 'location /n/' are not scored",
        "route 'split' is served by several servers and none is the default_server",
        "route 'twice' is owned by more than one location (regex ^/x, regex ^/y)",
    ])


def test_no_route_scores_zero() -> None:
    """(1/N) Σ 1/x with N = 0 is taken as 0, as components/plan/scores.py does: no route, no routing or flow credit."""
    scores = deployed_scores(parse_config("events {}\nhttp { server { listen 8080 default_server; location / { return 404; } } }\n"))
    assert (scores.steps, scores.routing, scores.flow_control) == ({}, 0.0, 0.0)
