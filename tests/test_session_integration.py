"""ConsoleSession + DockerBackend against the real daemon, on a tiny workspace (builds take seconds).

Checks that console builds store their fingerprint in history like CLI builds, and that the first
miss of every build (and of a freshly loaded console) is predicted from that fingerprint.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from attune_console.core.console_config import ConsoleConfig
from attune_console.core.fingerprint import ServiceFingerprint, fingerprint
from attune_console.core.history import History
from attune_console.core.model import Workspace
from attune_console.core.session import ConsoleSession, DockerBackend

RUNTIME = "attune-local/debian:bookworm-slim"


@pytest.fixture
def tiny(tmp_path: Path, docker_client: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A one-service workspace (unique project name) with a private history database."""
    monkeypatch.setenv("ATTUNE_CONSOLE_STATE_DIR", str(tmp_path / "state"))
    root = tmp_path / f"attune-tiny-{uuid.uuid4().hex[:8]}"
    root.mkdir()
    (root / "docker-compose.yaml").write_text(
        "services:\n  hello:\n    build:\n      context: .\n    command: ['sleep', 'infinity']\n"
    )
    (root / "Dockerfile").write_text(
        f"FROM {RUNTIME}\nRUN echo base > /base.txt\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt\n"
    )
    (root / "hello.txt").write_text(f"one {root.name}\n")  # unique: no cache hit from another run
    (root / "packs").mkdir()
    (root / "Cargo.toml").write_text('[workspace]\nmembers = []\nresolver = "2"\n')
    yield root
    for tag in (f"{root.name}-hello", f"{root.name}_hello"):
        with contextlib.suppress(Exception):
            docker_client.images.remove(tag, force=True)


@contextlib.asynccontextmanager
async def console(root: Path) -> AsyncIterator[ConsoleSession]:
    session = ConsoleSession(root, DockerBackend(root, ConsoleConfig()))
    try:
        yield session
    finally:
        await session.stop(timeout=30)


async def build_and_wait(session: ConsoleSession, target: str) -> None:
    await session.build(target)
    task = session._tasks[target]
    await asyncio.wait_for(asyncio.shield(task), 120)


async def test_console_builds_record_fingerprints_and_predict_the_first_miss(tiny: Path) -> None:
    async with console(tiny) as session:
        await build_and_wait(session, "hello")
        row = session.rows["hello"]
        assert row.build_state == "up to date", [n.message for n in session.notices]
        rec = History().last_success("hello", workspace=str(tiny))
        assert rec is not None and rec.fingerprint, "the console's build stored no fingerprint"
        stored = ServiceFingerprint.from_json(rec.fingerprint)
        assert stored == fingerprint(Workspace.load(tiny), "hello")

    # Edit the copied file with no watcher running: a build started without watch mode still
    # knows why its first step missed (from the stored fingerprint), and the run confirms it.
    (tiny / "hello.txt").write_text(f"two {tiny.name}\n")
    async with console(tiny) as session:
        row = session.rows["hello"]
        assert row.stale is None
        await build_and_wait(session, "hello")
        assert row.build_reason is not None and row.build_reason.instruction == "COPY hello.txt /hello.txt"
        assert "changed since the last build" in row.build_reason.reason
        assert row.run is not None and row.run.first_missed_step is not None
        assert "COPY hello.txt" in row.run.first_missed_step.name
        # Built again: nothing changed, and the prediction says so.
        why = await session.predict("hello")
        assert why is not None and why.stage is None

    # A console loaded after an edit shows the row stale with the step that will miss.
    (tiny / "hello.txt").write_text(f"three {tiny.name}\n")
    async with console(tiny) as session:
        await session.predict_all()
        row = session.rows["hello"]
        assert row.build_state == "stale" and row.stale is not None
        assert row.stale.instruction == "COPY hello.txt /hello.txt"
