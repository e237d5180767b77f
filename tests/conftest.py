"""Shared fixtures.

Docker-backed tests use the ``docker_client`` fixture (or the ``docker`` marker).
Outside CI they skip when no daemon answers, so unit tests stay runnable on a
laptop; with ``CI=true`` a missing daemon is a failure, never a skip, because
CI must prove the real thing.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "demo-workspace"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(msg: str) -> None:
    """Something a test needs (daemon, compose CLI, base image) is absent: fail in CI, else skip.

    CI installs and starts everything itself, so there an absence is a broken set-up, never a
    reason to pass quietly.
    """
    if _in_ci():
        pytest.fail(msg)
    pytest.skip(msg)


def _docker_or_fail():  # type: ignore[no-untyped-def]
    import docker

    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except Exception as exc:
        msg = (
            f"Docker daemon not reachable ({exc}). Start it (dockerd &) and run "
            "demo-workspace/scripts/bootstrap-images.sh; see .ci/run."
        )
        missing(msg)
    return client


@pytest.fixture(scope="session")
def docker_client():  # type: ignore[no-untyped-def]
    """A docker SDK client for the real daemon (fails in CI when absent)."""
    client = _docker_or_fail()
    yield client
    client.close()


def _demo_ignore(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n in {"target", ".git", "__pycache__"}}


@pytest.fixture
def demo_copy(tmp_path: Path) -> Iterator[Path]:
    """A private copy of demo-workspace (including its git-ignored ``.env``).

    The directory name is unique so the compose project name, volume names and
    image tags of one test never collide with another's.
    """
    dest = tmp_path / f"attune-demo-{uuid.uuid4().hex[:8]}"
    shutil.copytree(DEMO, dest, symlinks=True, ignore=_demo_ignore)
    yield dest
