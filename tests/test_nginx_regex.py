"""Route regexes are nginx's PCRE2, not Python's `re`: validation, the plan's resolver and nginx agree (issue 11 item 3)."""

from __future__ import annotations

from typing import Any

import pytest

from components.plan.addressing import docker_address_map
from components.render.nginx import render_proxy
from components.spec.regex import RegexError, compile_location_regex, search
from components.spec.validation import SpecError, parse_spec
from testbed.gateway import free_port
from testbed.nginx_runner import NginxConfigError, nginx_t
from testbed.routing import expected_route, regex_examples
from tests.conftest import plan_of


def _location_conf(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace('"', '\\"')
    # nginx -t opens the listen socket: a free unprivileged port, and no log a normal user cannot open
    return f'events {{}}\nhttp {{ access_log off; server {{ listen 127.0.0.1:{free_port()}; location ~ "{escaped}" {{ return 200; }} }} }}\n'


def _problems(raw: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as err:
        parse_spec(raw)
    return str(err.value)


@pytest.mark.parametrize("pattern", [r"^/\N{DIGIT ONE}", r"^/\u0031", r"^/(", "^/(?<host>[a-z]+)"])
def test_patterns_nginx_refuses_are_refused_by_validation(minimal: dict[str, Any], pattern: str) -> None:
    with pytest.raises(NginxConfigError):
        nginx_t(_location_conf(pattern))
    minimal["routes"][0]["match"] = {"path": pattern, "path_type": "regex"}
    assert "netopt:routes[0].match" in _problems(minimal)


@pytest.mark.parametrize("pattern", ["^/(?<netopt_route>x)", "^/(?<http_x_api_key>x)"])
def test_a_named_group_may_not_shadow_a_variable_the_config_reads(minimal: dict[str, Any], pattern: str) -> None:
    """nginx turns named captures into variables: these would let the URI choose the route or a limit's key."""
    minimal["routes"][0]["match"] = {"path": pattern, "path_type": "regex"}
    assert "would become the nginx variable" in _problems(minimal)


@pytest.mark.parametrize("pattern", [r"^/(?<v>[0-9]+)/", r"^/v[[:digit:]]+/", r"^/\x{41}", r"^/a\h?b", r"^/(?i)ci/", r"^/\Qa.b\E/"])
def test_valid_pcre_is_accepted_rendered_and_passes_nginx_t(minimal: dict[str, Any], pattern: str) -> None:
    nginx_t(_location_conf(pattern))
    minimal["routes"][0]["match"] = {"path": pattern, "path_type": "regex"}
    spec = parse_spec(minimal)  # old main: (?<v>...) "unknown extension", \x{41} / \h "bad escape"
    nginx_t(render_proxy(plan_of(spec).gateway, docker_address_map(spec)))


def test_matching_is_byte_wise_and_case_sensitive_like_nginx() -> None:
    assert search(r"^/v[[:digit:]]+/", "/v12/x") and not search(r"^/v[[:digit:]]+/", "/vd]/x")  # re: the other way round
    assert search(r"^/a\Z", "/a\n")  # PCRE's \Z allows a final newline (a decoded %0A); re's does not
    assert not search(r"^/API/", "/api/")
    assert search(r"^/.{2}$", "/é")  # no UTF: é is two bytes, as nginx sees the decoded URI
    with pytest.raises(RegexError):
        compile_location_regex(r"^/\N{DIGIT ONE}")


def test_the_plans_resolver_uses_pcre(minimal: dict[str, Any]) -> None:
    """`/vd]` (the bare form of prefix `/vd]/`) goes to the regex route under `re`, to the prefix's own route under PCRE2."""
    minimal["routes"] = [
        {"name": "versioned", "match": {"path": r"^/v[[:digit:]]+", "path_type": "regex"}, "backends": [{"workload": "api"}]},
        {"name": "brackets", "match": {"path": "/vd]/"}, "backends": [{"workload": "web"}]},
        {"name": "web", "match": {"path": "/"}, "backends": [{"workload": "web"}]},
    ]
    spec = parse_spec(minimal)
    (server,) = plan_of(spec).gateway.servers
    bare = next(loc for loc in server.locations if (loc.kind, loc.path) == ("exact", "/vd]"))
    assert [rule.route.name for rule in bare.rules] == ["brackets"]
    assert expected_route(spec, "GET", "/vd]", "x") == "brackets" and expected_route(spec, "GET", "/v1", "x") == "versioned"


def test_probe_examples_exist_for_pcre_only_syntax() -> None:
    examples = regex_examples(r"^/(?<v>[0-9]+)/x")
    assert examples and all(search(r"^/(?<v>[0-9]+)/x", path) for path in examples)
