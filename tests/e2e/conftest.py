"""Fixtures for the end-to-end stage: a private dockerd and the locally built images.

Tests that need them carry the ``e2e`` marker (registered here). They need
root plus Debian's docker.io, debootstrap and iproute2 (``e2e/install-deps.sh``);
without them they fail, unless ``NETOPT_E2E_OPTIONAL=1`` turns the failure into a skip.
"""
from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the e2e package lives at the repo root
    sys.path.insert(0, str(REPO))

from e2e.dockerd import Dockerd  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "e2e: end-to-end test against a real, private dockerd (root, docker.io, debootstrap, iproute2)",
    )


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "e2e tests need root"
    for tool in ("dockerd", "containerd", "runc", "docker-proxy", "debootstrap", "ip", "nsenter", "capsh"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (run e2e/install-deps.sh)"
    return None


def require_e2e() -> None:
    """A missing tool fails the stage (a skipped e2e stage would hide the gap); opt out with NETOPT_E2E_OPTIONAL=1."""
    why = _missing()
    if why is None:
        return
    if os.environ.get("NETOPT_E2E_OPTIONAL") == "1":
        pytest.skip(why)
    pytest.fail(f"{why}; run `bash e2e/install-deps.sh` as root (or set NETOPT_E2E_OPTIONAL=1 to skip)", pytrace=False)


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    """One private dockerd for the session (stopped by PID and cleaned up at the end)."""
    require_e2e()
    Dockerd.cleanup_stale()
    d = Dockerd()
    d.start()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="session")
def docker_client(dockerd: Dockerd) -> Any:
    return dockerd.client


@pytest.fixture(scope="session")
def e2e_images(docker_client: Any) -> dict[str, str]:
    """``netopt/gateway:e2e`` and ``netopt/backend:e2e`` built into the session's dockerd."""
    from e2e.images import build_images

    return build_images(docker_client)


@pytest.fixture
def clean_daemon(dockerd: Dockerd) -> Iterator[Dockerd]:
    """A test that leaves containers/networks/volumes behind (e.g. failing midway) gets them removed."""
    yield dockerd
    dockerd.remove_all_objects()
