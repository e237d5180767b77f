"""Following the logs of one or several compose services, across restarts, in bounded memory.

Why not ``docker compose logs -f``: it stops following a container that restarts, it
merges stdout and stderr, and a slow reader makes it block. Here each service has a
thread that follows its current container through the SDK (two streams, stdout and
stderr, with daemon timestamps), backfills the last N lines on first attach, and when
the container stops waits for it (or its replacement) to run again, then reattaches
from the last timestamp it saw, so nothing is repeated or lost across a restart.

Memory is bounded twice: a line longer than ``max_line`` is cut, and the queue between
the threads and the consumer holds at most ``capacity`` items. When the consumer falls
behind, the oldest lines are dropped and counted; the consumer receives a
:class:`LogNotice` of kind ``dropped`` with the count in their place, never an
unbounded backlog (lazydocker's 1-2 GB failure mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from attune_console.core.services import project_containers

Stream = Literal["stdout", "stderr"]


@dataclass(frozen=True)
class LogLine:
    """One line of a container's output, with the daemon's timestamp (RFC 3339, nanoseconds)."""

    service: str
    container: str
    stream: Stream
    timestamp: str
    text: str


@dataclass(frozen=True)
class LogNotice:
    """Something about the stream rather than a line: attached, detached, or lines dropped."""

    service: str
    kind: Literal["attached", "detached", "dropped", "error"]
    detail: str = ""
    count: int = 0


LogItem = LogLine | LogNotice


def timestamp_key(ts: str) -> tuple[int, int]:
    """``2026-01-02T03:04:05.123Z`` as (epoch seconds, nanoseconds), for ordering and dedup.

    Docker trims trailing zeros of the fraction, so the strings do not sort as text.
    """
    base, _, frac = ts.rstrip("Z").partition(".")
    digits = "".join(ch for ch in frac if ch.isdigit())
    secs = int(datetime.fromisoformat(base).replace(tzinfo=timezone.utc).timestamp())
    return secs, int((digits + "000000000")[:9])


def split_timestamp(line: str) -> tuple[str, str]:
    """Split a ``timestamps=True`` log line into (timestamp, text)."""
    ts, sep, text = line.partition(" ")
    if not sep or not ts[:1].isdigit():
        return "", line
    return ts, text


class BoundedQueue:
    """A thread-safe queue that drops its oldest items when full and says how many it dropped.

    Producers (threads) never block; the asyncio consumer awaits :meth:`get_batch`.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._items: deque[LogItem] = deque()
        self._dropped: dict[str, int] = {}
        self.total_dropped = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._signalled = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()

    def put(self, item: LogItem) -> None:
        with self._lock:
            if len(self._items) >= self.capacity:
                old = self._items.popleft()
                if isinstance(old, LogLine):
                    self._dropped[old.service] = self._dropped.get(old.service, 0) + 1
                    self.total_dropped += 1
            self._items.append(item)
            wake = not self._signalled
            self._signalled = True
        if wake and self._loop is not None and self._event is not None:
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                self._loop.call_soon_threadsafe(self._event.set)

    def drain(self, limit: int | None = None) -> list[LogItem]:
        """What is queued now (up to ``limit``), drop notices first."""
        with self._lock:
            out: list[LogItem] = [
                LogNotice(s, "dropped", f"{n} lines dropped", n) for s, n in self._dropped.items()
            ]
            self._dropped.clear()
            n = len(self._items) if limit is None else min(limit, len(self._items))
            out.extend(self._items.popleft() for _ in range(n))
            self._signalled = bool(self._items)
        return out

    async def get_batch(self, limit: int | None = None) -> list[LogItem]:
        """Wait until something is queued, then return it in one batch (render in one go)."""
        assert self._event is not None, "bind() the queue to the running loop first"
        while True:
            batch = self.drain(limit)
            if batch:
                return batch
            self._event.clear()
            with self._lock:
                if self._items or self._dropped:
                    continue
                self._signalled = False
            await self._event.wait()

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class _Cursor:
    """How far one stream of one container has been read."""

    container: str = ""
    started_at: str = ""
    last: dict[str, tuple[int, int]] = field(default_factory=dict)


