"""A bounded, batched log pane over a core :class:`LogBuffer`, with search, filter and follow.

Built on Textual's plain :class:`~textual.widgets.Log` (lazy rendering of plain
strings, ``write_lines`` in one call per batch), because measured on Textual 8.2.8
``Log.write_lines`` in batches is ~70x cheaper than one ``write_line`` or
``RichLog.write`` per line. The app's timer calls :meth:`LogView.pump` ~20 times a
second; producers never touch the widget.

Two rendering additions over ``Log``: SGR colour codes are rendered (instead of
shown as garbage), and search matches are highlighted, the current one more
strongly. Filtering rebuilds the view from the buffer's history.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widgets import Log

from attune_console.core.logbuffer import LogBuffer, LogLine, filter_lines, strip_ansi

MATCH_STYLE = Style(bgcolor="yellow", color="black")
CURRENT_STYLE = Style(bgcolor="dark_orange", color="black", bold=True)
PUMP_LIMIT = 2_000  # lines per tick at most (40k lines/s at 20 Hz): a flood drains over ticks, no stall

Formatter = Callable[[LogLine], str]


def plain_formatter(line: LogLine) -> str:
    return line.text


class LogView(Log):
    """A :class:`Log` fed from a :class:`LogBuffer`, showing the lines a predicate selects."""

    DEFAULT_CSS = """
    LogView { height: 1fr; }
    """

    def __init__(self, *, max_lines: int = 100_000, id: str | None = None) -> None:
        super().__init__(max_lines=max_lines, id=id, highlight=False, auto_scroll=True)
        self.buffer: LogBuffer | None = None
        self.source: Callable[[str], bool] | None = None
        self.formatter: Formatter = plain_formatter
        self.filter: re.Pattern[str] | None = None
        self.search: re.Pattern[str] | None = None
        self.matches: list[int] = []
        self.match_index = -1
        self.missed = 0
        self.search_text = ""  # what the user typed (the pattern may be escaped)
        self.filter_text = ""
        self._cursor = 0

    # -- feeding --------------------------------------------------------------------
    def attach(
        self,
        buffer: LogBuffer | None,
        source: Callable[[str], bool] | None = None,
        formatter: Formatter | None = None,
    ) -> None:
        """Show ``buffer`` (lines whose source passes ``source``) from its start."""
        self.buffer = buffer
        self.source = source
        self.formatter = formatter or plain_formatter
        self.rebuild()

    def rebuild(self) -> None:
        """Clear and refill from the buffer's history (after attach, filter or scope change)."""
        self.clear()
        self.matches = []
        self.match_index = -1
        if self.buffer is None:
            self._cursor = 0
            return
        self._cursor = self.buffer.next_seq
        history = self.buffer.snapshot()
        keep = self.max_lines or len(history)
        lines = list(filter_lines(history, self.source, self.filter))[-keep:]
        self._write(lines)
        self._recompute_matches()

    def pump(self) -> int:
        """Write the lines that arrived since the last pump (one batch); return how many."""
        if self.buffer is None:
            return 0
        drained = self.buffer.drain(self._cursor, limit=PUMP_LIMIT)
        self._cursor = drained.cursor
        self.missed += drained.missed
        if not drained.lines:
            return 0
        lines = list(filter_lines(drained.lines, self.source, self.filter))
        if lines:
            start = len(self.lines)
            self._write(lines)
            if self.search is not None:
                self._extend_matches(start)
        return len(lines)

    def _write(self, lines: list[LogLine]) -> None:
        if lines:
            fmt = self.formatter
            self.write_lines([fmt(line) for line in lines])

    # -- follow -----------------------------------------------------------------------
    @property
    def follow(self) -> bool:
        return self.auto_scroll

    @follow.setter
    def follow(self, on: bool) -> None:
        self.auto_scroll = on
        if on:
            self.scroll_end(animate=False)

    # -- search -------------------------------------------------------------------------
    def set_search(self, pattern: re.Pattern[str] | None) -> None:
        self.search = pattern
        self._recompute_matches()
        if self.matches:
            # Start from the newest match: in a log, recent is what matters; stop following
            # so new lines do not scroll the match away.
            self.match_index = len(self.matches) - 1
            self.auto_scroll = False
            self._show_match()
        self._refresh_render()

    def _recompute_matches(self) -> None:
        self.matches = []
        self.match_index = -1
        if self.search is not None:
            self._extend_matches(0)

    def _extend_matches(self, start: int) -> None:
        assert self.search is not None
        search = self.search.search
        lines = self.lines
        self.matches.extend(
            i
            for i in range(start, len(lines))
            if search(strip_ansi(lines[i]) if "\x1b" in lines[i] else lines[i])
        )

    def next_match(self, step: int = 1) -> bool:
        """Move to the next (``step=1``) or previous (``-1``) match; False when there is none."""
        # Lines pruned by max_lines shift indexes: recompute lazily when out of range.
        if self.matches and self.matches[-1] >= len(self.lines):
            self._recompute_matches()
        if not self.matches:
            return False
        if self.match_index < 0:
            self.match_index = len(self.matches) - 1 if step < 0 else 0
        else:
            self.match_index = (self.match_index + step) % len(self.matches)
        self.auto_scroll = False
        self._show_match()
        self._refresh_render()
        return True

    def _show_match(self) -> None:
        if 0 <= self.match_index < len(self.matches):
            y = self.matches[self.match_index]
            self.scroll_to(y=max(0, y - self.size.height // 2), animate=False)

    def _refresh_render(self) -> None:
        self._render_line_cache.clear()
        self.refresh()

    def _update_size(self, updates: int, lines: list[str]) -> None:  # type: ignore[override]
        """Widen the virtual size for new lines, on the UI thread, without Log's per-call thread worker.

        ``Log`` measures every batch in a thread worker that then blocks on ``call_from_thread``;
        under a flood those workers compete with the event loop for the GIL. ASCII lines (nearly
        all log lines) are measured with ``len``; only the others pay for ``cell_len``.
        """
        if not lines:
            return
        # Colour codes make len() overestimate a little; that only widens the horizontal scroll range.
        widest = max(len(line) if line.isascii() else cell_len(strip_ansi(line)) for line in lines)
        self._update_maximum_width(updates, widest)

    # -- rendering (colours + highlights) ---------------------------------------------
    @classmethod
    def _process_line(cls, line: str) -> str:
        # Used by Log for width measurement: measure what is shown, not the escape codes.
        return super()._process_line(strip_ansi(line) if "\x1b" in line else line)

    def _render_line_strip(self, y: int, rich_style: Style) -> Strip:
        raw = self.lines[y]
        if "\x1b" in raw:
            text = Text.from_ansi(raw.expandtabs(), no_wrap=True, end="")
            text.stylize_before(rich_style)
        else:
            text = Text(super()._process_line(raw), no_wrap=True, end="")
            text.stylize(rich_style)
        if self.search is not None:
            current = self.matches[self.match_index] if 0 <= self.match_index < len(self.matches) else -1
            style = CURRENT_STYLE if y == current else MATCH_STYLE
            for m in self.search.finditer(text.plain):
                if m.end() > m.start():
                    text.stylize(style, m.start(), m.end())
        selection = self.text_selection
        if selection is not None and (span := selection.get_span(y - self._clear_y)) is not None:
            start, end = span
            text.stylize(
                self.screen.get_component_rich_style("screen--selection"),
                start,
                len(text) if end == -1 else end,
            )
        return Strip(text.render(self.app.console), cell_len(text.plain))

    def status(self) -> str:
        """One line for the status bar: follow, filter, matches, dropped."""
        parts = ["follow" if self.auto_scroll else "paused"]
        if self.filter is not None:
            parts.append(f"filter '{self.filter_text or self.filter.pattern}'")
        if self.search is not None:
            pos = f"{self.match_index + 1}/{len(self.matches)}" if self.matches else "0"
            parts.append(f"search '{self.search_text or self.search.pattern}' {pos}")
        dropped = (self.buffer.dropped if self.buffer else 0) + self.missed
        if dropped:
            parts.append(f"{dropped} dropped")
        parts.append(f"{self.line_count} lines")
        return " · ".join(parts)
