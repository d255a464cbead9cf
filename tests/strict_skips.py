"""Under CI a skipped test is a failure: a stage CI expects to run must not vanish into a skip.

Active when `--fail-on-skip` is given or the environment says CI (`CI=true`, as GitHub Actions and `.ci/run` set
it). Every skip — a `skipif`, `pytest.skip()` in a fixture or test, a module skipped at collection, an opt-out
such as NETOPT_DATAPLANE_OPTIONAL=1 — is reported as a failure naming the reason. Deselection (`-m "not e2e"`)
is not a skip and is unaffected; an expected failure (xfail) stays what it is.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

TRUTHY = {"1", "true", "yes"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fail-on-skip", action="store_true", default=False,
                     help="report every skipped test as a failure (on by default when CI=true)")


def fail_on_skip(config: pytest.Config) -> bool:
    return bool(config.getoption("--fail-on-skip")) or os.environ.get("CI", "").strip().lower() in TRUTHY


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr: Any = report.longrepr
    reason = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


def _as_failure(report: pytest.TestReport | pytest.CollectReport) -> None:
    report.outcome = "failed"
    report.longrepr = (f"skipped, and skips fail under CI (CI=true or --fail-on-skip): {_reason(report)}\n"
                       "Install what the test needs (see README, Testing) instead of skipping it.")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and fail_on_skip(item.config):
        _as_failure(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()
    if report.skipped and fail_on_skip(collector.config):
        _as_failure(report)