class LogFollower:
    """Follow ``services`` of ``project`` until :meth:`close`; consume with :meth:`batches`."""

    def __init__(
        self,
        client: Any,
        project: str,
        services: Iterable[str],
        *,
        tail: int = 200,
        capacity: int = 10_000,
        max_line: int = 16_384,
        poll: float = 0.25,
    ) -> None:
        self.client = client
        self.project = project
        self.services = list(services)
        self.tail = tail
        self.max_line = max_line
        self.poll = poll
        self.queue = BoundedQueue(capacity)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._streams: set[Any] = set()
        self._lock = threading.Lock()

    # lifecycle

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.queue.bind(loop or asyncio.get_running_loop())
        for svc in self.services:
            t = threading.Thread(
                target=self._follow_service, args=(svc,), name=f"attune-logs-{svc}", daemon=True
            )
            t.start()
            self._threads.append(t)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            streams = list(self._streams)
        for s in streams:
            with contextlib.suppress(Exception):
                s.close()
        for t in self._threads:
            t.join(timeout=5)

    async def __aenter__(self) -> LogFollower:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)

    async def batches(self) -> AsyncIterator[list[LogItem]]:
        while not self._stop.is_set():
            yield await self.queue.get_batch()

    # per service

    def _current(self, service: str) -> Any | None:
        """The service's container to follow: a running one, else the most recently started."""
        conts = project_containers(self.client, self.project, service)
        if not conts:
            return None
        running = [c for c in conts if c.status in {"running", "restarting"}]
        pool = running or conts
        return max(pool, key=lambda c: c.attrs.get("State", {}).get("StartedAt", ""))

    def _follow_service(self, service: str) -> None:
        cur = _Cursor()
        first = True
        while not self._stop.is_set():
            try:
                c = self._current(service)
            except Exception as exc:
                self.queue.put(LogNotice(service, "error", f"listing containers failed: {exc}"))
                self._stop.wait(1.0)
                continue
            if c is None:
                self._stop.wait(self.poll)
                continue
            started = c.attrs.get("State", {}).get("StartedAt", "")
            if c.id == cur.container and started == cur.started_at:
                # Already read to the end of this run; wait for a restart or a new container.
                self._stop.wait(self.poll)
                continue
            if c.id != cur.container:
                cur = _Cursor(container=c.id)
            cur.started_at = started
            self.queue.put(LogNotice(service, "attached", f"{c.name} ({c.short_id})"))
            self._attach(service, c, cur, tail=self.tail if first else "all")
            first = False
            if not self._stop.is_set():
                self.queue.put(LogNotice(service, "detached", f"{c.name} stopped"))

    def _attach(self, service: str, container: Any, cur: _Cursor, tail: int | str) -> None:
        threads = [
            threading.Thread(target=self._read, args=(service, container, cur, stream, tail), daemon=True)
            for stream in ("stdout", "stderr")
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _read(self, service: str, container: Any, cur: _Cursor, stream: Stream, tail: int | str) -> None:
        last = cur.last.get(stream)
        kwargs: dict[str, Any] = {
            "stream": True,
            "follow": True,
            "timestamps": True,
            "stdout": stream == "stdout",
            "stderr": stream == "stderr",
        }
        if last is not None:
            kwargs["since"] = last[0]  # whole seconds; the rest is skipped by timestamp below
        else:
            kwargs["tail"] = tail
        try:
            logs = container.logs(**kwargs)
        except Exception as exc:
            self.queue.put(LogNotice(service, "error", f"{stream}: {exc}"))
            return
        with self._lock:
            self._streams.add(logs)
        buf = b""
        try:
            for chunk in logs:
                buf += chunk
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    self._emit(service, container, cur, stream, raw)
                if len(buf) > self.max_line:
                    self._emit(service, container, cur, stream, buf)
                    buf = b""
            if buf:
                self._emit(service, container, cur, stream, buf)
        except Exception as exc:
            if not self._stop.is_set():
                self.queue.put(LogNotice(service, "error", f"{stream} stream broke: {exc}"))
        finally:
            with self._lock:
                self._streams.discard(logs)
            with contextlib.suppress(Exception):
                logs.close()

    def _emit(self, service: str, container: Any, cur: _Cursor, stream: Stream, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        ts, text = split_timestamp(line)
        if ts:
            try:
                key = timestamp_key(ts)
            except ValueError:
                key = None
            if key is not None:
                last = cur.last.get(stream)
                if last is not None and key <= last:
                    return  # already delivered before a reattach
                cur.last[stream] = key
        if len(text) > self.max_line:
            text = text[: self.max_line] + " [line cut]"
        self.queue.put(LogLine(service, container.name, stream, ts, text))
