"""Data-plane behaviour tests: the project's rendered nginx.conf on Debian's nginx, loopback backends.

Marked ``dataplane`` (``pytest -m dataplane`` / ``-m "not dataplane"``). Needs the
``nginx`` binary (Debian package ``nginx``) and, for the load tests, ``wrk``;
without them the tests fail (``NETOPT_DATAPLANE_OPTIONAL=1`` turns that into a skip).
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from components.spec.schema import Spec
    from testbed.gateway import Gateway, GatewayFactory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "dataplane: runs the rendered nginx.conf on a real nginx against loopback backends")


def _require(tool: str) -> None:
    from testbed.tools import MissingToolError, find_tool

    try:
        find_tool(tool)
        return
    except MissingToolError as error:
        msg = str(error)
    if os.environ.get("NETOPT_DATAPLANE_OPTIONAL") == "1":
        pytest.skip(msg)
    pytest.fail(msg + "; set NETOPT_DATAPLANE_OPTIONAL=1 to skip the data-plane tests instead", pytrace=False)


@pytest.fixture(autouse=True)
def _nginx_present() -> None:
    _require("nginx")


@pytest.fixture
def need_wrk() -> None:
    _require("wrk")


@pytest.fixture
def gateway_factory() -> Iterator[GatewayFactory]:
    """``gateway_factory(spec, **Gateway kwargs)`` -> started Gateway, stopped after the test."""
    from testbed.gateway import Gateway

    started: list[Gateway] = []

    def make(spec: Spec, **kw: Any) -> Gateway:
        gw = Gateway(spec, **kw).start()
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()
