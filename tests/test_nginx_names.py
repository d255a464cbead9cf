"""Every spec string that becomes an nginx name goes through one injective mapping (issue 11 items 1 and 2)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import crossplane
from hypothesis import given
from hypothesis import strategies as st

from components.plan.addressing import docker_address_map
from components.plan.names import dispatch_var, escape, unescape, upstream_name
from components.render.nginx import render_proxy
from components.spec.base import DNS_LABEL, IDENTIFIER
from components.spec.schema import HOST_NAME
from components.spec.validation import parse_spec
from testbed.nginx_runner import nginx_t
from tests.conftest import plan_of


@given(st.text(), st.text())
def test_escape_is_injective_on_any_text(a: str, b: str) -> None:
    assert (escape(a) == escape(b)) == (a == b)


@given(st.text())
def test_escape_is_inverted_by_unescape_and_stays_in_the_variable_alphabet(text: str) -> None:
    assert unescape(escape(text)) == text
    assert re.fullmatch(r"[a-z0-9_]*", escape(text))


_hosts = st.none() | st.from_regex(HOST_NAME, fullmatch=True) | st.sampled_from(["default", "_", "a-b.com", "a.b.com", "a_b.com"])


@given(_hosts, st.integers(0, 10_000), _hosts, st.integers(0, 10_000))
def test_dispatch_variables_are_distinct_per_server_and_location(h1: str | None, i1: int, h2: str | None, i2: int) -> None:
    assert (dispatch_var(h1, i1) == dispatch_var(h2, i2)) == ((h1, i1) == (h2, i2))


_backends = st.lists(st.tuples(st.from_regex(DNS_LABEL, fullmatch=True), st.integers(1, 10_000)), min_size=1, max_size=4)


@given(_backends, _backends)
def test_upstream_names_are_distinct_per_backend_split(a: list[tuple[str, int]], b: list[tuple[str, int]]) -> None:
    def name(backends: list[tuple[str, int]]) -> str:
        return upstream_name([(w, None) for w, _ in backends] if len(backends) == 1 else [(w, n) for w, n in backends])

    same = [w for w, _ in a] == [w for w, _ in b] and (len(a) == 1 or a == b)
    assert (name(a) == name(b)) == same


@given(st.from_regex(IDENTIFIER, fullmatch=True), st.from_regex(IDENTIFIER, fullmatch=True))
def test_limit_names_that_differ_give_different_zones(a: str, b: str) -> None:
    from components.plan.names import concurrency_limit_name, rate_limit_name

    assert (rate_limit_name(a) == rate_limit_name(b)) == (a == b)
    assert rate_limit_name(a) != concurrency_limit_name(b)


def _colliding_spec(minimal: dict[str, Any]) -> dict[str, Any]:
    """Hosts, limits and headers that the old `-`/`.` -> `_` mapping merged, and a route literally named `default`."""
    minimal["rate_limits"] = [{"name": "per-ip", "rps": 10}, {"name": "per_ip", "rps": 20, "key": "global"},
                              {"name": "by-key", "rps": 5, "key": "header:X-Api-Key"}]
    minimal["concurrency_limits"] = [{"name": "per-ip", "connections": 3}]
    minimal["routes"] = [
        {"name": f"{name}_post", "match": {"host": host, "path": "/x/", "methods": ["POST"]}, "backends": [{"workload": "api"}],
         "rate_limit": "per-ip"}
        for host, name in (("a-b.com", "dash"), ("a.b.com", "dot"), ("default", "named"))
    ] + [
        {"name": name, "match": {"host": host, "path": "/x/", "methods": ["GET"]}, "backends": [{"workload": "web"}], "rate_limit": "per_ip"}
        for host, name in (("a-b.com", "dash"), ("a.b.com", "dot"), ("default", "named"))
    ] + [
        {"name": "default", "match": {"path": "/x/", "methods": ["POST"]}, "backends": [{"workload": "api"}], "rate_limit": "by-key",
         "concurrency_limit": "per-ip"},
        {"name": "include", "match": {"path": "/"}, "backends": [{"workload": "web"}], "rate_limit": "per-ip"},
    ]
    return minimal


def test_colliding_spec_strings_render_distinct_names_that_nginx_accepts(minimal: dict[str, Any], tmp_path: Path) -> None:
    spec = parse_spec(_colliding_spec(minimal))
    text = render_proxy(plan_of(spec).gateway, docker_address_map(spec))
    nginx_t(text)  # old main: limit_req_zone "netopt_rl_per_ip" is already bound
    (tmp_path / "nginx.conf").write_text(text)
    (http,) = [d for d in crossplane.parse(str(tmp_path / "nginx.conf"), single=True)["config"][0]["parsed"] if d["directive"] == "http"]
    written = Counter(d["args"][-1] for d in http["block"] if d["directive"] in ("map", "geo"))
    assert max(written.values()) == 1, [v for v, n in written.items() if n > 1]  # nginx keeps only the last map of a variable
    zones = Counter(d["args"][1].removeprefix("zone=").split(":")[0] for d in http["block"] if d["directive"] in ("limit_req_zone",))
    zones += Counter(d["args"][1].removeprefix("zone=").split(":")[0] for d in http["block"] if d["directive"] == "limit_conn_zone")
    assert sorted(zones) == ["netopt_cl_per_2dip", "netopt_rl_by_2dkey", "netopt_rl_per_2dip", "netopt_rl_per__ip"]
    assert max(zones.values()) == 1
    # A route named `default` or `include` is a map key, not the map's default or an include of a file.
    assert "\\default $netopt_key_x_2dapi_2dkey;" in text and "\\include $binary_remote_addr;" in text
