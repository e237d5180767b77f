"""A bounded ring buffer of log lines that many producers feed and one UI drains.

Why a separate buffer instead of writing into a widget: log lines arrive in
bursts (10k lines/s from a chatty container or a cargo build), from threads and
coroutines alike. Producers only pay for a lock and a ``deque.append``; the UI
drains what is new on a timer and writes it in one batch. The buffer keeps the
history (for search, filter and save) with a hard bound, and counts what the
bound dropped so the UI can say "N lines dropped" instead of growing without
limit the way lazydocker does.

Lines are cleaned once on the way in: bytes are decoded with replacement (a
non-UTF-8 byte never raises), carriage-return progress redraws keep only the
last frame, and escape sequences other than SGR colours are removed, so the
widget can render colours and nothing else.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

#: Every CSI / OSC / two-byte escape sequence (SGR included).
_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_NON_SGR_ESCAPE = re.compile(
    r"\x1b(?!\[[0-9;:]*m)(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])"
)
#: C0 control characters other than TAB and ESC.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]")


def strip_ansi(text: str) -> str:
    """``text`` without any escape sequence: what a user searches and saves."""
    return _ESCAPE.sub("", text)


def clean_line(raw: str | bytes) -> str:
    """One displayable line: decoded, last carriage-return frame, SGR colours kept.

    A trailing newline is removed; embedded newlines are the caller's business
    (:meth:`LogBuffer.append` splits them).
    """
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    if text.isprintable():  # the common case: nothing to clean (C-speed check)
        return text
    text = text.rstrip("\r\n")
    if "\r" in text:
        # A progress bar redraws itself with CR: the last non-empty frame is the line.
        frames = [f for f in text.split("\r") if f]
        text = frames[-1] if frames else ""
    if "\x1b" in text:
        text = _NON_SGR_ESCAPE.sub("", text)
    return _CONTROL.sub("", text.expandtabs(4))


class LogLine(NamedTuple):
    """One line and where it came from (a service name, a build step key, ...).

    A named tuple rather than a frozen dataclass: it is built once per log line, and tuple
    construction is several times cheaper.
    """

    seq: int
    source: str
    text: str

    @property
    def plain(self) -> str:
        """The text without colour codes."""
        return strip_ansi(self.text) if "\x1b" in self.text else self.text


@dataclass(frozen=True)
class Drained:
    """What :meth:`LogBuffer.drain` returns: new lines, the next cursor, lines missed."""

    lines: list[LogLine]
    cursor: int
    missed: int


def compile_matcher(pattern: str, *, regex: bool = False, case: bool = False) -> re.Pattern[str]:
    """A compiled search pattern; a plain string is matched literally.

    Raises :class:`re.error` for a bad regular expression, which the caller shows.
    """
    flags = 0 if case else re.IGNORECASE
    return re.compile(pattern if regex else re.escape(pattern), flags)


class LogBuffer:
    """Thread-safe bounded history of :class:`LogLine` with monotonically rising ``seq``.

    ``maxlen`` bounds memory; once full, the oldest line goes and ``dropped``
    counts it. Consumers keep a cursor (the next ``seq`` they want) and call
    :meth:`drain`; a consumer that fell further behind than ``maxlen`` learns
    how many lines it missed.
    """

    def __init__(self, maxlen: int = 100_000) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self.maxlen = maxlen
        self._lines: deque[LogLine] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._next_seq = 0
        self.dropped = 0
        self.cleared_at = 0

    # -- producers --------------------------------------------------------
    def append(self, raw: str | bytes, source: str = "") -> None:
        """Add one line (or several, if ``raw`` holds newlines)."""
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        if "\n" in text:
            self.extend(text.rstrip("\r\n").split("\n"), source)
            return
        text = clean_line(text)
        with self._lock:
            if len(self._lines) == self.maxlen:
                self.dropped += 1
            self._lines.append(LogLine(self._next_seq, source, text))
            self._next_seq += 1

    def extend(self, raws: Iterable[str | bytes], source: str = "") -> None:
        """Add many lines under one lock acquisition (the cheap path for bursts)."""
        cleaned = [clean_line(r) for r in raws]
        with self._lock:
            seq = self._next_seq
            overflow = len(self._lines) + len(cleaned) - self.maxlen
            if overflow > 0:
                self.dropped += overflow
            self._lines.extend([LogLine(seq + i, source, text) for i, text in enumerate(cleaned)])
            self._next_seq = seq + len(cleaned)

    # -- consumers --------------------------------------------------------
    @property
    def next_seq(self) -> int:
        """The ``seq`` the next appended line will get (a cursor at the end)."""
        return self._next_seq

    def __len__(self) -> int:
        return len(self._lines)

    def drain(self, cursor: int, limit: int | None = None) -> Drained:
        """Lines with ``seq >= cursor`` (at most ``limit``), the new cursor, and how many were lost."""
        with self._lock:
            end = self._next_seq
            if cursor >= end:
                return Drained([], cursor, 0)
            n = len(self._lines)
            if n == 0:
                return Drained([], end, 0)
            first = self._lines[0].seq
            # Lines removed by clear() were not missed; lines pushed out by the bound were.
            missed = max(0, first - max(cursor, self.cleared_at))
            start = max(cursor, first) - first
            stop = n if limit is None else min(n, start + limit)
            lines = list(itertools.islice(self._lines, start, stop))
        return Drained(lines, lines[-1].seq + 1 if lines else end, missed)

    def snapshot(self) -> list[LogLine]:
        """A copy of every line held, oldest first."""
        with self._lock:
            return list(self._lines)

    def tail(self, count: int) -> list[LogLine]:
        """The newest ``count`` lines."""
        with self._lock:
            n = len(self._lines)
            return [self._lines[i] for i in range(max(0, n - count), n)]

    def clear(self) -> None:
        """Forget the history (``seq`` keeps rising so cursors stay valid)."""
        with self._lock:
            self._lines.clear()
            self.cleared_at = self._next_seq

    # -- helpers ------------------------------------------------------------
    def select(
        self,
        source: Callable[[str], bool] | str | None = None,
        pattern: re.Pattern[str] | None = None,
    ) -> list[LogLine]:
        """Lines of one source (or a source predicate) whose plain text matches ``pattern``."""
        return list(filter_lines(self.snapshot(), source, pattern))

    def save(self, path: Path, lines: Iterable[LogLine] | None = None, with_source: bool = True) -> int:
        """Write ``lines`` (default: all) as plain text to ``path``; return the count.

        Written to a temporary file then renamed, so a failed save never leaves
        half a file where the user expects a whole one.
        """
        items = self.snapshot() if lines is None else list(lines)
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("w", encoding="utf-8", errors="replace") as fh:
            for line in items:
                prefix = f"{line.source} | " if with_source and line.source else ""
                fh.write(f"{prefix}{line.plain}\n")
        tmp.replace(path)
        return len(items)


def filter_lines(
    lines: Iterable[LogLine],
    source: Callable[[str], bool] | str | None = None,
    pattern: re.Pattern[str] | None = None,
) -> Iterator[LogLine]:
    """Lazily keep the lines of ``source`` that match ``pattern`` (either may be ``None``)."""
    if isinstance(source, str):
        wanted = source
        source = lambda s: s == wanted  # noqa: E731
    for line in lines:
        if source is not None and not source(line.source):
            continue
        if pattern is not None and not pattern.search(line.plain):
            continue
        yield line


def find_matches(texts: list[str], pattern: re.Pattern[str]) -> list[int]:
    """Indexes of the texts (plain, or with colour codes) that contain ``pattern``."""
    return [i for i, t in enumerate(texts) if pattern.search(strip_ansi(t) if "\x1b" in t else t)]


__all__ = [
    "Drained",
    "LogBuffer",
    "LogLine",
    "clean_line",
    "compile_matcher",
    "filter_lines",
    "find_matches",
    "strip_ansi",
]
