"""Small things users see (issue 20): a cookie hash key names the character nginx cannot read, long lists are cut."""

from __future__ import annotations

from typing import Any

import pytest

from components.spec.validation import SpecError, parse_spec
from policies.strategy import _listed


@pytest.mark.parametrize(("key", "character"), [("cookie:md.sid", "'.'"), ("cookie:session-id", "'-'")])
def test_a_cookie_name_nginx_cannot_read_names_the_character(minimal: dict[str, Any], key: str, character: str) -> None:
    minimal["gateway"] |= {"algorithm": "consistent_hash", "hash_key": key}
    with pytest.raises(SpecError) as err:
        parse_spec(minimal)
    assert f"the character {character} cannot be in the cookie name" in str(err.value)


def test_a_cookie_name_of_variable_characters_is_accepted(minimal: dict[str, Any]) -> None:
    minimal["gateway"] |= {"algorithm": "consistent_hash", "hash_key": "cookie:md_sid"}
    assert parse_spec(minimal).gateway.hash_key == "cookie:md_sid"


def test_ten_thousand_names_are_cut_with_a_count() -> None:
    names = [f"'r{i}'" for i in range(10_001)]
    assert _listed(names) == ", ".join(names[:10]) + " and 9,991 more"
    assert _listed(names[:3]) == "'r0', 'r1', 'r2'"


def _set(path: str, value: Any) -> Any:
    def change(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = raw
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is _MISSING:
            del node[last]
        else:
            node[last] = value
    return change


_MISSING = object()


@pytest.mark.parametrize(("path", "value", "line"), [
    ("routes", [], "netopt:routes: needs at least 1 item, got 0"),
    ("gateway.algorithm", "least_con", "netopt:gateway.algorithm: the text 'least_con' is not one of round_robin, weighted, least_conn, "
     "ip_hash, consistent_hash, latency_weighted, latency_optimal. Did you mean 'least_conn'?"),
    ("gateway.algorithm", "fastest", "netopt:gateway.algorithm: the text 'fastest' is not one of round_robin, weighted, least_conn, "
     "ip_hash, consistent_hash, latency_weighted, latency_optimal."),
    ("workloads.0.image", True, "netopt:workloads[0].image: expected text, got true (a boolean); quote it if you mean the text ('true')"),
    ("workloads.0.replicas", "3", "netopt:workloads[0].replicas: expected a whole number, got the text '3'; write the number without quotes"),
    ("workloads.0.replicas", 2.5, "netopt:workloads[0].replicas: expected a whole number, got 2.5"),
    ("workloads.0.replicas", True, "netopt:workloads[0].replicas: expected a whole number, got true (a boolean); a boolean is not a "
     "number, write the number itself"),
    ("workloads.0.replicas", 100_000, "netopt:workloads[0].replicas: must be at most 256, got 100000"),
    ("workloads.0.replicas", 10**23, "netopt:workloads[0].replicas: must be at most 256, got 100000000000000000000000"),
    ("workloads.0.replicas", 10**24, "netopt:workloads[0].replicas: must be at most 256, got a number of 25 digits"),
    ("workloads.0.replicas", 10**40, "netopt:workloads[0].replicas: must be at most 256, got a number of 41 digits"),
    ("gateway", [1], "netopt:gateway: expected a mapping (key: value), got a list"),
    ("workloads.0.image", _MISSING, "netopt:workloads[0].image: required key is missing; add it"),
    ("workloads.1.name", "Bad_Name", "netopt:workloads[1].name: 'Bad_Name' does not match the expected form ^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$"),
])
def test_each_kind_of_mistake_reads_as_written_here(minimal: dict[str, Any], path: str, value: Any, line: str) -> None:
    """The report's line for one mistake, word for word: what a user reads (checked by hand, not produced by the code)."""
    _set(path, value)(minimal)
    with pytest.raises(SpecError) as err:
        parse_spec(minimal)
    assert f"  - {line}" in str(err.value).splitlines()


def test_a_header_hash_key_names_the_character(minimal: dict[str, Any]) -> None:
    minimal["gateway"] |= {"algorithm": "consistent_hash", "hash_key": "header:X_Y"}
    with pytest.raises(SpecError) as err:
        parse_spec(minimal)
    assert ("netopt:gateway.hash_key: hash_key 'header:X_Y': the character '_' cannot be in a header name here (letters, digits, '-')"
            in str(err.value))
    minimal["gateway"]["hash_key"] = "header:X-Tenant-9"
    assert parse_spec(minimal).gateway.hash_key == "header:X-Tenant-9"
