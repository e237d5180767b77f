"""The async build engine: BuildKit builds over the Engine API ``/build`` (``version=2``), live progress.

One :class:`BuildEngine` serves the CLI and the TUI. ``submit()`` returns a :class:`BuildRun` at once
(state ``queued``) and builds it when one of ``concurrency`` slots is free; ``build()`` /
``build_many()`` await the results. Blocking docker SDK calls run in worker threads; the event loop only
applies already-decoded status messages to the model (one batch per message), so a TUI stays responsive.

The request: a streamed GNU context tar (:mod:`attune_console.core.context`), ``version=2`` (BuildKit),
``buildid`` (so ``/build/cancel`` can name it), tag, Dockerfile, build args and target as compose has them.
The answer is a stream of JSON lines; ``moby.buildkit.trace`` lines carry base64 ``StatusResponse``
protobufs (decoded by :mod:`attune_console.core.buildkit.decode`), ``moby.image.id`` the result.

Cancel closes the stream socket and posts ``/build/cancel``: BuildKit cancels the solve, running steps
end (their processes are killed), the run ends ``cancelled`` and the image tag keeps pointing at the
previous image (BuildKit only tags on success). A daemon that is down, dies mid-build or refuses
permission ends the run ``error`` with an actionable message; the shared :class:`DockerConnection` is
dropped and remade on the next build, which is how the console reconnects.

When a non-default ``docker buildx`` builder is configured, :mod:`attune_console.core.buildx` builds
instead (``BuildEngine(buildx=...)``) and feeds the same model.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker.errors
import requests.exceptions

from attune_console.core.buildkit.decode import StreamItem, TraceDecodeError, apply_status, classify
from attune_console.core.context import iter_context_tar
from attune_console.core.docker_conn import DockerConnection, explain, is_connection_error
from attune_console.core.errors import DockerUnavailable, InputError
from attune_console.core.progress import BuildRun, RunState

if TYPE_CHECKING:
    from attune_console.core.buildx import BuildxBuilder
    from attune_console.core.compose import ComposeProject, ComposeService
    from attune_console.core.history import History

__all__ = [
    "PACK_BINARIES",
    "BuildEngine",
    "BuildTarget",
    "dockerfile_line_resolver",
    "pack_binaries_target",
    "targets_for",
]

PACK_BINARIES = "pack-binaries"
"""The name of the pack binaries target, next to the compose services."""

DEFAULT_CONCURRENCY = 2


@dataclass(frozen=True)
class BuildTarget:
    """Everything one build needs: what compose would pass to ``docker build``."""

    service: str
    image: str  # the tag, as compose names the image
    context: Path
    dockerfile: Path
    args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()  # buildx only (registry cache export)

    @classmethod
    def from_service(cls, service: ComposeService) -> BuildTarget:
        if service.build is None:
            raise InputError(f"service '{service.name}' has no build section", None, service.line)
        b = service.build
        return cls(
            service=service.name,
            image=service.image,
            context=b.context,
            dockerfile=b.dockerfile,
            args=dict(b.args),
            target=b.target,
        )

    @property
    def dockerfile_in_context(self) -> str:
        """The Dockerfile path as ``/build`` gets it: relative to the context.

        A Dockerfile outside the context (compose allows ``dockerfile: ../x/Dockerfile``) is sent inside
        the context tar under a name derived from its path, as the docker CLI does.
        """
        try:
            return self.dockerfile.resolve().relative_to(self.context.resolve()).as_posix()
        except ValueError:
            digest = hashlib.sha256(str(self.dockerfile.resolve()).encode()).hexdigest()[:16]
            return f".attune-dockerfile-{digest}"

    @property
    def extra_context_files(self) -> dict[str, Path]:
        """Files to add to the context tar (the Dockerfile when it lives outside the context)."""
        name = self.dockerfile_in_context
        if name.startswith(".attune-dockerfile-"):
            if not self.dockerfile.is_file():
                raise InputError("Dockerfile not found", self.dockerfile)
            return {name: self.dockerfile}
        return {}


def pack_binaries_target(project: ComposeProject, image: str | None = None) -> BuildTarget:
    """The pack binaries image (``docker/Dockerfile.pack-binaries``) as one more build target.

    Build args match ``scripts/build-pack-binaries.sh``: base images from the project's ``.env``.
    The tag is ``PACK_BUILDER_IMAGE`` from the environment/.env, else ``<project>-pack-builder``.
    """
    env = project.env
    dockerfile = project.root / "docker" / "Dockerfile.pack-binaries"
    if not dockerfile.is_file():
        raise InputError("no docker/Dockerfile.pack-binaries in the workspace", dockerfile)
    args = {k: env[k] for k in ("RUST_IMAGE", "RUNTIME_IMAGE", "ATTUNE_BUILD_ID") if env.get(k)}
    return BuildTarget(
        service=PACK_BINARIES,
        image=image or env.get("PACK_BUILDER_IMAGE") or f"{project.name}-pack-builder",
        context=project.root,
        dockerfile=dockerfile,
        args=args,
    )


def targets_for(
    project: ComposeProject, services: Iterable[str], pack_binaries: bool = False
) -> list[BuildTarget]:
    """Build targets for compose ``services`` (in the given order), plus the pack binaries if asked.

    Unknown services and services without a ``build:`` section raise :class:`InputError` naming the
    compose file and the service's line.
    """
    out: list[BuildTarget] = []
    for name in services:
        if name == PACK_BINARIES:
            pack_binaries = True
            continue
        svc = project.services.get(name)
        if svc is None:
            known = ", ".join(sorted(s for s, v in project.services.items() if v.build is not None))
            raise InputError(f"no service '{name}' in the compose file (buildable: {known})", project.file)
        if svc.build is None:
            raise InputError(
                f"service '{name}' has no build: section (image {svc.image})", project.file, svc.line
            )
        out.append(BuildTarget.from_service(svc))
    if pack_binaries:
        out.append(pack_binaries_target(project))
    return out


# --------------------------------------------------------------------------- Dockerfile lines

_COUNTED = {"RUN", "COPY", "ADD", "WORKDIR"}
_FROM_RE = re.compile(r"^FROM\s+(?:--\S+\s+)*(?P<base>\S+)(?:\s+AS\s+(?P<name>\S+))?\s*$", re.I)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """``(first line, instruction text)`` with continuations joined; comments and blanks skipped."""
    escape = "\\"
    lines = text.splitlines()
    for raw in lines[:5]:  # parser directives come first
        m = re.match(r"^#\s*escape\s*=\s*(\S)\s*$", raw.strip(), re.I)
        if m:
            escape = m.group(1)
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        s = lines[i].strip()
        if not s or s.startswith("#"):
            i += 1
            continue
        start, parts = i + 1, []
        while i < len(lines):
            cur = lines[i].rstrip()
            i += 1
            if cur.endswith(escape):
                parts.append(cur[:-1])
                while i < len(lines) and (not lines[i].strip() or lines[i].strip().startswith("#")):
                    i += 1
                continue
            parts.append(cur)
            break
        out.append((start, " ".join(p.strip() for p in parts)))
    return out


def dockerfile_line_resolver(path: Path) -> Callable[[str | None, int | None, str], int | None]:
    """Map BuildKit's ``[stage n/m] INSTR`` back to the Dockerfile line.

    BuildKit numbers, per stage, the FROM (unless the stage starts from another stage or scratch)
    and each RUN, COPY, ADD and WORKDIR (dockerfile2llb's ``cmdTotal``); the n-th such instruction of
    the named stage is the step. The keyword is checked, so a mismatch yields ``None``, never a wrong
    line.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return lambda stage, index, instr: None
    stages: list[tuple[str | None, list[tuple[str, int]]]] = []
    names: set[str] = set()
    for line, instr in _logical_lines(text):
        keyword = instr.split(None, 1)[0].upper()
        if keyword == "FROM":
            m = _FROM_RE.match(instr)
            base = (m.group("base") if m else "").lower()
            name = (m.group("name") or "").lower() if m else ""
            counted: list[tuple[str, int]] = []
            if base != "scratch" and base not in names:
                counted.append(("FROM", line))
            stages.append((name or None, counted))
            if name:
                names.add(name)
        elif keyword in _COUNTED and stages:
            stages[-1][1].append((keyword, line))

    def resolve(stage: str | None, index: int | None, instr: str) -> int | None:
        if index is None:
            return None
        keyword = instr.split(None, 1)[0].upper() if instr else ""
        wanted = stage.lower() if stage else None
        for name, counted in stages:
            if name != wanted or index > len(counted):
                continue
            kw, line = counted[index - 1]
            if kw == keyword:
                return line
        return None

    return resolve


# --------------------------------------------------------------------------- engine


@dataclass(eq=False)
class _Job:
    run: BuildRun
    target: BuildTarget
    no_cache: bool
    build_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    task: asyncio.Task[BuildRun] | None = None
    response: Any = None
    cancelled: bool = False
    image_id: str | None = None
    error: str | None = None
    lost_connection: str | None = None
    stream_text: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


RunListener = Callable[[BuildRun], None]


class CacheModeGate:
    """Lets builds of one cache mode run together and keeps no-cache and cached builds apart.

    BuildKit as vendored in Docker 20.10 panics and takes the whole daemon down ("panic: failed to get
    edge", moby/buildkit#2303, moby/moby#42414) when identical steps are solved concurrently by builds
    that ignore the cache and builds that do not: exactly what a ``ctrl+b`` no-cache rebuild during a
    watch-triggered rebuild of another service would do, since the services share their planner steps.
    Waiting for the other mode to drain costs seconds; a dead daemon costs every running build.
    """

    def __init__(self) -> None:
        self._mode: bool | None = None
        self._active = 0
        self._cond: asyncio.Condition | None = None

    @property
    def active(self) -> int:
        return self._active

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:  # created lazily: it binds to the running loop
            self._cond = asyncio.Condition()
        return self._cond

    @contextlib.asynccontextmanager
    async def hold(self, no_cache: bool) -> Any:
        cond = self._condition()
        async with cond:
            await cond.wait_for(lambda: self._active == 0 or self._mode is no_cache)
            self._mode = no_cache
            self._active += 1
        try:
            yield
        finally:
            async with cond:
                self._active -= 1
                if self._active == 0:
                    self._mode = None
                cond.notify_all()


class BuildEngine:
    """Builds targets concurrently (``concurrency`` at a time) and keeps their :class:`BuildRun`\\ s.

    ``history`` (optional) gets every finished run; ``fingerprints`` (optional) maps a service to the
    fingerprint to store with its successful build. ``record_dir`` (optional) writes each build's raw
    JSON lines to ``<record_dir>/<service>-<build_id>.jsonl`` (how the decoder's test fixtures were
    recorded). ``keep_runs`` finished runs per service stay in ``runs`` (older ones are dropped, so a
    long session's memory stays bounded; history keeps their summaries). ``buildx``: a
    :class:`~attune_console.core.buildx.BuildxBuilder` to build through instead of the Engine API (see
    :func:`attune_console.core.buildx.detect_builder`).
    """

    def __init__(
        self,
        connection: DockerConnection | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        history: History | None = None,
        record_dir: Path | None = None,
        buildx: BuildxBuilder | None = None,
        max_log_lines: int | None = None,
        keep_runs: int = 5,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.connection = connection or DockerConnection()
        self.concurrency = concurrency
        self.history = history
        self.record_dir = record_dir
        self.buildx = buildx
        self.max_log_lines = max_log_lines
        self.keep_runs = keep_runs
        self.fingerprints: dict[str, str] = {}
        self.runs: list[BuildRun] = []
        self._jobs: dict[int, _Job] = {}
        self._sem: asyncio.Semaphore | None = None
        self._gate = CacheModeGate()
        self._listeners: list[RunListener] = []

    # ------------------------------------------------------------------ public API
    def on_run(self, listener: RunListener) -> Callable[[], None]:
        """Call ``listener(run)`` for every new run (right after ``submit``); returns unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def submit(self, target: BuildTarget, *, no_cache: bool = False) -> BuildRun:
        """Queue a build and return its run immediately (must be called on the event loop)."""
        kwargs: dict[str, Any] = {"target": target.target}
        if self.max_log_lines:
            kwargs["max_log_lines"] = self.max_log_lines
        run = BuildRun(
            target.service,
            target.image,
            line_resolver=dockerfile_line_resolver(target.dockerfile),
            **kwargs,
        )
        job = _Job(run=run, target=target, no_cache=no_cache)
        self._jobs[id(run)] = job
        self.runs.append(run)
        for listener in tuple(self._listeners):
            listener(run)
        job.task = asyncio.get_running_loop().create_task(self._run_job(job), name=f"build {target.service}")
        return run

    async def build(self, target: BuildTarget, *, no_cache: bool = False) -> BuildRun:
        """Build one target and return its finished run (never raises for build failures)."""
        return await self.wait(self.submit(target, no_cache=no_cache))

    async def build_many(self, targets: Iterable[BuildTarget], *, no_cache: bool = False) -> list[BuildRun]:
        runs = [self.submit(t, no_cache=no_cache) for t in targets]
        return [await self.wait(r) for r in runs]

    async def wait(self, run: BuildRun) -> BuildRun:
        job = self._jobs.get(id(run))
        if job is None or job.task is None:  # long finished and pruned
            return run
        return await asyncio.shield(job.task)

    def cancel(self, run: BuildRun) -> None:
        """Cancel one build: queued ones never start, running ones have their request closed."""
        job = self._jobs.get(id(run))
        if job is None or run.state.finished:
            return
        self._abort(job)

    def cancel_all(self) -> None:
        for run in list(self.runs):
            self.cancel(run)

    async def aclose(self) -> None:
        """Cancel everything still running and wait for it to end."""
        self.cancel_all()
        tasks = [j.task for j in self._jobs.values() if j.task is not None and not j.task.done()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ internals
    def _semaphore(self) -> asyncio.Semaphore:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        return self._sem

    async def _run_job(self, job: _Job) -> BuildRun:
        run = job.run
        try:
            async with self._gate.hold(job.no_cache), self._semaphore():
                if job.cancelled:
                    run.finish(RunState.CANCELLED, error="cancelled before it started")
                    return run
                run.start()
                run.flush()
                loop = asyncio.get_running_loop()
                if self.buildx is not None:
                    await self.buildx.build(job, loop, self)
                else:
                    await asyncio.to_thread(self._stream_build, job, loop)
                self._finish(job)
        except asyncio.CancelledError:
            self._abort(job)
            run.finish(RunState.CANCELLED, error="cancelled")
            raise
        except DockerUnavailable as exc:
            self.connection.invalidate()
            run.finish(RunState.ERROR, error=str(exc))
        except InputError as exc:
            run.finish(RunState.ERROR, error=str(exc))
        except Exception as exc:  # never let one build take the console down
            run.finish(RunState.ERROR, error=f"internal error: {exc!r}")
        finally:
            await self._record(run)
            self._prune()
        return run

    def _prune(self) -> None:
        """Keep the newest ``keep_runs`` finished runs per service (their logs are what costs memory)."""
        seen: dict[str, int] = {}
        keep: list[BuildRun] = []
        for run in reversed(self.runs):
            if run.state.finished:
                seen[run.service] = seen.get(run.service, 0) + 1
                if seen[run.service] > self.keep_runs:
                    self._jobs.pop(id(run), None)
                    continue
            keep.append(run)
        keep.reverse()
        self.runs = keep

    def _finish(self, job: _Job) -> None:
        run = job.run
        if job.cancelled:
            run.finish(RunState.CANCELLED, error="cancelled")
        elif job.lost_connection is not None:
            self.connection.invalidate()
            run.finish(RunState.ERROR, error=job.lost_connection)
        elif job.error is not None:
            run.finish(RunState.ERROR, error=_with_hint(job.error))
        elif job.image_id:
            run.finish(RunState.DONE, image_id=job.image_id)
        else:
            run.finish(
                RunState.ERROR,
                error="the build stream ended without an image id (did the Docker daemon stop or restart?)",
            )

    async def _record(self, run: BuildRun) -> None:
        if self.history is None or not run.state.finished:
            return
        fp = self.fingerprints.get(run.service) if run.state is RunState.DONE else None
        job = self._jobs.get(id(run))
        workspace = str(job.target.context) if job is not None else None
        with contextlib.suppress(Exception):  # history must never break a build
            await asyncio.to_thread(self.history.record, run, fp, workspace)

    def _abort(self, job: _Job) -> None:
        """Close the build's request (BuildKit stops the solve) and tell the daemon to cancel it."""
        job.cancelled = True
        if self.buildx is not None:
            self.buildx.cancel(job)
            return
        with job.lock:
            response = job.response
        if response is not None:
            _shutdown_response(response)
            threading.Thread(target=self._post_cancel, args=(job.build_id,), daemon=True).start()

    def _post_cancel(self, build_id: str) -> None:
        with contextlib.suppress(Exception):
            api = self.connection.client().api
            api._post(api._url("/build/cancel"), params={"id": build_id}, timeout=10)

    def deliver(self, job: _Job, items: list[StreamItem]) -> None:
        """Apply decoded stream items to the run (on the event loop)."""
        run = job.run
        if run.state.finished:  # late messages of a run already ended (cancelled): drop them
            return
        t0 = time.thread_time()
        for item in items:
            kind = item.kind
            if kind == "trace":
                apply_status(run, item.status)
            elif kind == "image_id":
                job.image_id = item.text
            elif kind == "error":
                job.error = item.text
            elif kind == "stream" and item.text.strip():
                run.messages.append(item.text.rstrip())
        run.apply_cpu_s += time.thread_time() - t0

    def _params(self, job: _Job) -> dict[str, Any]:
        t = job.target
        params: dict[str, Any] = {
            "t": t.image,
            "dockerfile": t.dockerfile_in_context,
            "version": "2",
            "buildid": job.build_id,
            "rm": "1",
        }
        if t.args:
            params["buildargs"] = json.dumps(dict(t.args))
        if t.target:
            params["target"] = t.target
        if job.no_cache:
            params["nocache"] = "1"
        if t.cache_from:
            params["cachefrom"] = json.dumps(list(t.cache_from))
        return params

    def _stream_build(self, job: _Job, loop: asyncio.AbstractEventLoop) -> None:
        """Runs in a worker thread: POST /build, decode the stream, hand items to the loop."""
        cpu0 = time.thread_time()
        client = self.connection.client()
        api = client.api
        params = self._params(job)  # raises InputError for a Dockerfile outside the context
        record = None
        if self.record_dir is not None:
            self.record_dir.mkdir(parents=True, exist_ok=True)
            record = open(self.record_dir / f"{job.target.service}-{job.build_id[:12]}.jsonl", "wb")  # noqa: SIM115
        decode_cpu = 0.0
        try:
            tar = iter_context_tar(job.target.context, params["dockerfile"], job.target.extra_context_files)
            upload = _UploadProgress(job, loop)
            body = upload.wrap(_until_cancelled(tar, job))
            try:
                response = api._post(
                    api._url("/build"),
                    params=params,
                    data=body,
                    headers={"Content-Type": "application/x-tar"},
                    stream=True,
                    timeout=None,
                )
            except (requests.exceptions.RequestException, OSError) as exc:
                if job.cancelled:
                    return
                if is_connection_error(exc):
                    job.lost_connection = explain(exc)
                    return
                raise
            upload.done()
            with job.lock:
                job.response = response
            if job.cancelled:
                _shutdown_response(response)
                return
            if response.status_code >= 400:
                job.error = _api_error_text(response)
                return
            buf = b""
            try:
                for chunk in response.iter_content(chunk_size=None):
                    if record is not None:
                        record.write(chunk)
                    t0 = time.thread_time()
                    buf += chunk
                    if b"\n" not in buf:
                        continue
                    *lines, buf = buf.split(b"\n")
                    items = _classify_lines(lines, job)
                    decode_cpu += time.thread_time() - t0
                    if items:
                        loop.call_soon_threadsafe(self.deliver, job, items)
                if buf.strip():
                    items = _classify_lines([buf], job)
                    if items:
                        loop.call_soon_threadsafe(self.deliver, job, items)
            except (requests.exceptions.RequestException, OSError, AttributeError, ValueError) as exc:
                # AttributeError/ValueError: urllib3 reading from a socket we shut down on cancel.
                if job.cancelled:
                    return
                job.lost_connection = (
                    "lost the connection to the Docker daemon mid-build "
                    f"({type(exc).__name__}): it stopped or restarted, so the build did not finish; "
                    "start it again and rebuild (the console reconnects by itself)"
                )
            finally:
                response.close()
        except docker.errors.APIError as exc:
            job.error = f"Docker API error: {exc.explanation or exc}"
        finally:
            if record is not None:
                record.close()
            job.run.decode_cpu_s += decode_cpu
            job.run.client_cpu_s += time.thread_time() - cpu0


_HINTS = (
    (
        re.compile(r"failed to (do request|resolve source metadata).*docker/dockerfile", re.S),
        "the Dockerfile's '# syntax=' line makes BuildKit fetch a frontend image from a registry, and "
        "none answered: remove the line (the daemon's built-in frontend is used then) or make the "
        "registry reachable",
    ),
    (
        re.compile(
            r"failed to create LLB definition: .*(failed to do request|pull access denied|not found)"
            r"|pull access denied|manifest unknown",
            re.S,
        ),
        "a base image is neither local nor pullable: build or pull it first (demo-workspace: "
        "scripts/bootstrap-images.sh writes the local base image names into .env)",
    ),
)


def _with_hint(error: str) -> str:
    """The daemon's error plus what to do about it, for the failures users meet most."""
    for pattern, hint in _HINTS:
        if pattern.search(error):
            return f"{error} (hint: {hint})"
    return error


UPLOAD_STEP = "attune:context-upload"
UPLOAD_SHOW_AFTER_S = 0.5


class _UploadProgress:
    """Shows a big context upload as an internal step with byte progress.

    The session-less ``/build`` reads the whole context before BuildKit reports anything, so a large
    context would otherwise look like a hang. Uploads that finish within ``UPLOAD_SHOW_AFTER_S`` add no
    step (the usual case: a few hundred KiB).
    """

    def __init__(self, job: _Job, loop: asyncio.AbstractEventLoop) -> None:
        self.job, self.loop = job, loop
        self.sent = 0
        self.started = time.time()
        self.last_report = 0.0
        self.shown = False

    def wrap(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.sent += len(chunk)
            now = time.time()
            if now - self.started >= UPLOAD_SHOW_AFTER_S and now - self.last_report >= 0.2:
                self.last_report = now
                self._report(None)
            yield chunk

    def done(self) -> None:
        if self.shown:
            self._report(time.time())

    def _report(self, completed: float | None) -> None:
        self.shown = True
        sent, started, run = self.sent, self.started, self.job.run

        def apply() -> None:
            if run.state.finished:
                return
            run.apply_vertex(
                UPLOAD_STEP,
                "[internal] sending build context",
                started=started,
                completed=completed,
                cached=False,
            )
            run.apply_status(UPLOAD_STEP, "context", name="sending build context", current=sent)
            run.flush()

        self.loop.call_soon_threadsafe(apply)


def _until_cancelled(chunks: Iterator[bytes], job: _Job) -> Iterator[bytes]:
    """Stop sending the context as soon as the build is cancelled (the daemon then drops the request)."""
    for chunk in chunks:
        if job.cancelled:
            return
        yield chunk


def _classify_lines(lines: list[bytes], job: _Job) -> list[StreamItem]:
    items = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
            items.append(classify(obj))
        except (ValueError, TraceDecodeError) as exc:
            job.stream_text.append(f"undecodable build stream line ({exc}): {line[:200]!r}")
    return items


def _api_error_text(response: Any) -> str:
    try:
        msg = response.json().get("message")
    except ValueError:
        msg = response.text
    return f"Docker refused the build (HTTP {response.status_code}): {msg}"


def _shutdown_response(response: Any) -> None:
    """Shut the response's socket down so a thread blocked reading it wakes up and the daemon sees EOF."""
    sock = None
    with contextlib.suppress(Exception):
        fp = response.raw._fp.fp
        raw = getattr(fp, "raw", fp)
        sock = getattr(raw, "_sock", None) or getattr(raw, "sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):
        response.close()
