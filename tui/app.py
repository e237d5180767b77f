"""The Textual application: renders the console core and dispatches keys to it.

Logic lives in :class:`~attune_console.core.session.ConsoleSession`; this module
only lays out widgets, maps keys (rebindable through binding ids and
``App.set_keymap``) to session commands, and redraws on a ~20 Hz timer when the
session's version moved or log lines arrived. Session commands are coroutines
run as workers, so no key press ever waits on Docker.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import ClassVar, Literal

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import DataTable, Footer, Header, Input, Static, TabbedContent, TabPane

from attune_console.core.console_config import ACTIONS, ConsoleConfig, load_config
from attune_console.core.errors import AttuneError
from attune_console.core.logbuffer import LogLine, compile_matcher
from attune_console.core.session import PACK_BINARIES, PACKS, Backend, ConsoleSession
from attune_console.tui.commands import ActionsProvider, action_name
from attune_console.tui.logview import LogView
from attune_console.tui.panes import BuildPane, ServicesTable
from attune_console.tui.screens import ConfirmScreen, HelpScreen

TICK_HZ = 20
SERVICE_COLOURS = (
    "cyan",
    "magenta",
    "green",
    "yellow",
    "blue",
    "bright_red",
    "bright_cyan",
    "bright_magenta",
)
_ANSI = {
    "cyan": "36",
    "magenta": "35",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "bright_red": "91",
    "bright_cyan": "96",
    "bright_magenta": "95",
}


def _bindings() -> list[BindingType]:
    return [
        Binding(
            a.key, action_name(a.id), a.label or a.description, show=a.show, id=a.id, tooltip=a.description
        )
        for a in ACTIONS
    ]


class AttuneConsoleApp(App[None]):
    """attune-console's main application."""

    CSS_PATH = Path(__file__).resolve().parent.parent / "styles" / "app.tcss"
    TITLE = "attune-console"
    BINDINGS: ClassVar[list[BindingType]] = _bindings()
    COMMANDS = App.COMMANDS | {ActionsProvider}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (150, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]

    def __init__(
        self,
        workspace: Path,
        *,
        session: ConsoleSession | None = None,
        backend: Backend | None = None,
        config: ConsoleConfig | None = None,
        start_session: bool = True,
    ) -> None:
        super().__init__()
        self.workspace = workspace
        self._startup_errors: list[str] = []
        if config is None:
            try:
                config = load_config(workspace)
            except AttuneError as exc:
                self._startup_errors.append(f"config ignored: {exc}")
                config = ConsoleConfig()
        self.config = config
        if session is None:
            if backend is None:
                from attune_console.core.session import DockerBackend

                try:
                    backend = DockerBackend(workspace, config)
                except AttuneError as exc:
                    self._startup_errors.append(str(exc))
                    from attune_console.core.session import NullBackend

                    backend = NullBackend(str(exc))
            session = ConsoleSession(workspace, backend, config)
        self.session = session
        self.start_session = start_session
        self._seen_version = -1
        self._search_mode = "search"
        self._build_scope_step = True
        self._container_scope_selected = False
        self._colours: dict[str, str] = {}
        self._shown_target: str | None = None
        self._shown_step: str | None = None
        self._shown_run: object | None = None
        self._last_status = ""
        self.sub_title = str(workspace)

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="banner")
        with Horizontal(id="top"):
            yield ServicesTable(id="services")
            yield BuildPane(id="build")
        with Vertical(id="logs"):
            with TabbedContent(id="log-tabs"):
                with TabPane("Build log", id="tab-build"):
                    yield LogView(max_lines=self.config.log_lines, id="build-log")
                with TabPane("Containers", id="tab-containers"):
                    yield LogView(max_lines=self.config.log_lines, id="container-log")
            yield Input(placeholder="search (Enter: apply, Esc: close)", id="search")
            yield Static(id="log-status")
        yield Footer()

    def on_mount(self) -> None:
        # Widgets live on the default screen; queries go there even while a modal is on top.
        self._main = self.screen
        if self.config.theme:
            try:
                self.theme = self.config.theme
            except Exception:
                self._startup_errors.append(f"unknown theme {self.config.theme!r}")
        keymap = {a.id: self.config.keys[a.id] for a in ACTIONS if self.config.keys[a.id] != a.key}
        if keymap:
            self.set_keymap(keymap)
        self._main.query_one("#search", Input).display = False
        self._main.query_one("#container-log", LogView).attach(
            self.session.container_logs, None, self._format_container_line
        )
        for message in self._startup_errors:
            self.notify(message, severity="error", timeout=10)
        self.set_interval(1 / TICK_HZ, self._tick)
        self._tick()
        table = self.services_table
        first = next((i for i, r in enumerate(self.session.rows.values()) if r.buildable), 0)
        table.move_cursor(row=first)
        table.focus()
        if self.start_session:
            self.run_worker(self.session.start(), name="session-start", group="session")

    # ------------------------------------------------------------------ helpers
    @property
    def services_table(self) -> ServicesTable:
        return self._main.query_one(ServicesTable)

    @property
    def build_pane(self) -> BuildPane:
        return self._main.query_one(BuildPane)

    @property
    def selected(self) -> str | None:
        return self.services_table.selected

    def active_log(self) -> LogView:
        tabs = self._main.query_one("#log-tabs", TabbedContent)
        return self._main.query_one(
            "#container-log" if tabs.active == "tab-containers" else "#build-log", LogView
        )

    def _colour(self, service: str) -> str:
        colour = self._colours.get(service)
        if colour is None:
            colour = SERVICE_COLOURS[len(self._colours) % len(SERVICE_COLOURS)]
            self._colours[service] = colour
        return colour

    def _format_container_line(self, line: LogLine) -> str:
        if self._container_scope_selected:
            return line.text
        code = _ANSI[self._colour(line.source)]
        return f"\x1b[{code}m{line.source:>12} |\x1b[0m {line.text}"

    def _dispatch(self, coro: object, name: str) -> None:
        """Run a session command as a worker: keys return at once, failures become toasts."""
        self.run_worker(coro, name=name, group="actions", exit_on_error=False)  # type: ignore[arg-type]

    def _require_service(self, kinds: tuple[str, ...] = ("service",)) -> str | None:
        name = self.selected
        row = self.session.rows.get(name or "")
        if name is None or row is None or row.kind not in kinds:
            self.notify("select a service row first", severity="warning")
            return None
        return name

    # ------------------------------------------------------------------ the timer
    def _tick(self) -> None:
        with contextlib.suppress(NoMatches):  # NoMatches: shutting down, widgets gone
            self._tick_once()

    def _tick_once(self) -> None:
        session = self.session
        while session.notices:
            n = session.notices.popleft()
            severity: Literal["information", "warning", "error"] = (
                "error" if n.level == "error" else "warning" if n.level == "warning" else "information"
            )
            self.notify(n.message, severity=severity, timeout=6 if severity != "error" else 10)
        building = bool(session.running_builds)
        if session.version != self._seen_version or building:
            self._seen_version = session.version
            self._render_state()
        for view in self._main.query(LogView):
            view.pump()
        self._render_log_status()

    def _render_state(self) -> None:
        session = self.session
        self.services_table.sync(session.rows)
        banner = self._main.query_one("#banner", Static)
        if session.daemon_ok is False:
            banner.update(
                Text.assemble(
                    ("Docker daemon unreachable", "bold"),
                    f": {session.daemon_message}\n",
                    "Start it (sudo systemctl start docker, or dockerd &) or check DOCKER_HOST. "
                    "Watch and impact keep working; reconnecting every 2 s.",
                )
            )
            banner.display = True
        else:
            banner.display = False
        flags = [
            f"watch {'on' if session.watching else 'off'}",
            f"auto {'on' if session.auto_rebuild else 'off'}",
        ]
        if session.running_builds:
            flags.append(f"{len(session.running_builds)} building")
        self.sub_title = f"{self.workspace.name} · " + " · ".join(flags)
        self._render_build_pane()

    def _render_build_pane(self) -> None:
        name = self.selected
        row = self.session.rows.get(name) if name else None
        pane = self.build_pane
        error_selected = pane.show(row)
        build_log = self._main.query_one("#build-log", LogView)
        run = row.run if row is not None else None
        if name != self._shown_target or run is not self._shown_run:
            # Another service, or a new build of this one: start from its whole-build log.
            self._shown_target = name
            self._shown_run = run
            self._shown_step = None
            self._attach_build_log()
        if error_selected:
            # On failure show the failing step's log without a key press.
            self._build_scope_step = True
            self._shown_step = pane.selected_step
            self._attach_build_log()
            self._main.query_one("#log-tabs", TabbedContent).active = "tab-build"
            build_log.scroll_end(animate=False)
        if self._container_scope_selected:
            self._attach_container_log()

    def _attach_build_log(self) -> None:
        view = self._main.query_one("#build-log", LogView)
        name = self._shown_target
        if name is None:
            view.attach(None)
            return
        buffer = self.session.build_log(name)
        step = self._shown_step if self._build_scope_step else None
        run = self.session.rows[name].run if name in self.session.rows else None
        if step is not None:

            def only_step(source: str, digest: str = step) -> bool:
                return source == digest

            view.attach(buffer, only_step)
        else:

            def fmt(line: LogLine) -> str:
                step = run.step_by_digest.get(line.source) if run is not None else None
                return f"\x1b[2m#{step.order + 1:<3}\x1b[0m {line.text}" if step else line.text

            view.attach(buffer, None, fmt)

    def _attach_container_log(self) -> None:
        view = self._main.query_one("#container-log", LogView)
        name = self.selected
        wanted = name if self._container_scope_selected and name in self.session.services else None
        current = getattr(view, "_scope", "?")
        if current == wanted:
            return
        view._scope = wanted  # type: ignore[attr-defined]

        def only_service(source: str, service: str | None = wanted) -> bool:
            return source == service

        view.attach(
            self.session.container_logs, only_service if wanted else None, self._format_container_line
        )

    def _render_log_status(self) -> None:
        view = self.active_log()
        tabs = self._main.query_one("#log-tabs", TabbedContent)
        if tabs.active == "tab-build":
            scope = (
                f"step {self._step_label()}" if self._build_scope_step and self._shown_step else "whole build"
            )
            scope = f"{self._shown_target or '-'} · {scope}"
        else:
            scope = (self.selected or "-") if self._container_scope_selected else "all services"
        line = f" {scope} · {view.status()}"
        if line != self._last_status:
            # Fixed height: no layout pass (a layout per tick costs a full-screen render in a flood).
            self._last_status = line
            self._main.query_one("#log-status", Static).update(Text(line, style="dim"), layout=False)

    def _step_label(self) -> str:
        row = self.session.rows.get(self._shown_target or "")
        if row is None or row.run is None or self._shown_step is None:
            return ""
        step = row.run.step_by_digest.get(self._shown_step)
        return f"#{step.order + 1}" if step else ""

    # ------------------------------------------------------------------ table events
    @on(DataTable.RowHighlighted, "#services")
    def _service_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._render_build_pane()

    @on(DataTable.RowHighlighted, "#steps")
    @on(DataTable.RowSelected, "#steps")
    def _step_highlighted(self, event: DataTable.RowHighlighted | DataTable.RowSelected) -> None:
        if not self.build_pane.steps_table.has_focus:
            return  # rows added while a build runs move the cursor; only the user picks a step
        step = str(event.row_key.value) if event.row_key.value is not None else None
        if step != self._shown_step:
            self._shown_step = step
            self._build_scope_step = True
            self._attach_build_log()

    # ------------------------------------------------------------------ actions: builds
    def action_build(self) -> None:
        name = self._require_service(("service", PACK_BINARIES))
        if name:
            self._dispatch(self.session.build(name), f"build {name}")

    def action_build_stale(self) -> None:
        self._dispatch(self.session.build_stale(), "build stale")

    @work(group="confirm")
    async def action_build_no_cache(self) -> None:
        name = self._require_service(("service", PACK_BINARIES))
        if not name:
            return
        if await self.push_screen_wait(
            ConfirmScreen(f"Rebuild {name} with --no-cache? Every step runs again.")
        ):
            self._dispatch(self.session.build(name, no_cache=True), f"build {name} --no-cache")

    def action_pack_binaries(self) -> None:
        self._dispatch(self.session.build_pack_binaries(), "pack binaries")

    def action_refresh_packs(self) -> None:
        self.notify(f"refreshing packs (then {self.config.after_refresh})…")
        self._dispatch(self.session.refresh_packs(), "refresh packs")

    def action_cancel(self) -> None:
        name = self._require_service(("service", PACK_BINARIES))
        if name:
            self._dispatch(self.session.cancel(name), f"cancel {name}")

    def action_cancel_all(self) -> None:
        count = len(self.session.running_builds)
        if not count:
            self.notify("no build running", severity="warning")
            return
        self.notify(f"cancelling {count} build(s)…")
        self._dispatch(self.session.cancel_all(), "cancel all")

    # ------------------------------------------------------------------ actions: services
    def action_restart(self) -> None:
        name = self._require_service()
        if name:
            self._dispatch(self.session.restart(name), f"restart {name}")

    def action_recreate(self) -> None:
        name = self._require_service()
        if name:
            self._dispatch(self.session.recreate(name), f"recreate {name}")

    def action_up(self) -> None:
        self.notify("starting the stack…")
        self._dispatch(self.session.up(), "up")

    def action_watch(self) -> None:
        self.session.set_watch(not self.session.watching)

    def action_auto_rebuild(self) -> None:
        self.session.set_auto_rebuild(not self.session.auto_rebuild)

    # ------------------------------------------------------------------ actions: logs
    def action_focus_logs(self) -> None:
        tabs = self._main.query_one("#log-tabs", TabbedContent)
        view = self.active_log()
        if self._main.focused is view:
            tabs.active = "tab-containers" if tabs.active == "tab-build" else "tab-build"
            view = self.active_log()
        # set_focus is immediate (Widget.focus is deferred), so a quick second `l` sees it.
        self._main.set_focus(view)

    def action_log_scope(self) -> None:
        tabs = self._main.query_one("#log-tabs", TabbedContent)
        if tabs.active == "tab-build":
            self._build_scope_step = not self._build_scope_step
            if self._build_scope_step and self._shown_step is None:
                self._shown_step = self.build_pane.selected_step
            self._attach_build_log()
        else:
            self._container_scope_selected = not self._container_scope_selected
            self._attach_container_log()

    def _open_input(self, mode: str) -> None:
        self._search_mode = mode
        box = self._main.query_one("#search", Input)
        view = self.active_log()
        current = view.search if mode == "search" else view.filter
        box.placeholder = (
            "search the log (Enter: apply, Esc: close; n/N next/prev)"
            if mode == "search"
            else "filter: show only matching lines (empty: all)"
        )
        label = view.search_text if mode == "search" else view.filter_text
        box.value = label if current is not None else ""
        box.display = True
        box.focus()

    def action_search(self) -> None:
        self._open_input("search")

    def action_filter(self) -> None:
        self._open_input("filter")

    @on(Input.Submitted, "#search")
    def _input_submitted(self, event: Input.Submitted) -> None:
        text = event.value
        view = self.active_log()
        pattern = None
        if text:
            try:
                pattern = (
                    compile_matcher(text[3:], regex=True) if text.startswith("re:") else compile_matcher(text)
                )
            except re.error as exc:
                self.notify(f"bad regular expression: {exc}", severity="error")
                return
        if self._search_mode == "search":
            view.search_text = text
            view.set_search(pattern)
            if pattern is not None and not view.matches:
                self.notify(f"no match for {text!r}", severity="warning")
        else:
            view.filter_text = text
            view.filter = pattern
            view.rebuild()
        self._close_input(view)

    def _close_input(self, view: LogView | None = None) -> None:
        box = self._main.query_one("#search", Input)
        box.display = False
        (view or self.active_log()).focus()

    def on_key(self, event: object) -> None:
        key = getattr(event, "key", None)
        box = self._main.query_one("#search", Input)
        if key == "escape" and box.display:
            self._close_input()
            getattr(event, "stop", lambda: None)()

    def action_search_next(self) -> None:
        if not self.active_log().next_match(1):
            self.notify("no search matches (/ to search)", severity="warning")

    def action_search_prev(self) -> None:
        if not self.active_log().next_match(-1):
            self.notify("no search matches (/ to search)", severity="warning")

    def action_follow(self) -> None:
        view = self.active_log()
        view.follow = not view.follow

    def action_clear_log(self) -> None:
        view = self.active_log()
        if view.buffer is not None:
            view.buffer.clear()
        view.rebuild()

    def action_save_log(self) -> None:
        view = self.active_log()
        if view.buffer is None:
            self.notify("nothing to save", severity="warning")
            return
        import platformdirs

        from attune_console.core.logbuffer import filter_lines

        folder = Path(platformdirs.user_state_dir("attune-console")) / "logs"
        tab = "build" if view.id == "build-log" else "containers"
        path = folder / f"{self.workspace.name}-{tab}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            lines = filter_lines(view.buffer.snapshot(), view.source, view.filter)
            count = view.buffer.save(path, lines)
        except OSError as exc:
            self.notify(f"save failed: {exc}", severity="error")
            return
        self.notify(f"saved {count} lines to {path}")

    # ------------------------------------------------------------------ help and quit
    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(dict(self.config.keys)))

    async def action_quit(self) -> None:
        self._confirm_quit()

    @work(group="confirm", exclusive=True)
    async def _confirm_quit(self) -> None:
        running = self.session.running_builds
        if running:
            ok = await self.push_screen_wait(
                ConfirmScreen(
                    f"{len(running)} build(s) running ({', '.join(running)}). Cancel them and quit?"
                )
            )
            if not ok:
                return
            self.notify("cancelling builds…")
        try:
            await self.session.stop()
        finally:
            self.exit()

    @property
    def packs_row(self) -> str:
        return PACKS
