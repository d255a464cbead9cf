"""`make plan`'s text output shows what the README and the policy messages point to (issue #11, 17)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from offline import plan
from offline.stack_config import PROJECT_DIR


@pytest.fixture(scope="module")
def dev_outputs() -> tuple[str, dict[str, object]]:
    document = plan.build_plan_document("dev")
    return plan.render_text(document), json.loads(json.dumps(document))


def test_every_t_i_is_shown_with_its_replica(dev_outputs: tuple[str, dict[str, object]]) -> None:
    """The load-balancing policy's fix says "see t_i in `make plan`": the text must list them, as the JSON does."""
    text, document = dev_outputs
    (line,) = [ln for ln in text.splitlines() if ln.strip().startswith("t_i:")]
    t_seconds = document["scores"]["inputs"]["t_seconds"]  # type: ignore[index]
    assert t_seconds
    for item in t_seconds:
        assert f"{item['item']}={item['value']:.3f}s" in line


def test_the_resource_count_and_the_policy_count_are_explained(dev_outputs: tuple[str, dict[str, object]]) -> None:
    text, document = dev_outputs
    resources = len(document["resources"])  # type: ignore[arg-type]
    assert document["policy"]["analyzed_resources"] == resources + 1  # type: ignore[index]
    assert f"({resources} resources; the policy pack also analyzes the root pulumi:pulumi:Stack)" in text
    assert f"{resources + 1} resources" in text


def test_make_plan_reports_the_plans_own_status_for_an_unknown_stack() -> None:
    """GNU make exits 2 for any failed recipe; its error line carries the plan's own status (README, Commands)."""
    result = subprocess.run(["make", "--no-print-directory", "plan", "STACK=no-such-stack"], cwd=PROJECT_DIR,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "netopt:" in result.stderr and "no-such-stack" in result.stderr
    assert "Error 2" in result.stderr


def test_every_proxy_and_call_is_shown_with_its_policy(dev_outputs: tuple[str, dict[str, object]]) -> None:
    """The plan JSON's `proxies` and `edges` (issue 18) are tables of the text, one row each, with the stack's calls."""
    text, document = dev_outputs
    proxies: Any = document["proxies"]
    edges: Any = document["edges"]
    assert [(p["name"], p["kind"]) for p in proxies] == [("gateway", "gateway"), ("api-proxy", "service"), ("auth-proxy", "service")]
    # dev declares web -> api, api -> auth and api-canary -> auth (stacks/Pulumi.dev.yaml).
    assert [(e["caller"], e["callee"]) for e in edges] == [("web", "api"), ("api", "auth"), ("api-canary", "auth")]
    for edge in edges:
        row = next(ln for ln in text.splitlines() if ln.strip().startswith(f"{edge['caller']} -> {edge['callee']} "))
        assert f"{edge['limit_rps']:.1f}" in row and str(edge["max_concurrency"]) in row
    for proxy in proxies[1:]:
        assert (PROJECT_DIR / "build" / "dev" / proxy["config"]).is_file()
