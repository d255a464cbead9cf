"""Differential fuzzing, the `make test` profile: generated adversarial stacks on both targets, checked against
Debian's nginx and an independent oracle (testbed/fuzzcheck.py says what each check asserts).

`bench/fuzz.py --examples 10000` runs the same checks at scale; here a small profile keeps the suite short.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from testbed.fuzzcheck import Finding, InvalidDrawError, ProjectCopy, check_entry_point, check_invalid, check_valid
from testbed.fuzzspecs import faults, requests, stacks
from testbed.nginx_oracle import Request, choose_route
from testbed.specs import make_spec

pytestmark = pytest.mark.dataplane

PROFILE = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def _assert_none(findings: list[Finding]) -> None:
    assert not findings, "\n".join(str(f) for f in findings[:5])


@PROFILE
@given(st.data())
def test_valid_stacks_pass_nginx_t_and_route_as_the_oracle_says(data: st.DataObject) -> None:
    generated = data.draw(stacks(), label="stack")
    try:
        findings = check_valid(generated, data.draw(requests(generated), label="requests"))
    except InvalidDrawError:
        reject()  # nothing ran on nginx: draw another (too many rejections fail the test as unsatisfiable)
    _assert_none(findings)


@settings(PROFILE, max_examples=150)
@given(st.data())
def test_invalid_stacks_get_one_report_naming_every_problem(data: st.DataObject) -> None:
    raw, expected = data.draw(faults(data.draw(stacks(), label="stack")), label="faulty config")
    _assert_none(check_invalid(raw, expected))


@pytest.fixture(scope="module")
def project() -> Any:
    copy = ProjectCopy()
    yield copy
    copy.remove()


@settings(PROFILE, max_examples=4)
@given(st.data(), st.booleans())
def test_entry_point_exits_1_with_the_report_and_writes_nothing(project: ProjectCopy, data: st.DataObject, duplicate_key: bool) -> None:
    raw, expected = data.draw(faults(data.draw(stacks(), label="stack")), label="faulty config")
    _assert_none(check_entry_point(project, raw, expected, duplicate_key=duplicate_key))


def test_a_draw_that_is_invalid_never_passes_as_valid() -> None:
    """A drawn regex PCRE2 refuses (a group name twice): the report must name it, and then nginx never ran on the
    example, so it is no pass of the valid-stack check: check_valid raises for a redraw."""
    from testbed.fuzzspecs import Generated

    raw = make_spec({"a": 1}, [{"name": "r", "match": {"path": "/"}, "to": {"a": 1}}]).model_dump(mode="json", exclude_unset=True)
    raw["routes"][0]["match"].update(path_type="regex", path="^/(?<a>x)(?<a>y)")
    with pytest.raises(InvalidDrawError, match="a regex PCRE2 refuses"):
        check_valid(Generated(raw, {}), [])


def test_oracle_follows_nginx_location_order() -> None:
    """The oracle itself, on hand-picked cases from nginx's documentation and the README's routing rules."""
    spec = make_spec({"a": 1, "b": 1}, [
        {"name": "exact", "match": {"path": "/logo.png", "path_type": "exact"}, "to": {"a": 1}},
        {"name": "png", "match": {"path": r"\.png$", "path_type": "regex"}, "to": {"a": 1}},
        {"name": "named", "match": {"path": r"^/u/(?P<id>\d++)$", "path_type": "regex"}, "to": {"a": 1}},
        {"name": "img", "match": {"path": "/img/"}, "to": {"b": 1}},
        {"name": "img_post", "match": {"path": "/img/", "methods": ["POST"], "headers": {"X-Tenant": "a|b"}}, "to": {"a": 1}},
        {"name": "host_root", "match": {"host": "*.example.com", "path": "/"}, "to": {"b": 1}},
        {"name": "root", "match": {"path": "/"}, "to": {"a": 1}},
    ])
    cases = [
        (Request("GET", "x", "/logo.png"), "exact"),               # = beats a regex
        (Request("GET", "x", "/img/a.png"), "png"),                # a regex beats a longer prefix
        (Request("GET", "x", "/u/42"), "named"),                   # PCRE2 possessive quantifier
        (Request("GET", "x", "/u/4x"), "root"),
        (Request("GET", "x", "/img/a"), "img"),                    # longest prefix
        (Request("POST", "x", "/img/a", (("x-tenant", "a|b"),)), "img_post"),
        (Request("POST", "x", "/img/a", (("X_Tenant", "a|b"),)), "img"),  # nginx ignores a header with "_"
        (Request("GET", "a.b.Example.com:8080", "/z"), "host_root"),  # wildcard host, case and port ignored
        (Request("GET", "example.com", "/z"), "root"),             # *.example.com does not cover example.com
    ]
    assert [choose_route(spec, request) for request, _ in cases] == [want for _, want in cases]


def test_both_oracles_match_prefixes_by_whole_segments() -> None:
    """Gateway API PathPrefix in both oracles: segments, not characters; a trailing slash in the prefix does not count."""
    from testbed.routing import expected_route

    spec = make_spec({"a": 1, "b": 1}, [
        {"name": "cart", "match": {"path": "/cart"}, "to": {"a": 1}},
        {"name": "items", "match": {"path": "/cart/items/", "methods": ["GET"]}, "to": {"b": 1}},
        {"name": "cartx", "match": {"path": "/cartx"}, "to": {"b": 1}},
        {"name": "carts", "match": {"path": "^/carts$", "path_type": "regex"}, "to": {"b": 1}},
        {"name": "shop", "match": {"host": "shop.example.com", "path": "/cart/"}, "to": {"b": 1}},
        {"name": "root", "match": {"path": "/"}, "to": {"a": 1}},
    ])
    cases = [("GET", "x", "/cart", "cart"), ("GET", "x", "/cart/", "cart"), ("GET", "x", "/cart/1", "cart"),
             ("GET", "x", "/cartx", "cartx"), ("GET", "x", "/cartx/1", "cartx"), ("GET", "x", "/carty", "root"),
             ("GET", "x", "/carts", "carts"), ("GET", "x", "/car", "root"),
             ("GET", "x", "/cart/items", "items"), ("GET", "x", "/cart/items/3", "items"), ("POST", "x", "/cart/items", "cart"),
             ("GET", "x", "/cart/itemsx", "cart"), ("GET", "shop.example.com", "/cart", "shop"),
             ("GET", "shop.example.com", "/cartx", "cartx")]
    assert [choose_route(spec, Request(m, h, p)) for m, h, p, _ in cases] == [want for *_, want in cases]
    assert [expected_route(spec, m, p, h) for m, h, p, _ in cases] == [want for *_, want in cases]
