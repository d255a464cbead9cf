"""Bad-stack fixtures: small, named modifications of a shipped stack, run through the real analyzer harness.

A fixture (tests/policy/fixtures/*.yaml) names the shipped stack it modifies and what it expects:

    description: why this stack is bad
    base: prod                              # stacks/Pulumi.<base>.yaml
    expect: [{policy: routing-score, level: mandatory}]   # exactly these (policy, level) pairs are violated
    stack:                                  # edits of the stack's config (CLI keys, `netopt:<key>`)
      set: {"netopt:workloads[name=api].replicas": 1}
      append: {"netopt:routes": [{...}]}      # appended to a list (prepend: the same, at the front)
      remove: ["netopt:routes[name=static].rate_limit"]
      scale: {"netopt:workloads[*].response_time_ms": 22}
    resources:                              # edits of recorded resources: program-level mistakes that stack
      - match: {name: shop-staging-api-0}   #   config cannot express (a hand-written resource, a template bug)
        set: {ports: [...]}
        remove: [[spec, template, spec, containers, 0, readinessProbe]]
        replace: {path: [data, nginx.conf], old: "...", new: "..."}
        delete: true                        # the resource is not registered at all
        unknown: [[report, scores, routing]] # the value is unknown during preview
    template_bug: true                      # the program itself rendered the edited proxy configs: the report's
                                            #   config_sha256 follows the edit (without it, an edit is a hand edit)
    policy_config: {images-pinned: {requireDigest: true}}  # merged over policies/config/<environment>.json

A path is a list of keys, or a string of keys separated by dots; `[name=x]` selects the list item whose name is
x, `[3]` an index, `[*]` every item.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pulumi.output import UNKNOWN

from offline.program import RecordedResource, run_program
from offline.stack_config import cli_config, stack_file
from policies.deployed_configs import Resource, deployed_proxies
from policies.model import APP_NETWORK

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHIPPED = ("dev", "staging", "prod")
_STEP = re.compile(r"^([^\[\]]*)((?:\[[^\]]+\])*)$")


@dataclass(frozen=True)
class Fixture:
    name: str
    description: str
    base: str
    expect: frozenset[tuple[str, str]]
    stack: dict[str, Any]
    resources: list[dict[str, Any]]
    policy_config: dict[str, Any]
    template_bug: bool = False


def load_fixtures() -> list[Fixture]:
    fixtures = []
    for path in sorted(FIXTURES.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        fixtures.append(Fixture(
            name=path.stem,
            description=doc["description"],
            base=doc["base"],
            expect=frozenset((e["policy"], e["level"]) for e in doc.get("expect") or []),
            stack=doc.get("stack") or {},
            resources=doc.get("resources") or [],
            policy_config=doc.get("policy_config") or {},
            template_bug=bool(doc.get("template_bug")),
        ))
    return fixtures


def _steps(path: str | list[Any]) -> list[Any]:
    if isinstance(path, list):
        return path
    steps: list[Any] = []
    for part in path.split("."):
        match = _STEP.match(part)
        assert match, f"bad path step {part!r} in {path!r}"
        if match.group(1):
            steps.append(match.group(1))
        steps += re.findall(r"\[([^\]]+)\]", match.group(2))
    return steps


def _select(node: Any, step: Any) -> Iterator[tuple[Any, Any]]:
    """(container, key) pairs a step addresses inside `node`."""
    if isinstance(step, str) and step == "*":
        yield from ((node, i) for i in range(len(node)))
    elif isinstance(step, str) and "=" in step and isinstance(node, list):
        field, _, value = step.partition("=")
        found = [i for i, item in enumerate(node) if isinstance(item, dict) and str(item.get(field)) == value]
        assert found, f"no item with {field}={value}"
        yield from ((node, i) for i in found)
    elif isinstance(node, list):
        yield node, int(step)
    else:
        yield node, step


def _targets(root: Any, path: str | list[Any]) -> list[tuple[Any, Any]]:
    steps = _steps(path)
    nodes = [root]
    for step in steps[:-1]:
        nodes = [container[key] for node in nodes for container, key in _select(node, step)]
    return [pair for node in nodes for pair in _select(node, steps[-1])]


def edit(document: Any, edits: dict[str, Any]) -> Any:
    document = copy.deepcopy(document)
    for path, value in (edits.get("set") or {}).items():
        for container, key in _targets(document, path):
            container[key] = copy.deepcopy(value)
    for path, factor in (edits.get("scale") or {}).items():
        for container, key in _targets(document, path):
            container[key] = container[key] * factor
    for path, values in (edits.get("append") or {}).items():
        for container, key in _targets(document, path):
            container[key] = list(container[key]) + copy.deepcopy(values)
    for path, values in (edits.get("prepend") or {}).items():
        for container, key in _targets(document, path):
            container[key] = copy.deepcopy(values) + list(container[key])
    for path in edits.get("remove") or []:
        for container, key in sorted(_targets(document, path), key=lambda pair: -pair[1] if isinstance(pair[1], int) else 0):
            del container[key]
    replace = edits.get("replace")
    if replace:
        for container, key in _targets(document, replace["path"]):
            assert replace["old"] in container[key], f"{replace['old']!r} not found"
            container[key] = container[key].replace(replace["old"], replace["new"])
    for path in edits.get("unknown") or []:
        for container, key in _targets(document, path):
            container[key] = UNKNOWN
    return document


def stack_config(fixture: Fixture) -> dict[str, str]:
    """The base stack's CLI config with the fixture's stack edits applied (values decoded, edited, re-encoded)."""
    config = cli_config(stack_file(fixture.base))
    decoded = {k: json.loads(v) if v[:1] in "[{" else v for k, v in config.items()}
    edited = edit(decoded, fixture.stack)
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in edited.items()}


def recorded(fixture: Fixture, config: dict[str, str]) -> list[RecordedResource]:
    resources = run_program(config, fixture.base)
    for patch in fixture.resources:
        match = patch["match"]
        hits = [r for r in resources if all(getattr(r, k) == v for k, v in match.items())]
        assert hits, f"{fixture.name}: no recorded resource matches {match}"
        for resource in hits:
            if patch.get("delete"):
                resources.remove(resource)
                continue
            resource.inputs = edit(resource.inputs, patch)
            if resource.custom:
                resource.outputs = {}
            elif resource.outputs and "report" in resource.outputs and "report" in resource.inputs:
                resource.outputs = {**resource.outputs, "report": resource.inputs["report"]}
    if fixture.template_bug:
        _report_follows_config(resources)
    return resources


def _report_follows_config(resources: list[RecordedResource]) -> None:
    """Give the report the digest of each (edited) proxy config, the gateway's and the service proxies', as if the
    program had rendered it (every deployed copy of one proxy's config carries the same text)."""
    texts: dict[str, set[str]] = {}
    for proxy in deployed_proxies(Resource(r.type, r.name, r.inputs) for r in resources):
        texts.setdefault(proxy.name, set()).update(c.text for c in proxy.copies)
    digests = {}
    for proxy_name, copies in texts.items():
        (text,) = copies
        digests[proxy_name] = hashlib.sha256(text.encode()).hexdigest()
    for resource in resources:
        if resource.type == APP_NETWORK:
            for properties in (p for p in (resource.inputs, resource.outputs) if "report" in p):
                report = properties["report"]
                report["gateway"]["config_sha256"] = digests["gateway"]
                for entry in report.get("proxies") or []:
                    if entry["name"] in digests and entry["name"] != "gateway":
                        entry["config_sha256"] = digests[entry["name"]]
