"""Build history in sqlite: stored where ATTUNE_CONSOLE_STATE_DIR says, queried newest first."""

from __future__ import annotations

from pathlib import Path

import pytest

from attune_console.core.history import History, default_history_path
from attune_console.core.progress import BuildRun, RunState


def _run(service: str, state: RunState, cached_steps: int, missed: bool) -> BuildRun:
    run = BuildRun(service, f"demo-{service}")
    run.start()
    for i in range(cached_steps):
        run.apply_vertex(f"c{i}", f"[b {i + 2}/9] COPY a{i} .", started=1.0, completed=1.0, cached=True)
    if missed:
        run.apply_vertex(
            "m", "[builder 5/9] COPY crates/api/ ./crates/api/", started=2.0, completed=3.0, cached=False
        )
    run.finish(state, image_id="sha256:1" if state is RunState.DONE else None)
    return run


def test_env_override_of_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATTUNE_CONSOLE_STATE_DIR", str(tmp_path / "state"))
    assert default_history_path() == tmp_path / "state" / "history.sqlite3"
    h = History()
    h.record(_run("api", RunState.DONE, 3, True))
    assert (tmp_path / "state" / "history.sqlite3").is_file()


def test_record_and_query(tmp_path: Path) -> None:
    h = History(tmp_path / "h.sqlite3")
    first = h.record(_run("api", RunState.DONE, 3, True), fingerprint="fp-1", workspace="/ws")
    h.record(_run("worker-shell", RunState.DONE, 4, False), workspace="/ws")
    h.record(_run("api", RunState.ERROR, 2, True), workspace="/ws")
    assert first > 0
    api = h.recent("api")
    assert [r.result for r in api] == ["error", "done"]
    done = h.last_success("api", workspace="/ws")
    assert done is not None and done.fingerprint == "fp-1"
    assert (done.cached, done.total) == (3, 4)
    assert done.first_missed_step == "[builder 5/9] COPY crates/api/ ./crates/api/"
    assert done.image_id == "sha256:1" and done.duration_s is not None
    ws = h.recent("worker-shell")[0]
    assert ws.first_missed_step is None and (ws.cached, ws.total) == (4, 4)
    assert len(h.recent()) == 3 and len(h.recent(limit=1)) == 1
    assert h.last_success("api", workspace="/elsewhere") is None
    # A second History on the same file sees the same rows (fresh connection per call).
    assert len(History(tmp_path / "h.sqlite3").recent()) == 3
