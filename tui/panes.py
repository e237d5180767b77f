"""The services table and the build pane: pure renderers of core state.

They hold no logic beyond formatting: every value comes from
:class:`~attune_console.core.session.ServiceState` and
:class:`~attune_console.core.progress.BuildRun`. Updates touch only the cells
whose text changed, so a redraw during a busy build costs a handful of cells.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from attune_console.core.progress import BuildRun, BuildStep, RunState, StepKind, StepState
from attune_console.core.session import PACK_BINARIES, PACKS, ServiceState, sparkline

STATE_STYLE = {
    "up to date": "green",
    "built": "green",
    "in sync": "green",
    "stale": "yellow",
    "queued": "cyan",
    "building": "bold cyan",
    "failed": "bold red",
    "cancelled": "magenta",
    "not built": "dim",
    "no volume": "yellow",
    "unknown": "dim",
}
STEP_STYLE = {
    StepState.QUEUED: ("queued", "dim"),
    StepState.RUNNING: ("running", "bold cyan"),
    StepState.CACHED: ("CACHED", "blue"),
    StepState.DONE: ("DONE", "green"),
    StepState.ERROR: ("ERROR", "bold white on red"),
    StepState.CANCELLED: ("CANCELLED", "magenta"),
}


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    return f"{minutes}m{sec:02d}s"


def fmt_age(epoch: float | None, now: float | None = None) -> str:
    if not epoch:
        return ""
    age = max(0.0, (now or time.time()) - epoch)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if age >= size:
            return f"{int(age // size)}{unit}"
    return f"{int(age)}s"


def build_cell(row: ServiceState) -> Text:
    state = row.build_state
    run = row.run
    label = state
    if state == "building" and run is not None:
        done = sum(1 for s in run.counted_steps if s.state.finished)
        label = f"building {done}/{run.total or '?'}"
    elif row.kind == PACKS and row.packs is not None and row.packs.changed:
        # A missing volume is not "changed": say it is missing and what a refresh will copy.
        if row.packs.volume_exists:
            label = f"{row.packs.changed} changed"
        else:
            label = f"no volume · {row.packs.changed} to copy"
    return Text(label, style=STATE_STYLE.get(state, ""))


def service_cells(row: ServiceState) -> list[Text | str]:
    """Service, Build, Cache, Last, History, Container, Image."""
    name = Text(row.name, style="bold" if row.kind == "service" else "italic")
    if row.kind == PACK_BINARIES:
        name = Text("pack binaries", style="italic")
    elif row.kind == PACKS:
        name = Text("packs volume", style="italic")
    ratio = row.cache_ratio
    cache = f"{ratio[0]}/{ratio[1]}" if ratio else ""
    last = fmt_duration(row.durations[-1]) if row.durations else ""
    container = Text("")
    image = ""
    if row.container is not None and row.container.state is None:
        container = Text("none", style="dim")
        image = fmt_age(row.container.image_created)
    elif row.container is not None:
        st = row.container.state or "-"
        style = "green" if st == "running" else ("red" if st in ("exited", "dead") else "yellow")
        container = Text(st, style=style)
        if row.container.health:
            hs = row.container.health
            container.append(f" ({hs})", style="green" if hs == "healthy" else "red")
        image = fmt_age(row.container.image_created)
    elif row.kind == "service":
        container = Text("none", style="dim")
    return [name, build_cell(row), cache, last, sparkline(row.durations), container, image]


SERVICE_COLUMNS = ("Service", "Build", "Cache", "Last", "History", "Container", "Image")


class ServicesTable(DataTable[Text | str]):
    """Every compose service plus the pack-binaries and packs-volume rows."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)  # type: ignore[arg-type]
        self._cells: dict[str, list[str]] = {}

    def on_mount(self) -> None:
        for col in SERVICE_COLUMNS:
            self.add_column(col, key=col)

    def sync(self, rows: dict[str, ServiceState]) -> None:
        for name, row in rows.items():
            cells = service_cells(row)
            plain = [c.markup if isinstance(c, Text) else c for c in cells]
            old = self._cells.get(name)
            if old is None:
                self.add_row(*cells, key=name)
            elif old != plain:
                for col, new, prev, cell in zip(SERVICE_COLUMNS, plain, old, cells, strict=True):
                    if new != prev:
                        self.update_cell(name, col, cell, update_width=True)
            self._cells[name] = plain

    @property
    def selected(self) -> str | None:
        if self.row_count == 0:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return str(key.value) if key.value is not None else None


def step_cells(step: BuildStep, first_missed: BuildStep | None) -> list[Text | str]:
    label, style = STEP_STYLE[step.state]
    state = Text(label, style=style)
    name_style = "dim" if step.kind is StepKind.INTERNAL else ""
    marker = "▶ " if step is first_missed else "  "
    name = Text(marker + step.name, style=name_style)
    if step is first_missed:
        name.stylize("bold yellow", 0, 2)
    dur = fmt_duration(step.duration) if step.state is not StepState.CACHED else ""
    return [state, dur, name]


