"""The build engine against the real Docker daemon, on a private copy of demo-workspace.

One cold (``nocache``) build of ``api`` and ``worker-shell``, run concurrently, is shared by the tests
of this module (they run in file order and build on each other's state: unchanged rebuild, edit, compile
error, cancel). Every image built here is removed at the end; nothing else is touched.

The daemon-death test at the end uses a throw-away fake daemon on a unix socket (the real one is shared
with other builds on this machine and must not be killed).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import re
import shutil
import signal
import socketserver
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attune_console.core.compose import load_compose
from attune_console.core.docker_conn import DockerConnection
from attune_console.core.engine import BuildEngine, BuildTarget, targets_for
from attune_console.core.history import History
from attune_console.core.progress import BuildRun, RunState, StepKind, StepState

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "demo-workspace"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[Path]:
    """A module-wide private copy of demo-workspace (the ``demo_copy`` recipe, shared by this module)."""
    dest = tmp_path_factory.mktemp("engine") / f"attune-demo-{uuid.uuid4().hex[:8]}"
    shutil.copytree(DEMO, dest, symlinks=True, ignore=lambda d, names: {"target", ".git"} & set(names))
    built: set[str] = set()
    dest.joinpath(".built-images").write_text("")
    yield dest
    for line in dest.joinpath(".built-images").read_text().split():
        built.add(line)
    project = load_compose(dest)
    tags = [s.image for s in project.services.values() if s.build is not None]
    for ref in [*tags, *built]:
        with contextlib.suppress(Exception):
            docker_client.images.remove(ref, force=True, noprune=False)


def _remember(ws: Path, *runs: BuildRun) -> None:
    with ws.joinpath(".built-images").open("a") as fh:
        for r in runs:
            if r.image_id:
                fh.write(r.image_id + "\n")


def _targets(ws: Path, *services: str) -> list[BuildTarget]:
    return targets_for(load_compose(ws), services)


def _engine(ws: Path, **kw: Any) -> BuildEngine:
    return BuildEngine(DockerConnection(), concurrency=2, **kw)


@pytest.fixture(scope="module")
def cold(ws: Path) -> dict[str, BuildRun]:
    """Cold builds of api and worker-shell, concurrently (also the parallel-build test)."""

    async def go() -> list[BuildRun]:
        return await _engine(ws).build_many(_targets(ws, "api", "worker-shell"), no_cache=True)

    runs = asyncio.run(go())
    _remember(ws, *runs)
    return {r.service: r for r in runs}


def _run_steps(run: BuildRun) -> list[tuple[str, str]]:
    return [(s.name, s.state.value) for s in run.steps]


def test_concurrent_cold_builds_succeed_and_every_service_step_ran(
    cold: dict[str, BuildRun], docker_client: Any
) -> None:
    """Both services build at once with ``nocache``: every RUN and every builder/runtime COPY ran.

    The planner's manifest COPYs do not depend on any ARG, so their cache key is the same for every
    service and every copy of the workspace: BuildKit (0.8, even with nocache) hands them over from
    any concurrent build on the daemon that produced the same key (here: the other service; on a
    shared daemon: anyone's), so they may be CACHED; everything else must have run.
    """
    for service, run in cold.items():
        assert run.state is RunState.DONE, (service, run.error, run.last_log_lines(20))
        assert run.image_id and docker_client.images.get(run.image).id == run.image_id
        assert all(s.state.finished for s in run.steps)
        counted = run.counted_steps
        assert counted and run.total == len(counted)
        for s in counted:
            assert s.line is not None  # every Dockerfile instruction maps to its line
            shareable = s.stage == "planner" and s.instruction.startswith("COPY")
            if s.instruction.startswith(("RUN", "COPY")) and not shareable:
                assert s.state is StepState.DONE, (service, s.name, s.state)
        assert run.decode_cpu_s + run.apply_cpu_s < 0.05 * (run.duration or 1)
    # Both used their own target cache (id=target-builder-${SERVICE}): no "File exists" clash.
    api_log = next(s for s in cold["api"].steps if s.name.startswith("[builder 3/3] RUN")).log.text()
    assert "Compiling attune-api" in api_log


def test_cold_image_runs(cold: dict[str, BuildRun], docker_client: Any) -> None:
    c = docker_client.containers.run(
        cold["api"].image_id, detach=True, name=f"attune-e4-{uuid.uuid4().hex[:8]}"
    )
    try:
        deadline = time.time() + 20
        while time.time() < deadline and b"listening on" not in c.logs():
            time.sleep(0.2)
        c.reload()
        assert c.status == "running" and b"listening on 0.0.0.0:8080" in c.logs()
    finally:
        c.remove(force=True)


def test_unchanged_rebuild_is_fully_cached_and_faster(ws: Path, cold: dict[str, BuildRun]) -> None:
    run = asyncio.run(_engine(ws).build(_targets(ws, "api")[0]))
    assert run.state is RunState.DONE
    assert (run.cached, run.total) == (run.total, cold["api"].total), _run_steps(run)
    assert run.first_missed_step is None
    assert run.image_id == cold["api"].image_id
    assert run.duration is not None and cold["api"].duration is not None
    assert run.duration < cold["api"].duration


def test_edit_main_rs_misses_at_copy_api_as_impact_predicts(
    ws: Path, cold: dict[str, BuildRun], tmp_path: Path
) -> None:
    from attune_console.core.fingerprint import fingerprint
    from attune_console.core.impact import impact
    from attune_console.core.model import Workspace

    main_rs = ws / "crates/api/src/main.rs"
    # A unique edit: BuildKit keys COPY by content, so a text edited the same way in an earlier run is
    # already in the cache.
    edited = f"attune api ready ({uuid.uuid4().hex[:8]})"
    main_rs.write_text(main_rs.read_text().replace("attune api ready", edited))
    predicted = impact(Workspace.load(ws), [main_rs]).service("api")
    assert predicted.rebuild

    history = History(tmp_path / "history.sqlite3")
    engine = _engine(ws, history=history)
    engine.fingerprints["api"] = fingerprint(Workspace.load(ws), "api").to_json()

    async def go() -> tuple[BuildRun, BuildRun]:
        api = await engine.build(_targets(ws, "api")[0])
        worker = await engine.build(_targets(ws, "worker-shell")[0])
        return api, worker

    api, worker = asyncio.run(go())
    _remember(ws, api, worker)
    assert api.state is RunState.DONE, api.error
    missed = api.first_missed_step
    assert missed is not None and missed.name == "[builder 2/3] COPY crates/api/ ./crates/api/"
    for s in api.counted_steps:
        if s.stage == "planner":
            assert s.state is StepState.CACHED, s.name
    # The impact analysis named the same step, before the build.
    assert (predicted.stage, predicted.instruction) == (missed.stage, missed.instruction)
    assert predicted.line == missed.line
    # worker-shell's image does not contain crates/api: fully cached, same image as the cold build.
    assert worker.state is RunState.DONE and worker.cached == worker.total
    assert worker.image_id == cold["worker-shell"].image_id
    # History has both, with the fingerprint of the successful api build and its first miss.
    rec = history.last_success("api")
    assert rec is not None and rec.first_missed_step == missed.name and rec.fingerprint
    assert json.loads(rec.fingerprint)["service"] == "api"
    assert history.recent("worker-shell")[0].cached == worker.total


def test_compile_error_names_the_step_and_keeps_the_previous_image(ws: Path, docker_client: Any) -> None:
    before = docker_client.images.get(load_compose(ws).services["api"].image).id
    main_rs = ws / "crates/api/src/main.rs"
    good = main_rs.read_text()
    main_rs.write_text(good + '\nfn broken() -> u32 { "not a number" }\n')
    try:
        run = asyncio.run(_engine(ws).build(_targets(ws, "api")[0]))
    finally:
        main_rs.write_text(good)
    assert run.state is RunState.ERROR
    step = run.error_step
    assert step is not None and step.name.startswith("[builder 3/3] RUN") and step.state is StepState.ERROR
    assert run.exit_code == 101
    tail = "\n".join(t for _, t in run.last_log_lines(40))
    assert "error[E0308]: mismatched types" in tail and "crates/api/src/main.rs" in tail
    assert run.error and "exit code: 101" in run.error
    assert docker_client.images.get(load_compose(ws).services["api"].image).id == before


def _pids_with_env(marker: str) -> list[int]:
    found = []
    needle = marker.encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if needle in fh.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def test_cancel_mid_build_stops_buildkit_and_next_build_works(ws: Path, docker_client: Any) -> None:
    image = load_compose(ws).services["api"].image
    before = docker_client.images.get(image).id
    marker = f"cancel-{uuid.uuid4().hex}"
    base = _targets(ws, "api")[0]
    # ATTUNE_BUILD_ID is an ARG of the builder stage: a new value re-runs the cargo step, and BuildKit
    # passes it in the environment of that step's processes, which lets us find them in /proc.
    target = BuildTarget(**{**base.__dict__, "args": {**base.args, "ATTUNE_BUILD_ID": marker}})
    seen_pids: list[int] = []

    async def go() -> BuildRun:
        engine = _engine(ws)
        run = engine.submit(target)
        deadline = time.time() + 120
        while time.time() < deadline and not run.state.finished:
            cargo = [s for s in run.steps if s.name.startswith("[builder 3/3] RUN")]
            if cargo and cargo[0].state is StepState.RUNNING:
                for _ in range(40):  # until the step's processes exist
                    seen_pids.extend(_pids_with_env(marker))
                    if seen_pids:
                        break
                    await asyncio.sleep(0.05)
                break
            await asyncio.sleep(0.05)
        engine.cancel(run)
        return await asyncio.wait_for(engine.wait(run), 30)

    run = asyncio.run(go())
    assert seen_pids, "the cargo step never started"
    assert run.state is RunState.CANCELLED
    cargo = next(s for s in run.steps if s.name.startswith("[builder 3/3] RUN"))
    assert cargo.state is StepState.CANCELLED
    assert all(s.state.finished for s in run.steps)
    deadline = time.time() + 15
    while _pids_with_env(marker) and time.time() < deadline:
        time.sleep(0.2)
    assert _pids_with_env(marker) == [], "BuildKit left the cancelled step's processes running"
    assert not [
        c for c in docker_client.containers.list(all=True) if marker in str(c.attrs.get("Config", {}))
    ]
    assert docker_client.images.get(image).id == before  # the tag still names the previous image
    again = asyncio.run(_engine(ws).build(base))
    assert again.state is RunState.DONE and again.image_id == before


def test_unknown_service_and_missing_daemon_are_clear(ws: Path) -> None:
    from attune_console.core.errors import InputError

    with pytest.raises(InputError, match="no service 'nope'"):
        _targets(ws, "nope")
    engine = BuildEngine(DockerConnection({"DOCKER_HOST": "unix:///nonexistent/docker.sock"}))
    run = asyncio.run(engine.build(_targets(ws, "api")[0]))
    assert run.state is RunState.ERROR
    assert (
        run.error and "Docker daemon is not running" in run.error and "/nonexistent/docker.sock" in run.error
    )


# --------------------------------------------------------------------- the daemon dies mid-build


class _DyingDaemon(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, obj: Any) -> None:
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.endswith("/_ping"):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")
        else:
            self._json({"ApiVersion": "1.41", "Version": "fake"})

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        # Drain the chunked context upload, then stream one real trace line and die mid-build.
        while True:
            size = int(self.rfile.readline().strip() or b"0", 16)
            self.rfile.read(size + 2)
            if size == 0:
                break
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        trace = REPO / "tests/fixtures/traces/api-cancelled.jsonl"
        data = b"".join(trace.read_bytes().splitlines(keepends=True)[:30])
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()
        self.connection.shutdown(2)  # no terminating chunk: the daemon "died"


def test_daemon_dying_mid_build_ends_in_error_and_engine_keeps_working(tmp_path: Path, ws: Path) -> None:
    sock = tmp_path / "fake-docker.sock"
    server = _DyingDaemon(str(sock), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        conn = DockerConnection({"DOCKER_HOST": f"unix://{sock}"})
        engine = BuildEngine(conn)
        run = asyncio.run(engine.build(_targets(ws, "api")[0]))
    finally:
        server.shutdown()
        server.server_close()
    assert run.state is RunState.ERROR
    assert run.error and "lost the connection to the Docker daemon mid-build" in run.error
    assert run.steps and any(s.kind is StepKind.INSTRUCTION for s in run.steps)  # progress got through
    assert all(s.state.finished for s in run.steps)
    # The connection was dropped; with no daemon there now, the next build says so instead of hanging...
    again = asyncio.run(engine.build(_targets(ws, "api")[0]))
    assert again.state is RunState.ERROR and again.error
    assert "refused the connection" in again.error or "not running" in again.error
    # ...and once a daemon answers on that socket again, the same connection object reconnects.
    sock.unlink()
    server = _DyingDaemon(str(sock), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert asyncio.run(conn.wait_until_available(interval=0.1, timeout=10))
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------- the CLI on the real daemon


def _cli(ws: Path, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "ATTUNE_CONSOLE_STATE_DIR": str(tmp_path / "state")}
    return subprocess.Popen(
        [sys.executable, "-m", "attune_console", "build", *args, "-w", str(ws)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_cli_json_and_plain(ws: Path, tmp_path: Path, cold: dict[str, BuildRun]) -> None:
    proc = _cli(ws, tmp_path, "api", "--json")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert {e["event"] for e in events} >= {"run", "step", "summary"}
    summary = events[-1]
    assert summary["event"] == "summary" and summary["service"] == "api" and summary["result"] == "done"
    assert summary["image_id"].startswith("sha256:")
    assert summary["cached"] == summary["total"] > 0
    assert {"name", "state", "duration_s"} <= set(summary["steps"][0])
    steps = [e for e in events if e["event"] == "step" and e["state"] == "cached"]
    assert any(e["name"] == "[builder 2/3] COPY crates/api/ ./crates/api/" and e["line"] for e in steps)
    assert History(tmp_path / "state" / "history.sqlite3").recent("api")[0].result == "done"

    proc = _cli(ws, tmp_path, "api", "--plain")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert re.search(r"^#\d+ \[builder 2/3\] COPY crates/api/ \./crates/api/ CACHED$", out, re.M)
    assert re.search(r"^api: built \S+ \(sha256:[0-9a-f]+\) in [\d.]+s, (\d+)/\1 steps cached$", out, re.M)


def test_cli_failed_build_exits_1_with_the_step_log(ws: Path, tmp_path: Path) -> None:
    main_rs = ws / "crates/api/src/main.rs"
    good = main_rs.read_text()
    main_rs.write_text(good + '\nfn broken() -> u32 { "not a number" }\n')
    try:
        proc = _cli(ws, tmp_path, "api")
        out, err = proc.communicate(timeout=300)
    finally:
        main_rs.write_text(good)
    assert proc.returncode == 1, (out, err)
    assert re.search(r"^------ api: #\d+ \[builder 3/3\] RUN .*\(Dockerfile line \d+\)$", out, re.M)
    assert "error[E0308]: mismatched types" in out
    assert re.search(r"^api: ERROR: .*exit code: 101", out, re.M)


def test_cli_ctrl_c_cancels_and_exits_130(ws: Path, tmp_path: Path, docker_client: Any) -> None:
    image = load_compose(ws).services["api"].image
    before = docker_client.images.get(image).id
    main_rs = ws / "crates/api/src/main.rs"
    good = main_rs.read_text()
    main_rs.write_text(good + f"\n// {uuid.uuid4().hex}\n")  # a unique edit: cargo must run
    try:
        proc = _cli(ws, tmp_path, "api", "--plain")
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("#") and "[builder 3/3] RUN" in line:
                break
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        main_rs.write_text(good)
    assert proc.returncode == 130, (rest, err)
    assert "api: cancelled" in rest
    assert re.search(r"\[builder 3/3\] RUN .* CANCELED$", rest, re.M)
    assert docker_client.images.get(image).id == before


# --------------------------------------------------------------------- daemon endpoint resolution


def _write_context(cfg: Path, name: str, host: str) -> None:
    import hashlib

    meta = cfg / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(
        json.dumps(
            {"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}
        )
    )


def test_current_docker_context_is_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docker_client: Any
) -> None:
    from attune_console.core.docker_conn import make_client, resolve_endpoint
    from attune_console.core.errors import DockerUnavailable

    cfg = tmp_path / "dockercfg"
    cfg.mkdir()
    (cfg / "config.json").write_text(json.dumps({"currentContext": "local-again"}))
    _write_context(cfg, "local-again", "unix:///var/run/docker.sock")
    _write_context(cfg, "gone", f"unix://{tmp_path}/no-daemon.sock")
    monkeypatch.setenv("DOCKER_CONFIG", str(cfg))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)

    ep = resolve_endpoint({})
    assert (ep.host, ep.source) == ("unix:///var/run/docker.sock", "context local-again")
    client = make_client({})  # through the context's endpoint, to the real daemon
    assert client.version()["ApiVersion"] == docker_client.version()["ApiVersion"]
    client.close()
    # DOCKER_CONTEXT picks another context; DOCKER_HOST beats both.
    assert resolve_endpoint({"DOCKER_CONTEXT": "gone"}).source == "context gone"
    with pytest.raises(DockerUnavailable, match=r"no-daemon\.sock \(from context gone\)"):
        make_client({"DOCKER_CONTEXT": "gone"})
    assert (
        resolve_endpoint({"DOCKER_HOST": "tcp://127.0.0.1:1", "DOCKER_CONTEXT": "gone"}).source
        == "DOCKER_HOST"
    )
    with pytest.raises(DockerUnavailable, match="docker context 'missing'"):
        resolve_endpoint({"DOCKER_CONTEXT": "missing"})


def test_explain_gives_actionable_messages() -> None:
    from attune_console.core.docker_conn import Endpoint, explain

    sock = Endpoint("unix:///var/run/docker.sock", source="default")
    perm = explain(PermissionError(13, "Permission denied"), sock)
    assert "permission denied" in perm and "docker' group" in perm
    assert "not running" in explain(FileNotFoundError(2, "No such file or directory"), sock)
    remote = Endpoint("tcp://10.0.0.5:2376", source="context farm")
    assert "(from context farm)" in explain(ConnectionRefusedError(111, "Connection refused"), remote)
    assert "TLS" in explain(OSError("SSL: CERTIFICATE_VERIFY_FAILED"), remote)


def test_daemon_errors_get_a_hint() -> None:
    from attune_console.core.engine import _with_hint

    # Both messages as the 20.10 daemon sent them on this machine (offline), resolver address elided.
    syntax = (
        "failed to solve with frontend dockerfile.v0: failed to solve with frontend gateway.v0: failed to do "
        'request: Head "https://registry-1.docker.io/v2/docker/dockerfile/manifests/1": dial tcp: lookup '
        "registry-1.docker.io: no such host"
    )
    base = (
        "failed to solve with frontend dockerfile.v0: failed to create LLB definition: failed to do request: "
        'Head "https://registry-1.docker.io/v2/library/nope/manifests/1": dial tcp: lookup '
        "registry-1.docker.io: no such host"
    )
    assert "remove the line" in _with_hint(syntax)
    assert "bootstrap-images.sh" in _with_hint(base) and "remove the line" not in _with_hint(base)
    assert (
        _with_hint("executor failed running [x]: exit code: 1") == "executor failed running [x]: exit code: 1"
    )


def test_dockerfile_outside_the_context_is_sent_inside_it(tmp_path: Path, docker_client: Any) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text(f"hello {uuid.uuid4().hex}\n")
    dockerfile = tmp_path / "docker" / "Dockerfile.outside"
    dockerfile.parent.mkdir()
    dockerfile.write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
    tag = f"attune-e4-outside-{uuid.uuid4().hex[:8]}"
    run = asyncio.run(BuildEngine().build(BuildTarget("outside", tag, ctx, dockerfile)))
    try:
        assert run.state is RunState.DONE, run.error
        assert [s.name for s in run.counted_steps] == ["[1/1] COPY hello.txt /hello.txt"]
        assert run.counted_steps[0].line == 2
    finally:
        with contextlib.suppress(Exception):
            docker_client.images.remove(tag, force=True)


def test_slow_context_upload_shows_as_a_step(
    tmp_path: Path, docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import attune_console.core.engine as engine_mod

    monkeypatch.setattr(engine_mod, "UPLOAD_SHOW_AFTER_S", 0.0)  # this context uploads fast: show it anyway
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    with open(ctx / "blob.bin", "wb") as fh:
        fh.truncate(8 * 1024 * 1024)
    (ctx / "Dockerfile").write_text(f"FROM scratch\nCOPY Dockerfile /d-{uuid.uuid4().hex}\n")
    tag = f"attune-e4-upload-{uuid.uuid4().hex[:8]}"
    run = asyncio.run(BuildEngine().build(BuildTarget("upload", tag, ctx, ctx / "Dockerfile")))
    try:
        assert run.state is RunState.DONE, run.error
        upload = run.steps[0]
        assert upload.name == "[internal] sending build context" and upload.kind is StepKind.INTERNAL
        assert upload.state is StepState.DONE and upload.current_bytes >= 8 * 1024 * 1024
        assert run.total == 1  # internal steps do not count
    finally:
        with contextlib.suppress(Exception):
            docker_client.images.remove(tag, force=True)
