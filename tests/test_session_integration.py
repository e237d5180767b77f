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


async def _until(check: Any, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_one_packs_helper_for_the_console_and_watched_paths_limit_the_refresh(
    demo_copy: Path, docker_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import docker.errors

    from attune_console.core.packs import HELPER_LABEL
    from attune_console.core.session import PACKS

    monkeypatch.setenv("ATTUNE_CONSOLE_STATE_DIR", str(tmp_path / "state"))
    backend = DockerBackend(demo_copy, ConsoleConfig())
    session = ConsoleSession(demo_copy, backend)
    volume = backend.project.volumes["packs_data"]

    def helpers() -> list[str]:
        found = docker_client.containers.list(all=True, filters={"label": f"{HELPER_LABEL}={volume}"})
        return sorted(c.id for c in found)

    def gone(cid: str) -> bool:
        try:
            docker_client.containers.get(cid)
        except docker.errors.NotFound:
            return True
        return False

    try:
        await session.refresh_packs()  # nothing known yet: a full refresh (creates the volume)
        assert backend.last_refresh_paths is None
        assert session.rows[PACKS].build_state == "in sync", [n.message for n in session.notices]
        first = helpers()
        assert len(first) == 1, "status and refresh should share one helper"

        session.set_watch(True)
        await session.check_packs()  # in sync while watching: from now on the watcher knows the changes
        await asyncio.sleep(0.5)  # let the watcher start
        action = sorted((demo_copy / "packs" / "core" / "actions").glob("*.yaml"))[0]
        action.write_text(action.read_text() + f"\n# edited {uuid.uuid4().hex}\n")
        await _until(lambda: session.rows[PACKS].build_state == "stale", 15, "the watcher to see the edit")
        await session.refresh_packs()
        assert backend.last_refresh_paths == [str(action)]
        assert session.rows[PACKS].build_state == "in sync"
        assert helpers() == first, "the refresh should reuse the console's helper"

        # Daemon loss (as the monitor reports it): the helper is closed; it reopens afterwards.
        session._set_daemon(False, "daemon gone")
        await _until(lambda: gone(first[0]), 20, "the helper to be removed")
        session.set_watch(False)
        session._set_daemon(True, "")
        await session.check_packs()
        again = helpers()
        assert len(again) == 1 and again != first
    finally:
        await session.stop(timeout=30)
        for cid in helpers():
            await _until(lambda cid=cid: gone(cid), 20, "the helper to go on stop")  # type: ignore[misc]
        with contextlib.suppress(Exception):
            docker_client.volumes.get(volume).remove(force=True)


async def test_a_running_container_older_than_its_sources_shows_stale(tiny: Path, docker_client: Any) -> None:
    project = f"{tiny.name}"
    try:
        async with console(tiny) as session:
            await build_and_wait(session, "hello")
            await session.up()
            assert any("stack started" in n.message for n in session.notices), [
                n.message for n in session.notices
            ]
        (tiny / "hello.txt").write_text(f"newer {tiny.name}\n")  # the image now predates the source
        backend = DockerBackend(tiny, ConsoleConfig())
        session = ConsoleSession(tiny, backend)
        try:
            status = await backend.container_status()
            hello = status["hello"]
            assert hello.state == "running" and hello.source_newer, hello
            session._apply_status(status)  # what the monitor does with it
            row = session.rows["hello"]
            assert row.build_state == "stale" and row.stale is not None
            assert "source changed" in row.stale.reason
        finally:
            await session.stop(timeout=30)
    finally:
        found = docker_client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={project}"}
        )
        for c in found:
            with contextlib.suppress(Exception):
                c.remove(force=True)
        for net in docker_client.networks.list(names=[f"{project}_default"]):
            with contextlib.suppress(Exception):
                net.remove()


async def test_a_dockerfile_edited_with_watch_off_is_fingerprinted_as_it_is_now(tiny: Path) -> None:
    async with console(tiny) as session:
        await build_and_wait(session, "hello")
        dockerfile = tiny / "Dockerfile"
        dockerfile.write_text(
            dockerfile.read_text().replace("RUN cat /hello.txt", "RUN cat /hello.txt /base.txt")
        )
        await build_and_wait(session, "hello")
        row = session.rows["hello"]
        assert row.build_state == "up to date", [n.message for n in session.notices]
        assert row.build_reason is not None and row.build_reason.instruction == "RUN cat /hello.txt /base.txt"
        assert "new step" in row.build_reason.reason
        rec = History().last_success("hello", workspace=str(tiny))
        assert rec is not None and rec.fingerprint
        assert ServiceFingerprint.from_json(rec.fingerprint) == fingerprint(Workspace.load(tiny), "hello")
