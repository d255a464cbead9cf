"""Each deliberately bad stack trips exactly the policy (and level) its fixture names, through the real pack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from offline.analyzer import analyze, policy_config_path
from policies.catalog import GATES

from .overlays import Fixture, load_fixtures, recorded, stack_config

FIXTURES = load_fixtures()


def _policy_config(fixture: Fixture, environment: str) -> dict[str, object]:
    document: dict[str, object] = json.loads(policy_config_path(environment).read_text())
    for name, override in fixture.policy_config.items():
        current = document.get(name)
        document[name] = {**(current if isinstance(current, dict) else {}), **override}
    return document


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_fixture_trips_exactly_the_expected_policy(fixture: Fixture, stock_pack: Path) -> None:
    config = stack_config(fixture)
    resources = recorded(fixture, config)
    policy_config = _policy_config(fixture, config["netopt:environment"])
    analysis = analyze(resources, stack=fixture.base, config=config, policy_config=policy_config)
    assert analysis.violated() == fixture.expect, "\n".join(f"[{d.level}] {d.policy}: {d.message}" for d in analysis.diagnostics)
    # The same verdicts, byte for byte, from the pack on the library's stock path (the fast path's version guard tripped).
    stock = analyze(resources, stack=fixture.base, config=config, policy_config=policy_config, pack_dir=stock_pack)
    assert stock.diagnostics == analysis.diagnostics
    assert sorted(map(repr, stock.not_applicable)) == sorted(map(repr, analysis.not_applicable))
    for diagnostic in analysis.diagnostics:
        # Every message names the resource, the measured value against the threshold, and the fix.
        assert "Fix:" in diagnostic.message
        assert diagnostic.urn, "a violation is attached to a resource"
        assert diagnostic.resource and diagnostic.resource in diagnostic.message


def test_every_policy_has_a_fixture_that_trips_it() -> None:
    tripped = {policy for fixture in FIXTURES for policy, _ in fixture.expect}
    assert tripped == {gate.name for gate in GATES}
