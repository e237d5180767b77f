"""Unit tests of the bounded log ring buffer (no UI, no Docker)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from attune_console.core.logbuffer import (
    LogBuffer,
    clean_line,
    compile_matcher,
    filter_lines,
    find_matches,
    strip_ansi,
)


def test_bound_drops_oldest_and_counts_them() -> None:
    buf = LogBuffer(maxlen=5)
    buf.extend([f"line {i}" for i in range(12)], source="api")
    assert len(buf) == 5
    assert buf.dropped == 7
    assert [line.text for line in buf.snapshot()] == [f"line {i}" for i in range(7, 12)]


def test_drain_returns_new_lines_and_missed_count() -> None:
    buf = LogBuffer(maxlen=4)
    buf.extend(["a", "b"])
    first = buf.drain(0)
    assert [x.text for x in first.lines] == ["a", "b"]
    assert first.missed == 0
    buf.extend(["c", "d", "e", "f", "g"])  # a consumer at cursor 2 misses c
    second = buf.drain(first.cursor)
    assert [x.text for x in second.lines] == ["d", "e", "f", "g"]
    assert second.missed == 1
    assert buf.drain(second.cursor).lines == []


def test_drain_limit_batches() -> None:
    buf = LogBuffer(maxlen=100)
    buf.extend(str(i) for i in range(10))
    d = buf.drain(0, limit=3)
    assert [x.text for x in d.lines] == ["0", "1", "2"]
    d = buf.drain(d.cursor, limit=100)
    assert [x.text for x in d.lines] == [str(i) for i in range(3, 10)]


def test_clear_is_not_counted_as_missed() -> None:
    buf = LogBuffer(maxlen=10)
    buf.extend(["a", "b", "c"])
    buf.clear()
    buf.append("d")
    d = buf.drain(0)
    assert [x.text for x in d.lines] == ["d"]
    assert d.missed == 0


def test_append_splits_newlines_and_decodes_bad_bytes() -> None:
    buf = LogBuffer()
    buf.append(b"ok \xff\xfe end\nsecond\n", source="w")
    texts = [x.text for x in buf.snapshot()]
    assert texts == ["ok \ufffd\ufffd end", "second"]
    assert {x.source for x in buf.snapshot()} == {"w"}


def test_clean_line_keeps_colours_drops_other_escapes_and_cr_frames() -> None:
    assert clean_line("\x1b[31mred\x1b[0m") == "\x1b[31mred\x1b[0m"
    assert clean_line("\x1b[2K\x1b[1Gdone") == "done"
    assert clean_line("10%\r50%\r100%\r") == "100%"
    assert clean_line("a\tb\x07") == "a   b"
    assert strip_ansi("\x1b[1;32mgreen\x1b[0m text") == "green text"


def test_search_and_filter_use_plain_text() -> None:
    buf = LogBuffer()
    buf.extend(["\x1b[31mERROR\x1b[0m boom", "info fine"], source="api")
    buf.extend(["error elsewhere"], source="worker")
    pat = compile_matcher("error")
    assert [x.source for x in buf.select(None, pat)] == ["api", "worker"]
    assert [x.text for x in buf.select("worker", None)] == ["error elsewhere"]
    assert next(filter_lines(buf.snapshot(), lambda s: s != "api", pat)).source == "worker"
    assert find_matches([x.text for x in buf.snapshot()], compile_matcher("ERROR", case=True)) == [0]
    assert find_matches(["a.b", "axb"], compile_matcher("a.b")) == [0]  # literal by default
    assert find_matches(["a.b", "axb"], compile_matcher("a.b", regex=True)) == [0, 1]


def test_bad_regex_raises_re_error() -> None:
    import re

    with pytest.raises(re.error):
        compile_matcher("(", regex=True)


def test_save_writes_plain_text(tmp_path: Path) -> None:
    buf = LogBuffer()
    buf.extend(["\x1b[32mgreen\x1b[0m", "plain"], source="api")
    out = tmp_path / "log.txt"
    assert buf.save(out) == 2
    assert out.read_text() == "api | green\napi | plain\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_many_threads_append_without_losing_lines() -> None:
    buf = LogBuffer(maxlen=1_000_000)

    def produce(n: int) -> None:
        for i in range(2000):
            buf.append(f"{n}:{i}", source=str(n))

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = buf.snapshot()
    assert len(lines) == 16000
    assert [x.seq for x in lines] == list(range(16000))
    assert buf.dropped == 0
