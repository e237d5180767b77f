"""The BuildKit trace decoder over response streams recorded from the real daemon (tests/fixtures/traces)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from attune_console.core.buildkit import buildkit_status_pb2 as pb
from attune_console.core.buildkit.decode import TraceDecodeError, apply_status, classify, decode_trace
from attune_console.core.engine import dockerfile_line_resolver
from attune_console.core.progress import BuildRun, RunState, StepKind, StepState

TRACES = Path(__file__).parent / "fixtures" / "traces"


def replay(name: str) -> tuple[BuildRun, dict[str, list[str]]]:
    """Feed a recorded stream through classify/apply_status as the engine does; return the run and extras."""
    run = BuildRun(
        "api",
        "attune-e4-scratch-api",
        line_resolver=dockerfile_line_resolver(TRACES / "Dockerfile.optimized"),
    )
    run.start()
    extras: dict[str, list[str]] = {"image_id": [], "error": [], "stream": []}
    for raw in (TRACES / name).read_bytes().splitlines():
        if not raw.strip():
            continue
        item = classify(json.loads(raw))
        if item.kind == "trace":
            apply_status(run, item.status)
        else:
            extras[item.kind].append(item.text)
    return run, extras


def test_cold_build_every_instruction_ran() -> None:
    run, extras = replay("api-cold-nocache.jsonl")
    assert extras["image_id"] and extras["image_id"][0].startswith("sha256:")
    run.finish(RunState.DONE, image_id=extras["image_id"][0])
    assert all(s.state.finished for s in run.steps)
    counted = run.counted_steps
    assert run.total == len(counted) == 17
    # Every RUN and COPY really ran; BuildKit 0.8 still reports WORKDIR of a cached base as CACHED.
    for s in counted:
        if s.instruction.startswith(("RUN", "COPY")):
            assert s.state is StepState.DONE, s.name
    names = [s.name for s in run.steps]
    assert "[builder 2/3] COPY crates/api/ ./crates/api/" in names
    assert any(s.kind is StepKind.FROM for s in run.steps)
    assert any(s.kind is StepKind.INTERNAL and s.name == "exporting to image" for s in run.steps)
    cargo = next(s for s in run.steps if s.name.startswith("[builder 3/3] RUN"))
    assert "Compiling attune-api" in cargo.log.text()
    assert cargo.started is not None and cargo.completed is not None and cargo.completed > cargo.started


def test_cold_build_steps_map_to_dockerfile_lines() -> None:
    run, _ = replay("api-cold-nocache.jsonl")
    lines = (TRACES / "Dockerfile.optimized").read_text().splitlines()
    mapped = [s for s in run.steps if s.kind is not StepKind.INTERNAL]
    assert mapped and all(s.line is not None for s in mapped)
    for s in mapped:
        keyword = s.instruction.split()[0]
        assert lines[s.line - 1].startswith(keyword), (s.name, s.line)  # type: ignore[operator]
    copy_api = next(s for s in run.steps if s.name == "[builder 2/3] COPY crates/api/ ./crates/api/")
    assert lines[copy_api.line - 1] == "COPY crates/${SERVICE}/ ./crates/${SERVICE}/"  # type: ignore[operator]


def test_cached_rebuild_every_counted_step_cached() -> None:
    run, extras = replay("api-cached.jsonl")
    run.finish(RunState.DONE, image_id=extras["image_id"][0])
    assert (run.cached, run.total) == (17, 17)
    assert run.first_missed_step is None


def test_compile_error_names_step_exit_code_and_rustc_message() -> None:
    run, extras = replay("api-compile-error.jsonl")
    assert not extras["image_id"]
    assert extras["error"] and "exit code: 101" in extras["error"][0]
    run.finish(RunState.ERROR, error=extras["error"][0])
    step = run.error_step
    assert step is not None and step.name.startswith("[builder 3/3] RUN")
    assert step.state is StepState.ERROR and run.exit_code == 101
    tail = "\n".join(t for _, t in run.last_log_lines(20))
    assert "error[E0308]: mismatched types" in tail
    assert run.first_missed_step is not None and run.first_missed_step.name.startswith(
        "[builder 2/3] COPY crates/api/"
    )


def test_cancelled_stream_leaves_running_steps_cancelled() -> None:
    run, extras = replay("api-cancelled.jsonl")
    assert not extras["image_id"] and not extras["error"]
    running = [s for s in run.steps if s.state is StepState.RUNNING]
    assert [s.name[:13] for s in running] == ["[builder 3/3]"]
    run.finish(RunState.CANCELLED, error="cancelled")
    assert running[0].state is StepState.CANCELLED
    assert all(s.state.finished for s in run.steps)


def test_decode_roundtrip_and_errors() -> None:
    msg = pb.StatusResponse()
    v = msg.vertexes.add(digest="sha256:1", name="[b 1/1] RUN x", cached=True)
    v.started.FromSeconds(100)
    v.completed.FromSeconds(101)
    lg = msg.logs.add(vertex="sha256:1", stream=2, msg=b"oops\n")
    lg.timestamp.FromSeconds(100)
    w = msg.warnings.add(vertex="sha256:1", level=1, short=b"legacy syntax", detail=[b"use AS"], url="u")
    w.ranges.add().start.line = 7
    st = msg.statuses.add(ID="layer", vertex="sha256:1", current=5, total=10)
    st.started.FromSeconds(100)
    decoded = decode_trace(base64.b64encode(msg.SerializeToString()).decode())
    run = BuildRun("x")
    apply_status(run, decoded)
    step = run.steps[0]
    assert step.state is StepState.CACHED and step.duration == 1.0
    assert list(step.log.lines) == [(2, "oops")]
    assert step.warnings[0].short == "legacy syntax" and step.warnings[0].line == 7
    assert (step.current_bytes, step.total_bytes) == (5, 10)
    with pytest.raises(TraceDecodeError):
        decode_trace("not base64 !!")
    with pytest.raises(TraceDecodeError):
        decode_trace(base64.b64encode(b"\xff\xff\xff\xff").decode())


def test_classify_other_messages() -> None:
    assert classify({"id": "moby.image.id", "aux": {"ID": "sha256:abc"}}).text == "sha256:abc"
    err = classify({"errorDetail": {"message": "boom"}, "error": "boom"})
    assert (err.kind, err.text) == ("error", "boom")
    assert classify({"stream": "Successfully tagged x\n"}).kind == "stream"


def _printed(name: str, printer_cls: str) -> str:
    import io

    from attune_console.commands.build import JsonPrinter, PlainPrinter

    out = io.StringIO()
    printer = JsonPrinter(out) if printer_cls == "json" else PlainPrinter(out, prefix_service=False)
    run = BuildRun("api", "demo_api", line_resolver=dockerfile_line_resolver(TRACES / "Dockerfile.optimized"))
    run.subscribe(printer)
    run.start()
    image_id, error = None, None
    for raw in (TRACES / name).read_bytes().splitlines():
        item = classify(json.loads(raw))
        if item.kind == "trace":
            apply_status(run, item.status)
        elif item.kind == "image_id":
            image_id = item.text
        elif item.kind == "error":
            error = item.text
    if error:
        run.finish(RunState.ERROR, error=error)
    elif image_id:
        run.finish(RunState.DONE, image_id=image_id)
    else:
        run.finish(RunState.CANCELLED, error="cancelled")
    printer.finish(run)
    return out.getvalue()


def test_plain_printer_one_line_per_transition() -> None:
    out = _printed("api-cached.jsonl", "plain")
    lines = out.splitlines()
    assert "#20 [builder 2/3] COPY crates/api/ ./crates/api/ CACHED" in lines
    cached = [
        ln for ln in lines if ln.endswith(" CACHED") and re.match(r"^#\d+ \[\w+ +\d+/\d+\] (?!FROM)", ln)
    ]
    assert len(cached) == 17
    assert lines[-1].startswith("api: built demo_api (sha256:") and lines[-1].endswith("17/17 steps cached")
    # One line per transition: no step prints the same state twice.
    assert len(lines) == len(set(lines))


def test_plain_printer_shows_failing_step_log() -> None:
    out = _printed("api-compile-error.jsonl", "plain")
    assert "------ api: #21 [builder 3/3] RUN" in out and "(Dockerfile line 59)" in out
    assert "  error[E0308]: mismatched types" in out
    assert out.rstrip().splitlines()[-1].startswith("api: ERROR: executor failed running")


def test_json_printer_events_and_summary() -> None:
    out = _printed("api-compile-error.jsonl", "json")
    events = [json.loads(line) for line in out.splitlines()]
    kinds = {e["event"] for e in events}
    assert kinds == {"run", "step", "log", "summary"}
    summary = events[-1]
    assert summary["event"] == "summary" and summary["result"] == "error" and summary["exit_code"] == 101
    assert summary["error_step"].startswith("[builder 3/3] RUN")
    assert {"service", "image_id", "result", "cached", "total", "steps"} <= set(summary)
    failing = [e for e in events if e["event"] == "step" and e["state"] == "error"]
    assert failing and failing[0]["exit_code"] == 101 and failing[0]["line"] == 59
    logged = [ln["text"] for e in events if e["event"] == "log" for ln in e["lines"]]
    assert "error[E0308]: mismatched types" in logged
    cargo_log_events = [e for e in events if e["event"] == "log" and e["step"] == 21]
    emitted = [ln["text"] for e in cargo_log_events for ln in e["lines"]]
    assert emitted.count("error[E0308]: mismatched types") == 1


def test_line_resolver_follows_buildkit_numbering(tmp_path: Path) -> None:
    df = tmp_path / "Dockerfile"
    df.write_text(
        "ARG BASE=debian\n"  # 1
        "FROM ${BASE} AS base\n"  # 2: [base 1/4]
        "ENV A=1\n"  # 3: not a vertex
        "WORKDIR /w\n"  # 4: [base 2/4]
        "# comment\n"  # 5
        "RUN echo a \\\n"  # 6: [base 3/4] (continued)
        "    && echo b\n"  # 7
        "COPY x y\n"  # 8: [base 4/4]
        "FROM base AS next\n"  # 9: from a stage -> no FROM vertex
        "RUN true\n"  # 10: [next 1/1]
        "FROM scratch\n"  # 11: scratch -> no FROM vertex; unnamed stage
        "COPY --from=next /w /w\n"  # 12: [1/1]
    )
    resolve = dockerfile_line_resolver(df)
    assert resolve("base", 1, "FROM docker.io/library/debian") == 2
    assert resolve("base", 2, "WORKDIR /w") == 4
    assert resolve("base", 3, "RUN echo a     && echo b") == 6
    assert resolve("base", 4, "COPY x y") == 8
    assert resolve("next", 1, "RUN true") == 10
    assert resolve(None, 1, "COPY --from=next /w /w") == 12
    assert resolve("base", 3, "COPY x y") is None  # keyword mismatch: no line rather than a wrong one
    assert resolve("nope", 1, "RUN x") is None
    assert dockerfile_line_resolver(tmp_path / "missing")("base", 1, "FROM x") is None
