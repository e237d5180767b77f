"""Snapshot tests (pytest-textual-snapshot) of the main screen: idle, building, failed, help.

Update after an intended visual change with ``pytest tests/test_tui_snapshots.py --snapshot-update``
and review the SVGs in tests/__snapshots__/.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_tui_fakes import T0, FakeBackend, Step, api_steps

from attune_console.core import progress
from attune_console.core.session import ConsoleSession, ContainerStatus
from attune_console.tui import panes
from attune_console.tui.app import AttuneConsoleApp

SIZE = (120, 36)
NOW = T0 + 42.0


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Running steps show elapsed time and images their age: freeze the clock they read."""
    fake = SimpleNamespace(time=lambda: NOW)
    monkeypatch.setattr(progress, "time", fake)
    monkeypatch.setattr(panes, "time", fake)


def make(backend: FakeBackend) -> tuple[AttuneConsoleApp, ConsoleSession]:
    backend.status = {
        "api": ContainerStatus("running", "healthy", image_created=T0 - 3 * 3600),
        "executor": ContainerStatus("running", None, image_created=T0 - 86400 * 2),
        "worker-shell": ContainerStatus("exited", None, image_created=T0 - 600),
        "init-packs": ContainerStatus("exited", None),
    }
    session = ConsoleSession(Path("/work/demo"), backend)
    session.monitor_interval = 3600  # one status read at start; nothing moves afterwards
    return AttuneConsoleApp(Path("/work/demo"), session=session), session


async def settle(pilot, cond, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "app did not settle"
        await pilot.pause(0.05)
    await pilot.pause(0.3)


def test_idle(snap_compare) -> None:  # type: ignore[no-untyped-def]
    app, session = make(FakeBackend())

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot, lambda: session.daemon_ok is True and session.rows["packs"].packs is not None)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_building_mixed_cached_and_done(snap_compare) -> None:  # type: ignore[no-untyped-def]
    steps = [
        *api_steps()[:9],
        Step(
            "[builder 4/4] RUN cargo build --release --bin attune-api",
            "hold",
            9.0,
            ("   Compiling attune-api",),
        ),
    ]
    fb = FakeBackend(scripts={"api": steps})
    app, session = make(fb)

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot, lambda: session.daemon_ok is True and session.rows["packs"].packs is not None)
        await pilot.press("b")
        await settle(
            pilot, lambda: session.rows["api"].run is not None and len(session.rows["api"].run.steps) == 10
        )

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
    fb.released.set()


def test_failed_build(snap_compare) -> None:  # type: ignore[no-untyped-def]
    app, session = make(FakeBackend(scripts={"api": api_steps(error=True)}))

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot, lambda: session.daemon_ok is True and session.rows["packs"].packs is not None)
        await pilot.press("b")
        await settle(pilot, lambda: session.rows["api"].build_state == "failed")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    app, session = make(FakeBackend())

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot, lambda: session.daemon_ok is True)
        await pilot.press("question_mark")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
