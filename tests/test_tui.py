"""Pilot tests of the console: every key and palette action against a scripted fake backend.

These check rendering and dispatch (the fake stands in for Docker); the end-to-end
test on the real daemon lives in test_tui_e2e.py.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from pathlib import Path

import pytest
from test_tui_fakes import FakeBackend, Step, api_steps, stale_api
from textual.command import CommandPalette
from textual.widgets import DataTable, Input, Static, TabbedContent

from attune_console.core.console_config import ACTIONS, ConsoleConfig
from attune_console.core.progress import RunState
from attune_console.core.session import ConsoleSession, ContainerStatus
from attune_console.tui.app import AttuneConsoleApp
from attune_console.tui.logview import LogView
from attune_console.tui.screens import ConfirmScreen, HelpScreen

SIZE = (140, 45)


def bounded(seconds: float = 120.0):  # type: ignore[no-untyped-def]
    """Fail a test that hangs instead of hanging the whole run (no pytest-timeout here)."""

    def wrap(fn):  # type: ignore[no-untyped-def]
        @functools.wraps(fn)
        async def run(*args, **kwargs):  # type: ignore[no-untyped-def]
            return await asyncio.wait_for(fn(*args, **kwargs), seconds)

        return run

    return wrap


def make_app(
    tmp_path: Path, backend: FakeBackend | None = None, config: ConsoleConfig | None = None
) -> tuple[AttuneConsoleApp, ConsoleSession, FakeBackend]:
    fb = backend or FakeBackend()
    session = ConsoleSession(tmp_path, fb, config or ConsoleConfig())
    session.monitor_interval = 0.05
    app = AttuneConsoleApp(tmp_path, session=session, config=config or ConsoleConfig())
    return app, session, fb


async def until(pilot, cond: Callable[[], bool], timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.02)


def cell_text(table: DataTable, row: str, col: str) -> str:  # type: ignore[type-arg]
    value = table.get_cell(row, col)
    return getattr(value, "plain", str(value))


def step_rows(app: AttuneConsoleApp) -> list[tuple[str, str]]:
    table = app.build_pane.steps_table
    out = []
    for key in table.rows:
        out.append((cell_text(table, key.value, "state"), cell_text(table, key.value, "step")))  # type: ignore[arg-type]
    return out


def notifications(app: AttuneConsoleApp) -> list[str]:
    return [n.message for n in app._notifications]


async def select(pilot, app: AttuneConsoleApp, name: str) -> None:  # type: ignore[no-untyped-def]
    table = app.services_table
    table.move_cursor(row=table.get_row_index(name))
    await pilot.pause()


@bounded()
async def test_idle_layout_lists_services_packs_and_bindings(tmp_path: Path) -> None:
    fb = FakeBackend(
        status={"api": ContainerStatus("running", "healthy")}, history={"api": [40.0, 12.0, 8.5]}
    )
    app, session, _ = make_app(tmp_path, fb)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: session.daemon_ok is True)
        await pilot.pause(0.1)
        table = app.services_table
        keys = [k.value for k in table.rows]
        assert keys == [
            "init-packs",
            "api",
            "executor",
            "worker-shell",
            "sensor",
            "notifier",
            "pack-binaries",
            "packs",
        ]
        assert cell_text(table, "api", "Container") == "running (healthy)"
        assert cell_text(table, "api", "Last") == "8.5 s"  # from the build history
        assert cell_text(table, "api", "History") == "█▁▁"  # 40 s, 12 s, 8.5 s
        assert cell_text(table, "packs", "Build") == "in sync"
        assert app.selected == "api"  # first buildable row
        assert not app.query_one("#banner").display
        shown = {b.binding.action for b in app.active_bindings.values() if b.binding.show}
        assert {"build", "build_stale", "refresh_packs", "cancel", "help", "quit"} <= shown


@bounded()
async def test_b_builds_selected_and_renders_cached_done_totals_and_first_miss(tmp_path: Path) -> None:
    app, session, fb = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await until(pilot, lambda: session.rows["api"].build_state == "up to date")
        await pilot.pause(0.1)
        assert ("build", "api", "") in fb.calls
        rows = step_rows(app)
        states = [s for s, _ in rows]
        assert "CACHED" in states and "DONE" in states
        first_missed = [name for _, name in rows if name.startswith("▶")]
        assert first_missed == ["▶ [builder 3/4] COPY crates/api/ ./crates/api/"]
        title = app.query_one("#build-title", Static).render()
        assert "cached 6/9" in str(title)
        assert cell_text(app.services_table, "api", "Cache") == "6/9"
        assert cell_text(app.services_table, "api", "Last") == "19.3 s"
        assert any("api: built" in m for m in notifications(app))


@bounded()
async def test_first_miss_shows_reason_from_impact(tmp_path: Path) -> None:
    fb = FakeBackend(impact_result=stale_api())
    app, session, _ = make_app(tmp_path, fb)
    async with app.run_test(size=SIZE) as pilot:
        await session.on_changes(["crates/api/src/main.rs"])
        await pilot.pause(0.1)
        assert session.rows["api"].build_state == "stale"
        assert cell_text(app.services_table, "api", "Build") == "stale"
        miss = str(app.query_one("#build-miss", Static).render())
        assert "stale builder: COPY crates/api/ ./crates/api/ (crates/api/src/main.rs changed)" in miss
        await pilot.press("b")
        await until(pilot, lambda: session.rows["api"].build_state == "up to date")
        await pilot.pause(0.1)
        miss = str(app.query_one("#build-miss", Static).render())
        assert (
            "first miss" in miss and "COPY crates/api/" in miss and "crates/api/src/main.rs changed" in miss
        )


@bounded()
async def test_failed_build_selects_failing_step_and_shows_its_log(tmp_path: Path) -> None:
    fb = FakeBackend(scripts={"api": api_steps(error=True)})
    app, session, _ = make_app(tmp_path, fb)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await until(pilot, lambda: session.rows["api"].build_state == "failed")
        await pilot.pause(0.2)
        run = session.rows["api"].run
        assert run is not None and run.error_step is not None
        assert app.build_pane.selected_step == run.error_step.digest
        assert app.query_one("#log-tabs", TabbedContent).active == "tab-build"
        log = app.query_one("#build-log", LogView)
        assert any("cannot find value" in line for line in log.lines)
        assert not any("copying" in line for line in log.lines)  # only the failing step's log
        assert "ERROR in" in str(app.query_one("#build-miss", Static).render())
        assert cell_text(app.services_table, "api", "Build") == "failed"
        assert any("build failed" in m for m in notifications(app))


@bounded()
async def test_selecting_a_step_shows_its_log_and_t_toggles_whole_build(tmp_path: Path) -> None:
    app, session, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await until(pilot, lambda: session.rows["api"].build_state == "up to date")
        await pilot.pause(0.1)
        steps = app.build_pane.steps_table
        steps.focus()
        steps.move_cursor(row=steps.get_row_index("sha256:api-08"))  # [builder 3/4] COPY crates/api/
        await pilot.press("enter")
        log = app.query_one("#build-log", LogView)
        await until(pilot, lambda: list(log.lines) == ["copying"])
        await pilot.press("t")  # whole build
        await until(pilot, lambda: len(log.lines) == 3)
        assert any("Finished" in line for line in log.lines)


@bounded()
async def test_c_cancels_selected_build_and_C_cancels_all(tmp_path: Path) -> None:
    hold = [*api_steps()[:4], Step("[builder 4/4] RUN cargo build", "hold", 5, ("compiling",))]
    fb = FakeBackend(scripts={"api": hold, "executor": list(hold)})
    app, session, _ = make_app(tmp_path, fb)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await until(pilot, lambda: session.rows["api"].building)
        await pilot.pause(0.1)
        assert "running" in [s for s, _ in step_rows(app)]
        await pilot.press("c")
        await until(pilot, lambda: session.rows["api"].build_state == "cancelled")
        run = session.rows["api"].run
        assert run is not None and run.state is RunState.CANCELLED
        await pilot.pause(0.1)
        assert "CANCELLED" in [s for s, _ in step_rows(app)]
        # Two builds, then C.
        await pilot.press("b")
        await select(pilot, app, "executor")
        await pilot.press("b")
        await until(pilot, lambda: len(session.running_builds) == 2)
        await pilot.press("C")
        await until(pilot, lambda: not session.running_builds)
        assert session.rows["api"].build_state == session.rows["executor"].build_state == "cancelled"


@bounded()
async def test_ctrl_b_asks_before_no_cache_build(tmp_path: Path) -> None:
    app, _session, fb = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+b")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await pilot.pause(0.1)
        assert not [c for c in fb.calls if c[0] == "build"]
        await pilot.press("ctrl+b")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: ("build", "api", "no-cache") in fb.calls)


@bounded()
async def test_service_keys_dispatch_and_failures_notify(tmp_path: Path) -> None:
    fb = FakeBackend(fail_restart="executor")
    app, _session, _ = make_app(tmp_path, fb, ConsoleConfig(after_refresh="hup"))
    async with app.run_test(size=SIZE) as pilot:
        for key in ("r", "u", "U", "p"):
            await pilot.press(key)
        await until(pilot, lambda: ("refresh-packs", "hup") in fb.calls)
        await until(pilot, lambda: ("up",) in fb.calls)
        assert ("restart", "api") in fb.calls and ("recreate", "api") in fb.calls
        await select(pilot, app, "executor")
        await pilot.press("r")
        await until(pilot, lambda: any("restart executor failed" in m for m in notifications(app)))
        await select(pilot, app, "init-packs")
        await pilot.press("b")
        await pilot.pause(0.1)
        assert any("nothing to build" in m for m in notifications(app))
        assert app.is_running  # failures never crash the app


@bounded()
async def test_P_builds_pack_binaries_then_installs_them(tmp_path: Path) -> None:
    app, _session, fb = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("P")
        await until(pilot, lambda: ("install-pack-binaries",) in fb.calls)
        assert ("build", "pack-binaries", "") in fb.calls
        await until(pilot, lambda: any("attune-core-timer-sensor installed" in m for m in notifications(app)))


@bounded()
async def test_watch_auto_rebuild_and_B(tmp_path: Path) -> None:
    fb = FakeBackend(impact_result=stale_api())
    fb.status = {name: ContainerStatus("running", None, image_created=1.0) for name in fb.targets()}
    app, session, _ = make_app(tmp_path, fb)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: session.rows["executor"].build_state == "built")
        await pilot.press("w")
        assert session.watching
        assert "watch on" in app.sub_title or "watch on" in str(app.sub_title)
        await session.on_changes(["crates/api/src/main.rs"])
        assert session.stale_targets() == ["api"]
        await pilot.press("B")
        await until(pilot, lambda: ("build", "api", "") in fb.calls)
        await until(pilot, lambda: session.rows["api"].build_state == "up to date")
        await pilot.press("a")
        assert session.auto_rebuild
        fb.calls.clear()
        await session.on_changes(["crates/api/src/lib.rs"])
        await until(pilot, lambda: ("build", "api", "") in fb.calls)
        await pilot.press("w")
        assert not session.watching


@bounded()
async def test_watch_mode_reacts_to_a_real_file_change(tmp_path: Path) -> None:
    (tmp_path / "crates" / "api" / "src").mkdir(parents=True)
    fb = FakeBackend(impact_result=stale_api())
    config = ConsoleConfig(debounce_ms=50)
    app, session, _ = make_app(tmp_path, fb, config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("w")
        await pilot.pause(0.5)
        (tmp_path / "crates" / "api" / "src" / "main.rs").write_text("fn main() {}\n")
        await until(pilot, lambda: session.rows["api"].build_state == "stale", timeout=10)
        assert ("impact", "crates/api/src/main.rs") in fb.calls
        assert session.last_impact_ms is not None and session.last_impact_ms < 200


@bounded()
async def test_help_screen_lists_every_action_with_rebound_keys(tmp_path: Path) -> None:
    keys = {a.id: a.key for a in ACTIONS} | {"build": "f5"}
    app, _, fb = make_app(tmp_path, config=ConsoleConfig(keys=keys))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        rows = dict((desc, key) for key, desc in app.screen.rows)
        assert [d for _, d in app.screen.rows] == [a.description for a in ACTIONS]
        assert rows["Build the selected service"] == "f5"
        assert rows["Show every key"] == "?"
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("f5")  # the rebound key builds
        await until(pilot, lambda: ("build", "api", "") in fb.calls)


@bounded()
async def test_command_palette_runs_actions(tmp_path: Path) -> None:
    app, _session, fb = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"Restart the selected")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: ("restart", "api") in fb.calls)


@bounded()
async def test_command_palette_lists_every_action(tmp_path: Path) -> None:
    from attune_console.tui.commands import ActionsProvider

    app, _, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE):
        provider = ActionsProvider(app.screen)
        titles = [hit.text for hit in [h async for h in provider.discover()]]
        assert titles == [a.description for a in ACTIONS]
        for action in ACTIONS:
            assert hasattr(app, f"action_{action.id.replace('-', '_')}")


@bounded()
async def test_logs_search_filter_follow_clear_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs

    monkeypatch.setattr(platformdirs, "user_state_dir", lambda name: str(tmp_path / "state"))
    fb = FakeBackend()
    fb.logs = [("api", f"api heartbeat {i}") for i in range(40)] + [
        ("worker-shell", "\x1b[32mworker ok\x1b[0m")
    ]
    app, session, _ = make_app(tmp_path, fb)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l")  # focus the build log
        await pilot.press("l")  # again: switch to container logs
        tabs = app.query_one("#log-tabs", TabbedContent)
        assert tabs.active == "tab-containers"
        view = app.query_one("#container-log", LogView)
        await until(pilot, lambda: view.line_count == 41)
        assert view.has_focus
        await pilot.press("slash")
        assert app.query_one("#search", Input).has_focus
        await pilot.press(*"heartbeat 3", "enter")
        assert len(view.matches) == 11  # 3, 30..39
        assert view.match_index == 10 and not view.follow
        await pilot.press("n")
        assert view.match_index == 0
        await pilot.press("N")
        assert view.match_index == 10
        await pilot.pause(0.1)
        assert "search 'heartbeat 3' 11/11" in str(app.query_one("#log-status", Static).render())
        await pilot.press("f", *"worker", "enter")
        assert view.line_count == 1
        assert "worker ok" in view.lines[0] and "worker-shell" in view.lines[0]
        await pilot.press("f", "ctrl+u", "enter")  # empty filter: everything again
        assert view.line_count == 41
        await pilot.press("F")
        assert view.follow
        await pilot.press("s")
        saved = list((tmp_path / "state" / "logs").glob("*.log"))
        assert len(saved) == 1 and "worker-shell | worker ok" in saved[0].read_text()
        await pilot.press("t")  # only the selected service (api)
        await pilot.pause(0.1)
        assert view.line_count == 40 and all("worker" not in line for line in view.lines)
        await pilot.press("x")
        assert view.line_count == 0 and len(session.container_logs) == 0
        await pilot.press("slash", "escape")
        assert not app.query_one("#search", Input).display


@bounded()
async def test_log_view_renders_colours_not_escape_codes(tmp_path: Path) -> None:
    fb = FakeBackend()
    fb.logs = [("api", "\x1b[31mred\x1b[0m and \x1b[1mbold\x1b[0m"), ("api", "bad \udcff bytes")]
    app, _session, _ = make_app(tmp_path, fb)
    async with app.run_test(size=SIZE) as pilot:
        app.query_one("#log-tabs", TabbedContent).active = "tab-containers"
        view = app.query_one("#container-log", LogView)
        await until(pilot, lambda: view.line_count == 2)
        await pilot.pause(0.1)
        strip = view._render_line_strip(0, view.rich_style)
        text = "".join(seg.text for seg in strip)
        assert "\x1b" not in text and "red and bold" in text
        assert any(
            seg.style is not None and seg.style.color is not None and seg.text == "red" for seg in strip
        )


@bounded()
async def test_daemon_lost_banner_and_reconnect(tmp_path: Path) -> None:
    fb = FakeBackend(daemon_up=False)
    app, session, _ = make_app(tmp_path, fb)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: session.daemon_ok is False)
        await pilot.pause(0.1)
        banner = app.query_one("#banner", Static)
        assert banner.display
        assert "Docker daemon unreachable" in str(banner.render())
        await pilot.press("b")
        await until(pilot, lambda: session.rows["api"].build_state == "failed")
        fb.daemon_up = True
        await until(pilot, lambda: session.daemon_ok is True)
        await pilot.pause(0.1)
        assert not banner.display
        assert any("reconnected" in m for m in notifications(app))


@bounded()
async def test_q_asks_while_building_and_cancels_cleanly(tmp_path: Path) -> None:
    hold = [*api_steps()[:3], Step("[builder 4/4] RUN cargo build", "hold", 5)]
    fb = FakeBackend(scripts={"api": hold})
    app, session, _ = make_app(tmp_path, fb)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await until(pilot, lambda: session.rows["api"].building)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await pilot.pause(0.1)
        assert app.is_running and session.rows["api"].building
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: not app.is_running)
    run = session.rows["api"].run
    assert run is not None and run.state is RunState.CANCELLED


@bounded()
async def test_q_quits_at_once_when_idle(tmp_path: Path) -> None:
    app, _, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running)


@bounded()
async def test_bad_config_is_reported_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "attune-console.toml").write_text("[limits]\nparallel_builds = 0\n")
    fb = FakeBackend()
    app = AttuneConsoleApp(tmp_path, backend=fb, start_session=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        assert any("attune-console.toml:2" in m for m in notifications(app))
        assert app.config.parallel_builds == 2


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
@bounded()
async def test_small_and_wide_terminals_render(tmp_path: Path, size: tuple[int, int]) -> None:
    app, session, _ = make_app(tmp_path)
    async with app.run_test(size=size) as pilot:
        await pilot.press("b")
        await until(pilot, lambda: session.rows["api"].build_state == "up to date")
        await pilot.pause(0.1)
        assert app.services_table.region.height >= 5
        assert app.build_pane.region.width >= 30
        assert app.query_one("#build-log", LogView).region.height >= 3


@bounded()
async def test_auto_rebuild_restarts_a_build_the_next_change_made_obsolete(tmp_path: Path) -> None:
    hold = [*api_steps()[:3], Step("[builder 4/4] RUN cargo build", "hold", 5)]
    fb = FakeBackend(scripts={"api": hold}, impact_result=stale_api())
    app, session, _ = make_app(tmp_path, fb)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("w", "a")
        await session.on_changes(["crates/api/src/main.rs"])
        await until(pilot, lambda: session.rows["api"].building)
        first = session.rows["api"].run
        await session.on_changes(["crates/api/src/main.rs"])  # saved again while building
        await until(pilot, lambda: session.rows["api"].run is not first and session.rows["api"].building)
        assert first is not None and first.state is RunState.CANCELLED
        assert [c for c in fb.calls if c[0] == "build"] == [("build", "api", ""), ("build", "api", "")]
        fb.released.set()
        await until(pilot, lambda: session.rows["api"].build_state == "up to date")


@bounded()
async def test_very_long_lines_scroll_instead_of_breaking(tmp_path: Path) -> None:
    fb = FakeBackend()
    fb.logs = [("api", "x" * 20_000 + " END"), ("api", "short")]
    app, _session, _ = make_app(tmp_path, fb)
    async with app.run_test(size=SIZE) as pilot:
        app.query_one("#log-tabs", TabbedContent).active = "tab-containers"
        view = app.query_one("#container-log", LogView)
        await until(pilot, lambda: view.line_count == 2)
        await pilot.pause(0.1)
        assert view.virtual_size.width > 20_000
        await until(pilot, lambda: view.region.width > 0)
        view.focus()
        await pilot.press("end")  # no-op for x; then scroll right by keys
        for _ in range(5):
            await pilot.press("right")
        await until(pilot, lambda: view.scroll_x > 0)
        assert app.is_running
