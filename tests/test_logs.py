"""Unit tests of log plumbing: timestamps, the bounded queue and its drop counts, reattach dedup."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

from attune_console.core.logs import (
    BoundedQueue,
    LogFollower,
    LogLine,
    LogNotice,
    _Cursor,
    split_timestamp,
    timestamp_key,
)


def line(i: int, service: str = "api") -> LogLine:
    return LogLine(service, "c", "stdout", "", f"line {i}")


def test_timestamp_key_orders_trimmed_fractions_numerically() -> None:
    # Docker trims trailing zeros: ".1" is 100 ms and sorts after ".09".
    assert timestamp_key("2026-12-04T15:50:01.1Z") > timestamp_key("2026-12-04T15:50:01.09Z")
    assert timestamp_key("2026-12-04T15:50:01.100Z") == timestamp_key("2026-12-04T15:50:01.1Z")
    assert timestamp_key("2026-12-04T15:50:02Z") > timestamp_key("2026-12-04T15:50:01.999999999Z")


def test_split_timestamp() -> None:
    assert split_timestamp("2026-12-04T15:50:01.5Z hello world") == ("2026-12-04T15:50:01.5Z", "hello world")
    assert split_timestamp("no stamp here") == ("", "no stamp here")


def test_queue_drops_oldest_and_reports_the_count_first() -> None:
    q = BoundedQueue(capacity=3)
    for i in range(5):
        q.put(line(i))
    assert len(q) == 3
    batch = q.drain()
    assert batch[0] == LogNotice("api", "dropped", "2 lines dropped", 2)
    assert [b.text for b in batch[1:] if isinstance(b, LogLine)] == ["line 2", "line 3", "line 4"]
    assert q.total_dropped == 2
    assert q.drain() == []


def test_queue_counts_drops_per_service() -> None:
    q = BoundedQueue(capacity=2)
    q.put(line(0, "api"))
    q.put(line(1, "worker"))
    q.put(line(2, "worker"))
    q.put(line(3, "worker"))
    notices = [b for b in q.drain() if isinstance(b, LogNotice)]
    assert {(n.service, n.count) for n in notices} == {("api", 1), ("worker", 1)}


async def test_queue_wakes_the_consumer_from_producer_threads_and_stays_bounded() -> None:
    q = BoundedQueue(capacity=1000)
    q.bind(asyncio.get_running_loop())
    total = 20_000

    def produce() -> None:
        for i in range(total):
            q.put(line(i))

    t = threading.Thread(target=produce)
    t.start()
    got = 0
    dropped = 0
    while got + dropped < total:
        batch = await asyncio.wait_for(q.get_batch(), 5)
        assert len(batch) <= 1000 + 1
        got += sum(isinstance(b, LogLine) for b in batch)
        dropped += sum(b.count for b in batch if isinstance(b, LogNotice))
    t.join()
    assert got + dropped == total
    assert dropped == q.total_dropped


def test_reattach_skips_lines_already_delivered() -> None:
    f = LogFollower(client=None, project="p", services=["api"], max_line=20)
    cur = _Cursor(container="abc")
    c = SimpleNamespace(name="p_api_1")
    f._emit("api", c, cur, "stdout", b"2026-12-04T15:50:01.5Z first")
    f._emit("api", c, cur, "stdout", b"2026-12-04T15:50:02Z second")
    # After a restart the stream is reopened from the whole second: old lines come again.
    f._emit("api", c, cur, "stdout", b"2026-12-04T15:50:01.5Z first")
    f._emit("api", c, cur, "stdout", b"2026-12-04T15:50:02Z second")
    f._emit("api", c, cur, "stdout", b"2026-12-04T15:50:02.000000001Z third")
    f._emit("api", c, cur, "stderr", b"2026-12-04T15:50:01.5Z err kept apart")
    f._emit("api", c, cur, "stdout", b"2026-12-04T15:50:03Z " + b"x" * 50)
    items = f.queue.drain()
    texts = [(i.stream, i.text) for i in items if isinstance(i, LogLine)]
    assert texts == [
        ("stdout", "first"),
        ("stdout", "second"),
        ("stdout", "third"),
        ("stderr", "err kept apart"),
        ("stdout", "x" * 20 + " [line cut]"),
    ]
