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