class BuildPane(Vertical):
    """Step list of the current or last build of the selected service, with totals and the miss reason."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.run: BuildRun | None = None
        self.row: ServiceState | None = None
        self._cells: dict[str, list[str]] = {}
        self._auto_selected_error: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="build-title")
        steps: DataTable[Text | str] = DataTable(cursor_type="row", id="steps")
        yield steps
        yield Static(id="build-miss")

    def on_mount(self) -> None:
        steps = self.query_one("#steps", DataTable)
        steps.add_column("State", key="state", width=9)
        steps.add_column("Time", key="time", width=7)
        steps.add_column("Step", key="step")

    @property
    def steps_table(self) -> DataTable[Text | str]:
        return self.query_one("#steps", DataTable)

    def show(self, row: ServiceState | None) -> bool:
        """Render ``row``'s run; return True when the failing step was just auto-selected."""
        table = self.steps_table
        run = row.run if row is not None else None
        if run is not self.run:
            table.clear()
            self._cells = {}
            self.run = run
        self.row = row
        self._render_title(row, run)
        if run is None:
            self._render_miss(row, None)
            return False
        first = run.first_missed_step
        for step in run.steps:
            visible = step.kind is not StepKind.INTERNAL or step.state in (StepState.RUNNING, StepState.ERROR)
            old = self._cells.get(step.digest)
            if not visible:
                # BuildKit's internal vertices (context transfer, metadata, export) are noise once done.
                if old is not None:
                    table.remove_row(step.digest)
                    del self._cells[step.digest]
                continue
            cells = step_cells(step, first)
            plain = [c.markup if isinstance(c, Text) else c for c in cells]
            if old is None:
                table.add_row(*cells, key=step.digest)
            elif old != plain:
                for col, new, prev, cell in zip(("state", "time", "step"), plain, old, cells, strict=True):
                    if new != prev:
                        table.update_cell(step.digest, col, cell, update_width=col == "step")
            self._cells[step.digest] = plain
        self._render_miss(row, run)
        if not table.has_focus:
            self._follow(table, run)
        err = run.error_step
        if err is not None and self._auto_selected_error != err.digest:
            self._auto_selected_error = err.digest
            index = table.get_row_index(err.digest)
            table.move_cursor(row=index)
            return True
        return False

    def _follow(self, table: DataTable[Text | str], run: BuildRun) -> None:
        """Keep the interesting step in view: what runs now, else the first miss."""
        running = [s for s in run.steps if s.state is StepState.RUNNING and s.digest in self._cells]
        target = running[-1] if running else run.first_missed_step
        if target is None or target.digest not in self._cells:
            return
        index = table.get_row_index(target.digest)
        if table.cursor_row != index:
            table.move_cursor(row=index)

    def _render_title(self, row: ServiceState | None, run: BuildRun | None) -> None:
        title = self.query_one("#build-title", Static)
        if row is None:
            title.update(Text("no service selected", style="dim"))
            return
        text = Text(row.name if row.kind == "service" else row.kind, style="bold")
        if run is None:
            hint = "press b to build" if row.buildable else "not a build target"
            text.append(f"  no build yet · {hint}", style="dim")
        else:
            label, style = {
                RunState.QUEUED: ("queued", "cyan"),
                RunState.RUNNING: ("building", "bold cyan"),
                RunState.DONE: ("done", "green"),
                RunState.ERROR: ("failed", "bold red"),
                RunState.CANCELLED: ("cancelled", "magenta"),
            }[run.state]
            text.append(f"  {label}", style=style)
            text.append(f"  cached {run.cached}/{run.total} · {fmt_duration(run.duration or 0.0)}")
        title.update(text, layout=False)

    def _render_miss(self, row: ServiceState | None, run: BuildRun | None) -> None:
        miss = self.query_one("#build-miss", Static)
        text = Text()
        stale = row.stale if row is not None and row.build_state == "stale" else None
        if stale is not None:
            # The prediction for the next build (from the impact analysis), before any build ran.
            text.append("stale ", style="bold yellow")
            text.append(stale.describe())
            text.append("\n")
        if run is None:
            miss.update(text)
            return
        first = run.first_missed_step
        if run.error_step is not None:
            step = run.error_step
            code = f" (exit code {step.exit_code})" if step.exit_code is not None else ""
            text.append("ERROR in ", style="bold red")
            text.append(f"{step.name}{code}")
        elif first is not None:
            text.append("first miss ", style="bold yellow")
            text.append(first.name)
            reason = row.build_reason if row is not None else None
            if reason is not None:
                text.append(f" · {reason.reason}", style="yellow")
        elif run.state is RunState.DONE and run.total:
            text.append("fully cached", style="blue")
        if run.error and run.error_step is None:
            text.append(f" {run.error}", style="red")
        miss.update(text)

    @property
    def selected_step(self) -> str | None:
        table = self.steps_table
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:
            return None
        return str(key.value) if key.value is not None else None
