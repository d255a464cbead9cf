"""Invalid --policy-pack-config documents are rejected with a clear message, and the pack applies what it is sent.

What is checked where (the Pulumi CLI is not installed here, so its Go code does not run):
- the schemas are the real pack's: each analysis starts the pack and reads every policy's `configSchema` from its
  GetAnalyzerInfo over gRPC (a bound such as `maximum <= 1` comes from the pack, not from the harness);
- the validation against them is the harness's reimplementation of the CLI's (offline.analyzer.
  reconcile_policy_config: JSON schema draft 7, unknown names and levels rejected, defaults filled in) — the
  tests on rejected documents check that copy, not the engine itself;
- what the pack does with an accepted config (levels, disabled policies, undeclared property names) is the real
  pack's behaviour, seen in its Analyze responses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from offline.analyzer import Analysis, PolicyConfigError, analyze, policy_config_path
from offline.program import RecordedResource, run_program
from offline.stack_config import cli_config, stack_file


@pytest.fixture(scope="module")
def prod() -> tuple[dict[str, str], list[RecordedResource]]:
    config = cli_config(stack_file("prod"))
    return config, run_program(config, "prod")


def _prod_config(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(policy_config_path("prod").read_text())
    document.update(overrides)
    return document


def _analyze(prod: tuple[dict[str, str], list[RecordedResource]], document: dict[str, Any] | Path) -> Analysis:
    config, resources = prod
    return analyze(resources, stack="prod", config=config, policy_config=document)


@pytest.mark.parametrize(("entry", "expected"), [
    ({"enforcementLevel": "mandatory", "maximum": "0.7"}, "peak-utilization: maximum: '0.7' is not of type 'number'"),
    ({"enforcementLevel": "mandatory", "maximum": 1.5}, "peak-utilization: maximum: 1.5 is greater than the maximum of 1"),
    ({"enforcementLevel": "blocking"}, "peak-utilization: 'blocking' is not a valid enforcement level"),
    (0.7, "peak-utilization: 0.7 is not a valid value; must be an enforcement level string or an object"),
])
def test_the_harness_rejects_wrong_types_and_values_against_the_packs_schema(
        prod: tuple[dict[str, str], list[RecordedResource]], entry: Any, expected: str) -> None:
    with pytest.raises(PolicyConfigError) as error:
        _analyze(prod, _prod_config(**{"peak-utilization": entry}))
    assert expected in str(error.value)
    assert str(error.value).startswith("invalid policy pack config for netopt:")


def test_the_harness_rejects_an_unknown_policy_name_listing_the_packs_names(prod: tuple[dict[str, str], list[RecordedResource]]) -> None:
    with pytest.raises(PolicyConfigError) as error:
        _analyze(prod, _prod_config(**{"peak-utilisation": {"maximum": 0.7}}))
    message = str(error.value)
    assert "peak-utilisation: no such policy in pack netopt" in message
    assert "peak-utilization" in message  # the known names are listed, so the typo is easy to spot


def test_every_problem_is_listed_at_once(prod: tuple[dict[str, str], list[RecordedResource]]) -> None:
    with pytest.raises(PolicyConfigError) as error:
        _analyze(prod, _prod_config(**{"routing-score": {"minimum": "high"}, "nope": "advisory"}))
    assert "routing-score: minimum: 'high' is not of type 'number'" in str(error.value)
    assert "nope: no such policy" in str(error.value)


def test_invalid_json_file_is_rejected(prod: tuple[dict[str, str], list[RecordedResource]], tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"routing-score": ')
    with pytest.raises(PolicyConfigError, match="not valid JSON"):
        _analyze(prod, path)


def test_unknown_property_is_reported_by_the_pack_itself(prod: tuple[dict[str, str], list[RecordedResource]]) -> None:
    # The engine's schema check lets undeclared property names through; the pack reports them at the gate's
    # level instead of running with the default threshold (a typo must not silently loosen a gate).
    analysis = _analyze(prod, _prod_config(**{"peak-utilization": {"enforcementLevel": "mandatory", "maximun": 0.5}}))
    assert analysis.violated() == {("peak-utilization", "mandatory")}
    assert "unknown property 'maximun' (known: maximum)" in analysis.diagnostics[0].message


def test_all_sets_every_level_and_a_policy_entry_overrides_it(prod: tuple[dict[str, str], list[RecordedResource]]) -> None:
    analysis = _analyze(prod, {"all": "advisory", "routing-score": {"enforcementLevel": "disabled"}})
    levels = {name: policy["level"] for name, policy in analysis.policies.items()}
    assert levels.pop("routing-score") == "disabled"
    assert set(levels.values()) == {"advisory"}


def test_without_a_config_every_gate_is_mandatory_with_schema_defaults(prod: tuple[dict[str, str], list[RecordedResource]]) -> None:
    analysis = _analyze(prod, {})
    assert {policy["level"] for policy in analysis.policies.values()} == {"mandatory"}
    assert analysis.config["peak-utilization"]["maximum"] == 0.7
    assert analysis.mandatory() == []


def test_a_disabled_policy_does_not_run_in_the_pack(prod: tuple[dict[str, str], list[RecordedResource]]) -> None:
    # An unlimited route trips rate-limits-protect-backends; disabled in the config, the pack must not report it.
    config = prod[0]
    document = _prod_config(**{"rate-limits-protect-backends": {"enforcementLevel": "disabled"}, "min-replicas": "advisory"})
    bad = json.loads(config["netopt:routes"])
    bad[0].pop("rate_limit")
    single = config["netopt:workloads"].replace('"replicas": 3', '"replicas": 1')
    bad_config = {**config, "netopt:routes": json.dumps(bad), "netopt:workloads": single}
    analysis = analyze(run_program(bad_config, "prod"), stack="prod", config=bad_config, policy_config=document)
    assert analysis.policies["rate-limits-protect-backends"]["level"] == "disabled"
    assert analysis.violated() == {("min-replicas", "advisory")}


def test_the_schemas_validated_against_are_the_ones_the_pack_declares_over_grpc(prod: tuple[dict[str, str], list[RecordedResource]]) -> None:
    from policies.catalog import all_policies

    analysis = _analyze(prod, {})
    declared = {p.name: p.config_schema.properties for p in all_policies() if p.config_schema is not None}
    assert declared, "the pack declares config schemas"
    for name, properties in declared.items():
        assert analysis.policies[name]["schema"] == properties, name
