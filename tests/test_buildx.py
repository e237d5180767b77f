"""The buildx rawjson path: parsing recorded/constructed lines into the same model (buildx is absent here)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from attune_console.core.buildkit.decode import apply_status, classify
from attune_console.core.buildx import (
    BuildxBuilder,
    apply_rawjson,
    build_argv,
    detect_builder,
    parse_line,
    parse_time,
)
from attune_console.core.engine import BuildEngine, BuildTarget
from attune_console.core.progress import BuildRun, RunState, StepState

TRACES = Path(__file__).parent / "fixtures" / "traces"


def _go_time(ts: Any) -> str:
    """A protobuf Timestamp as Go's encoding/json writes a time.Time (RFC 3339 with nanoseconds)."""
    base = datetime.fromtimestamp(ts.seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{ts.nanos:09d}Z".replace(".000000000Z", "Z")


def _to_rawjson(msg: Any) -> str:
    """Re-encode a recorded StatusResponse the way buildx's rawjson display marshals client.SolveStatus."""
    out: dict[str, Any] = {}
    if msg.vertexes:
        out["vertexes"] = []
        for v in msg.vertexes:
            d: dict[str, Any] = {"digest": v.digest, "name": v.name}
            if v.inputs:
                d["inputs"] = list(v.inputs)
            if v.HasField("started"):
                d["started"] = _go_time(v.started)
            if v.HasField("completed"):
                d["completed"] = _go_time(v.completed)
            if v.cached:
                d["cached"] = True
            if v.error:
                d["error"] = v.error
            out["vertexes"].append(d)
    if msg.statuses:
        out["statuses"] = [
            {
                "id": s.ID,
                "vertex": s.vertex,
                "name": s.name,
                "current": s.current,
                "total": s.total,
                "timestamp": _go_time(s.timestamp),
            }
            for s in msg.statuses
        ]
    if msg.logs:
        out["logs"] = [
            {
                "vertex": lg.vertex,
                "stream": lg.stream,
                "data": base64.b64encode(lg.msg).decode(),
                "timestamp": _go_time(lg.timestamp),
            }
            for lg in msg.logs
        ]
    return json.dumps(out)


@pytest.mark.parametrize("name", ["api-cold-nocache.jsonl", "api-compile-error.jsonl", "api-cached.jsonl"])
def test_rawjson_feeds_the_same_model_as_the_engine_api(name: str) -> None:
    via_pb, via_json = BuildRun("api"), BuildRun("api")
    for raw in (TRACES / name).read_bytes().splitlines():
        item = classify(json.loads(raw))
        if item.kind != "trace":
            continue
        apply_status(via_pb, item.status)
        obj = parse_line(_to_rawjson(item.status) + "\n")
        if obj is None:  # an empty StatusResponse has no keys; buildx never prints one
            continue
        apply_rawjson(via_json, obj)

    def shape(run: BuildRun) -> list[tuple[str, str, bool, bool, str, str | None]]:
        return [
            (s.name, s.state.value, s.started is not None, s.completed is not None, s.log.text(), s.error)
            for s in run.steps
        ]

    assert shape(via_json) == shape(via_pb)
    assert [s.started for s in via_json.steps] == pytest.approx([s.started for s in via_pb.steps], abs=1e-5)
    assert (via_json.cached, via_json.total) == (via_pb.cached, via_pb.total)


def test_handwritten_rawjson_lines() -> None:
    lines = [
        '{"vertexes":[{"digest":"sha256:aa","name":"[builder 2/3] COPY crates/api/ ./crates/api/",'
        '"started":"2026-12-04T15:00:00.5+01:00"}]}',
        '{"statuses":[{"id":"extracting sha256:1","vertex":"sha256:aa","current":512,"total":1024,'
        '"timestamp":"2026-12-04T14:00:01Z"}]}',
        '{"logs":[{"vertex":"sha256:aa","stream":2,"data":"'
        + base64.b64encode(b"warn\rWARN\n").decode()
        + '","timestamp":"0001-01-01T00:00:00Z"}]}',
        '{"warnings":[{"vertex":"sha256:aa","level":1,"short":"'
        + base64.b64encode(b"FromAsCasing").decode()
        + '","detail":["'
        + base64.b64encode(b"'as' and 'FROM' keywords' casing do not match").decode()
        + '"],"url":"https://docs.docker.com/go/dockerfile/rule/from-as-casing/",'
        '"range":[{"start":{"line":15},"end":{"line":15}}]}]}',
        '{"vertexes":[{"digest":"sha256:aa","name":"[builder 2/3] COPY crates/api/ ./crates/api/",'
        '"started":"2026-12-04T15:00:00.5+01:00","completed":"2026-12-04T14:00:02.250000000Z"}]}',
        "ERROR: failed to solve: something",
    ]
    run = BuildRun("api")
    parsed = [parse_line(x) for x in lines]
    assert parsed[-1] is None
    for obj in parsed:
        if obj is not None:
            apply_rawjson(run, obj)
    step = run.steps[0]
    assert step.state is StepState.DONE
    assert step.duration == pytest.approx(1.75)
    assert (step.current_bytes, step.total_bytes) == (512, 1024)
    assert list(step.log.lines) == [(2, "WARN")]
    assert step.warnings[0].short == "FromAsCasing" and step.warnings[0].line == 15


def test_parse_time() -> None:
    assert parse_time("2026-12-04T14:00:00Z") == datetime(2026, 12, 4, 14, tzinfo=timezone.utc).timestamp()
    assert parse_time("2026-12-04T14:00:00.123456789Z") == pytest.approx(
        datetime(2026, 12, 4, 14, tzinfo=timezone.utc).timestamp() + 0.123456789
    )
    assert (
        parse_time("2026-12-04T15:00:00-01:00") == datetime(2026, 12, 4, 16, tzinfo=timezone.utc).timestamp()
    )
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time(None) is None and parse_time("yesterday") is None


def test_build_argv_passes_cache_options(tmp_path: Path) -> None:
    t = BuildTarget(
        "api",
        "demo-api",
        tmp_path,
        tmp_path / "docker/Dockerfile.optimized",
        {"SERVICE": "api"},
        "runtime",
        cache_from=("type=registry,ref=reg.example/api:cache",),
        cache_to=("type=registry,ref=reg.example/api:cache,mode=max",),
    )
    argv = build_argv(BuildxBuilder("farm", "remote"), t, iidfile=tmp_path / "iid", no_cache=True)
    assert argv[:6] == ["docker", "buildx", "build", "--builder", "farm", "--progress=rawjson"]
    assert argv[argv.index("--build-arg") : argv.index("--build-arg") + 2] == ["--build-arg", "SERVICE=api"]
    assert "--no-cache" in argv and "--load" in argv and argv[-1] == str(tmp_path)
    assert argv[argv.index("--cache-from") + 1] == "type=registry,ref=reg.example/api:cache"
    assert argv[argv.index("--cache-to") + 1].endswith("mode=max")
    assert argv[argv.index("--target") + 1] == "runtime"


FAKE_DOCKER = r"""#!/usr/bin/env python3
# A stand-in for `docker` that answers `buildx version` and replays rawjson for `buildx build`.
import json, sys, time
args = sys.argv[1:]
if args[:2] == ["buildx", "version"]:
    print("github.com/docker/buildx v0.99 fake"); sys.exit(0)
iid = args[args.index("--iidfile") + 1]
def emit(obj): sys.stderr.write(json.dumps(obj) + "\n"); sys.stderr.flush()
T0, T1 = "2026-12-04T14:00:00Z", "2026-12-04T14:00:01Z"
COPY = {"digest": "sha256:1", "name": "[builder 1/2] COPY . .", "started": T0, "completed": T0}
COPY["cached"] = True
RUN = {"digest": "sha256:2", "name": "[builder 2/2] RUN cargo build", "started": T1}
emit({"vertexes": [COPY]})
emit({"vertexes": [RUN]})
if "FAIL" in " ".join(args):
    err = "process did not complete successfully: exit code: 101"
    emit({"vertexes": [dict(RUN, completed="2026-12-04T14:00:02Z", error=err)]})
    sys.stderr.write("ERROR: failed to solve: " + err + "\n"); sys.exit(1)
if "SLOW" in " ".join(args):
    time.sleep(60)
emit({"vertexes": [dict(RUN, completed="2026-12-04T14:00:03Z")]})
open(iid, "w").write("sha256:feedface")
"""


@pytest.fixture
def fake_buildx(tmp_path: Path) -> dict[str, str]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "docker"
    exe.write_text(FAKE_DOCKER)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    cfg = tmp_path / "dockercfg"
    (cfg / "buildx" / "instances").mkdir(parents=True)
    (cfg / "buildx" / "current").write_text(
        json.dumps({"Key": "unix:///var/run/docker.sock", "Name": "farm"})
    )
    (cfg / "buildx" / "instances" / "farm").write_text(
        json.dumps({"Name": "farm", "Driver": "docker-container"})
    )
    return {"DOCKER_CONFIG": str(cfg), "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}


def test_detect_builder(fake_buildx: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", fake_buildx["PATH"])
    b = detect_builder(fake_buildx)
    assert b is not None and (b.name, b.driver) == ("farm", "docker-container")
    assert detect_builder({**fake_buildx, "BUILDX_BUILDER": "default"}) is None
    cfg = Path(fake_buildx["DOCKER_CONFIG"]) / "buildx"
    (cfg / "instances" / "farm").write_text(json.dumps({"Name": "farm", "Driver": "docker"}))
    assert detect_builder(fake_buildx) is None
    assert detect_builder({"DOCKER_CONFIG": str(tmp_path / "nothing")}) is None


async def test_engine_builds_through_buildx(fake_buildx: dict[str, str], tmp_path: Path) -> None:
    builder = BuildxBuilder(
        "farm", "docker-container", docker=str(Path(fake_buildx["PATH"].split(os.pathsep)[0]) / "docker")
    )
    engine = BuildEngine(buildx=builder)
    ok = await engine.build(BuildTarget("api", "demo-api", tmp_path, tmp_path / "Dockerfile"))
    assert ok.state is RunState.DONE and ok.image_id == "sha256:feedface"
    assert [s.state for s in ok.steps] == [StepState.CACHED, StepState.DONE]
    bad = await engine.build(BuildTarget("api", "demo-api", tmp_path, tmp_path / "Dockerfile", {"X": "FAIL"}))
    assert bad.state is RunState.ERROR and bad.exit_code == 101
    assert bad.error is not None and bad.error.startswith("ERROR: failed to solve")
    slow = engine.submit(BuildTarget("api", "demo-api", tmp_path, tmp_path / "Dockerfile", {"X": "SLOW"}))
    while not slow.steps or slow.steps[-1].state is not StepState.RUNNING:
        await asyncio.sleep(0.05)
    engine.cancel(slow)
    done = await asyncio.wait_for(engine.wait(slow), 10)
    assert done.state is RunState.CANCELLED and done.steps[-1].state is StepState.CANCELLED


async def test_engine_keeps_a_bounded_number_of_finished_runs(
    fake_buildx: dict[str, str], tmp_path: Path
) -> None:
    builder = BuildxBuilder(
        "farm", "docker-container", docker=str(Path(fake_buildx["PATH"].split(os.pathsep)[0]) / "docker")
    )
    engine = BuildEngine(buildx=builder, keep_runs=2)
    first = await engine.build(BuildTarget("api", "demo-api", tmp_path, tmp_path / "Dockerfile"))
    for _ in range(3):
        await engine.build(BuildTarget("api", "demo-api", tmp_path, tmp_path / "Dockerfile"))
    await engine.build(BuildTarget("worker", "demo-worker", tmp_path, tmp_path / "Dockerfile"))
    assert [r.service for r in engine.runs] == ["api", "api", "worker"]
    assert first not in engine.runs
    assert await engine.wait(first) is first  # a pruned run can still be awaited


def test_console_backend_builds_through_the_selected_builder(
    fake_buildx: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TUI's backend picks the configured buildx builder exactly as `attune-console build` does."""
    from attune_console.core.session import DockerBackend

    demo = Path(__file__).resolve().parent.parent / "demo-workspace"
    monkeypatch.setenv("ATTUNE_CONSOLE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PATH", fake_buildx["PATH"])
    monkeypatch.setenv("DOCKER_CONFIG", fake_buildx["DOCKER_CONFIG"])
    backend = DockerBackend(demo)
    assert backend.engine.buildx is not None and backend.engine.buildx.name == "farm"
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-buildx"))
    assert DockerBackend(demo).engine.buildx is None
