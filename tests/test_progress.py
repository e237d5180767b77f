"""Unit tests of the progress model: states, totals, logs, subscriptions (no daemon)."""

from __future__ import annotations

import asyncio
import time

from attune_console.core.progress import (
    STDERR,
    STDOUT,
    BuildRun,
    EventKind,
    RunState,
    StepKind,
    StepLog,
    StepState,
    StepWarning,
    parse_exit_code,
    split_vertex_name,
)


def test_split_vertex_name() -> None:
    assert split_vertex_name("[builder 4/6] COPY crates/api/ ./crates/api/") == (
        "builder",
        4,
        6,
        "COPY crates/api/ ./crates/api/",
    )
    assert split_vertex_name("[2/3] RUN make") == (None, 2, 3, "RUN make")
    assert split_vertex_name("[internal] load .dockerignore") == (
        None,
        None,
        None,
        "[internal] load .dockerignore",
    )
    assert split_vertex_name("exporting to image") == (None, None, None, "exporting to image")
    assert split_vertex_name("[stage-1 2/3] RUN x") == ("stage-1", 2, 3, "RUN x")


def test_parse_exit_code() -> None:
    err = 'process "/bin/sh -c cargo build --release" did not complete successfully: exit code: 101'
    assert parse_exit_code(err) == 101
    assert parse_exit_code("executor failed running [/bin/sh -c false]: exit code: 1") == 1
    assert parse_exit_code("failed to compute cache key") is None


def test_states_and_totals() -> None:
    run = BuildRun("api", "demo-api")
    run.start()
    t0 = time.time()
    run.apply_vertex("sha:a", "[internal] load build definition", started=t0, completed=t0 + 1, cached=False)
    run.apply_vertex("sha:b", "[planner 1/5] FROM rust:local", started=t0, completed=t0 + 1, cached=False)
    run.apply_vertex("sha:c", "[planner 2/5] COPY Cargo.toml ./", started=None, completed=None, cached=False)
    c = run.step_by_digest["sha:c"]
    assert c.state is StepState.QUEUED
    run.apply_vertex("sha:c", "[planner 2/5] COPY Cargo.toml ./", started=t0, completed=t0, cached=True)
    name = "[builder 4/6] COPY crates/api/ ./crates/api/"
    run.apply_vertex("sha:d", name, started=t0 + 2, completed=None, cached=False)
    d = run.step_by_digest["sha:d"]
    assert d.state is StepState.RUNNING
    assert d.stage == "builder" and d.index == 4 and d.instruction.startswith("COPY")
    run.apply_vertex("sha:d", d.name, started=t0 + 2, completed=t0 + 3, cached=False)
    assert c.state is StepState.CACHED and d.state is StepState.DONE
    assert run.step_by_digest["sha:a"].kind is StepKind.INTERNAL
    assert run.step_by_digest["sha:b"].kind is StepKind.FROM
    assert (run.cached, run.total) == (1, 2)
    assert run.first_missed_step is d
    assert d.duration == 1.0
    run.finish(RunState.DONE, image_id="sha256:abc")
    assert run.state is RunState.DONE and run.image_id == "sha256:abc"
    summary = run.summary()
    assert summary["result"] == "done" and summary["cached"] == 1 and summary["total"] == 2
    assert [s["state"] for s in summary["steps"]] == ["done", "done", "cached", "done"]


def test_error_step_exit_code_and_log_tail() -> None:
    run = BuildRun("api")
    run.start()
    name = "[builder 6/6] RUN cargo build --release"
    run.apply_vertex("v", name, started=1.0, completed=None, cached=False)
    run.apply_log("v", STDERR, b"error[E0308]: mismatched types\n  --> crates/api/src/main.rs:3:5\n")
    err = 'process "/bin/sh -c cargo build" did not complete successfully: exit code: 101'
    run.apply_vertex("v", name, started=1.0, completed=2.0, cached=False, error=err)
    run.finish(RunState.ERROR, error=err)
    assert run.error_step is run.steps[0]
    assert run.exit_code == 101
    assert run.last_log_lines(1) == [(STDERR, "  --> crates/api/src/main.rs:3:5")]
    assert "mismatched types" in run.steps[0].log.text()


def test_cancel_marks_unfinished_steps() -> None:
    run = BuildRun("api")
    run.start()
    run.apply_vertex("a", "[b 2/3] RUN sleep 100", started=1.0, completed=None, cached=False)
    run.apply_vertex("b", "[b 3/3] RUN true", started=None, completed=None, cached=False)
    run.apply_vertex("c", "[b 1/3] FROM x", started=1.0, completed=1.0, cached=False)
    run.finish(RunState.CANCELLED, error="cancelled")
    assert [s.state for s in run.steps] == [StepState.CANCELLED, StepState.CANCELLED, StepState.DONE]
    # a vertex error of "context canceled" is a cancel, not a failure
    run2 = BuildRun("x")
    run2.apply_vertex(
        "a", "[b 2/3] RUN x", started=1.0, completed=2.0, cached=False, error="context canceled"
    )
    assert run2.steps[0].state is StepState.CANCELLED and run2.error_step is None


def test_log_carriage_return_collapse_and_partials() -> None:
    log = StepLog(maxlen=100)
    log.feed(STDOUT, b"Compiling a\nBuilding [=>   ] 1/9\rBuilding [==>  ] 2/9\r")
    assert list(log.lines) == [(STDOUT, "Compiling a")]
    assert log.partial(STDOUT) == "Building [==>  ] 2/9"
    log.feed(STDOUT, b"Building [=====] 9/9\r\nFinished\n")
    assert list(log.lines) == [
        (STDOUT, "Compiling a"),
        (STDOUT, "Building [=====] 9/9"),
        (STDOUT, "Finished"),
    ]
    log.feed(STDERR, b"warn: no newline")
    log.close()
    assert log.lines[-1] == (STDERR, "warn: no newline")
    assert log.total == 4


def test_log_is_bounded_and_counts_dropped() -> None:
    log = StepLog(maxlen=10)
    for i in range(100):
        log.feed(STDOUT, f"line {i}\nline {i}b\n".encode())
    assert len(log) == 10 and log.total == 200
    assert log.lines[-1] == (STDOUT, "line 99b")


def test_log_partial_progress_bar_never_grows() -> None:
    log = StepLog(maxlen=10)
    for i in range(10000):
        log.feed(STDOUT, f"progress {i}\r".encode())
    assert log.partial(STDOUT) == "progress 9999"
    assert len(log._partial[STDOUT]) < 20


def test_subscribe_batches_and_unsubscribe() -> None:
    run = BuildRun("api")
    batches: list[list[EventKind]] = []
    unsub = run.subscribe(lambda evs: batches.append([e.kind for e in evs]))
    run.start()
    run.apply_vertex("v", "[b 2/2] RUN x", started=1.0, completed=None, cached=False)
    for _ in range(50):
        run.apply_log("v", STDOUT, b"a\nb\n")
    run.apply_status("v", "layer1", current=10, total=100)
    run.apply_warning("v", StepWarning("FromAsCasing"))
    run.flush()
    assert batches == [
        [
            EventKind.RUN_STATE,
            EventKind.STEP_ADDED,
            EventKind.STEP_LOG,  # one log event per step per batch, not one per chunk
            EventKind.STEP_PROGRESS,
            EventKind.STEP_WARNING,
        ]
    ]
    step = run.steps[0]
    assert (step.current_bytes, step.total_bytes) == (10, 100)
    assert len(step.log) == 100
    unsub()
    run.finish(RunState.DONE)
    assert len(batches) == 1


def test_broken_subscriber_does_not_break_the_run() -> None:
    run = BuildRun("api")

    def boom(_events: object) -> None:
        raise RuntimeError("consumer bug")

    run.subscribe(boom)
    run.start()
    run.flush()
    run.finish(RunState.DONE)
    assert run.state is RunState.DONE
    assert any("consumer bug" in m for m in run.messages)


def test_line_resolver_is_used() -> None:
    run = BuildRun("api", line_resolver=lambda stage, idx, instr: 10 * (idx or 0))
    run.apply_vertex("v", "[b 3/4] RUN x", started=None, completed=None, cached=False)
    run.apply_vertex("w", "[internal] load metadata", started=None, completed=None, cached=False)
    assert run.steps[0].line == 30 and run.steps[1].line is None


async def test_async_updates_iterator_ends_with_run() -> None:
    run = BuildRun("api")
    seen: list[EventKind] = []

    async def consume() -> None:
        async for batch in run.updates():
            seen.extend(e.kind for e in batch)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    run.start()
    run.apply_vertex("v", "[b 2/2] RUN x", started=1.0, completed=2.0, cached=True)
    run.flush()
    run.finish(RunState.DONE)
    await asyncio.wait_for(task, 2)
    assert seen[0] is EventKind.RUN_STATE and seen[-1] is EventKind.RUN_STATE
    assert EventKind.STEP_ADDED in seen


def test_many_log_lines_are_cheap() -> None:
    """100k lines in 1000-line chunks must take well under a second (it is an append, not per-line work)."""
    log = StepLog()
    chunk = ("   Compiling serde v1.0.200\n" * 1000).encode()
    t = time.perf_counter()
    for _ in range(100):
        log.feed(STDOUT, chunk)
    assert time.perf_counter() - t < 1.0
    assert log.total == 100_000


def test_restarted_vertex_runs_again() -> None:
    run = BuildRun("api")
    run.apply_vertex("v", "[internal] load build context", started=1.0, completed=2.0, cached=False)
    run.apply_vertex("v", "[internal] load build context", started=3.0, completed=None, cached=False)
    step = run.steps[0]
    assert step.state is StepState.RUNNING and step.completed is None and step.started == 3.0
