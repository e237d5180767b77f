"""The console core: what the TUI shows and what its keys do, without any UI.

:class:`ConsoleSession` owns the per-service state (build state, stale reason,
current/last :class:`~attune_console.core.progress.BuildRun`, duration history,
container state), the log buffers, the watch loop and the daemon monitor. The
TUI only reads this state and calls the ``async`` commands; it never talks to
Docker itself. Every command catches its own failure and turns it into a
:class:`Notice`, so a failed action never crashes the app.

The session talks to the rest of ``core`` through one small :class:`Backend`
protocol, implemented for real by :mod:`attune_console.core.backend` and by
scripted fakes in the UI tests. API changes in the engine, packs or services
modules stay inside that adapter.

Change propagation is *pull*: every mutation bumps :attr:`ConsoleSession.version`;
the UI redraws on its timer when the version moved. Bursts of build events
therefore cost one redraw per tick, not one per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from attune_console.core.console_config import ConsoleConfig
from attune_console.core.errors import AttuneError, DockerUnavailable
from attune_console.core.logbuffer import LogBuffer
from attune_console.core.progress import BuildEvent, BuildRun, EventKind, RunState, StepState

if TYPE_CHECKING:
    from attune_console.core.fingerprint import ServiceFingerprint
    from attune_console.core.packs import AsyncPacksSession

_T = TypeVar("_T")

PACK_BINARIES = "pack-binaries"
PACKS = "packs"

# -- what the backend reports ------------------------------------------------------------


@dataclass(frozen=True)
class ContainerStatus:
    """The running side of one compose service (``state`` is Docker's: running, exited, ...)."""

    state: str | None = None
    health: str | None = None
    image_created: float | None = None  # epoch seconds of the service's newest image
    image_id: str | None = None
    restarts: int = 0
    # A container runs and the sources changed (by fingerprint) since its image was built.
    source_newer: bool = False
    stale_reason: str | None = None  # the services module's advice (build, recreate), if any


@dataclass(frozen=True)
class ServiceImpact:
    """Why one service must rebuild: the first step that will miss and the file behind it."""

    stage: str | None
    instruction: str | None
    reason: str

    def describe(self) -> str:
        where = f"{self.stage}: {self.instruction}" if self.stage else (self.instruction or "")
        return f"{where} ({self.reason})" if where else self.reason


@dataclass(frozen=True)
class Impact:
    """The impact of a batch of changed paths (see :mod:`attune_console.core.impact`)."""

    services: dict[str, ServiceImpact] = field(default_factory=dict)
    packs_refresh: bool = False
    pack_binaries: bool = False


@dataclass(frozen=True)
class PacksStatus:
    """Packs volume compared with ``./packs``: ``changed`` counts added+changed+removed files."""

    volume_exists: bool
    changed: int
    detail: str = ""


class Backend(Protocol):
    """What the session needs from Docker, the build engine, packs and services."""

    def targets(self) -> list[str]:
        """Compose services that have a ``build:`` section, in compose-file order."""
        ...

    def services(self) -> list[str]:
        """Every compose service (build or not), in compose-file order."""
        ...

    async def ping(self) -> None:
        """Return when the daemon answers; raise :class:`DockerUnavailable` otherwise."""
        ...

    async def build(self, target: str, *, no_cache: bool, on_run: Callable[[BuildRun], None]) -> BuildRun:
        """Build ``target`` (a service or :data:`PACK_BINARIES`); cancelled by task cancellation."""
        ...

    async def container_status(self) -> dict[str, ContainerStatus]: ...

    async def impact(self, paths: Sequence[str]) -> Impact: ...

    async def packs_status(self) -> PacksStatus: ...

    async def refresh_packs(self, after: str) -> str:
        """Refresh the volume, then ``after`` (none / hup / restart); return a one-line summary."""
        ...

    async def install_pack_binaries(self, run: BuildRun) -> str:
        """After a successful pack-binaries build: extract binaries into ``packs/``; return a summary."""
        ...

    async def restart(self, service: str) -> None: ...

    async def recreate(self, service: str) -> None: ...

    async def up(self) -> None: ...

    async def follow_logs(self, services: Sequence[str], sink: Callable[[str, str], None]) -> None:
        """Follow container logs, calling ``sink(service, line)``; runs until cancelled."""
        ...


# -- what the UI reads ----------------------------------------------------------------------


@dataclass
class Notice:
    """A message for the user (shown as a toast); ``level`` is information, warning or error."""

    message: str
    level: str = "information"
    at: float = field(default_factory=time.time)


@dataclass
class ServiceState:
    """One row of the services table."""

    name: str
    kind: str = "service"  # service | pack-binaries | packs
    buildable: bool = True
    build_state: str = "unknown"  # unknown | up to date | stale | queued | building | failed | cancelled
    stale: ServiceImpact | None = None
    build_reason: ServiceImpact | None = None  # why the current/last build was started
    run: BuildRun | None = None
    durations: deque[float] = field(default_factory=lambda: deque(maxlen=12))
    container: ContainerStatus | None = None
    packs: PacksStatus | None = None

    @property
    def cache_ratio(self) -> tuple[int, int] | None:
        run = self.run
        if run is None or not run.state.finished or run.total == 0:
            return None
        return run.cached, run.total

    @property
    def building(self) -> bool:
        return self.run is not None and not self.run.state.finished


class ConsoleSession:
    """State and commands of one console on one workspace."""

    def __init__(self, workspace: Path, backend: Backend, config: ConsoleConfig | None = None) -> None:
        self.workspace = workspace
        self.backend = backend
        self.config = config or ConsoleConfig()
        self.version = 0
        self.notices: deque[Notice] = deque(maxlen=200)
        self.daemon_ok: bool | None = None
        self.daemon_message = ""
        self.watching = False
        self.auto_rebuild = self.config.auto_rebuild
        self.container_logs = LogBuffer(self.config.log_lines)
        self.build_logs: dict[str, LogBuffer] = {}
        self.rows: dict[str, ServiceState] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._watch_task: asyncio.Task[None] | None = None
        self._logs_task: asyncio.Task[None] | None = None
        self._monitor_task: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(self.config.parallel_builds)
        self._log_seen: dict[int, int] = {}
        self.last_impact_ms: float | None = None
        # Pack files the watcher saw change since the volume was last known in sync; None when
        # unknown (watch off at some point, daemon lost, never checked): then refresh scans all.
        self._pack_paths: set[str] | None = None
        self.monitor_interval = 2.0
        self._load_rows()

    # ------------------------------------------------------------------ state helpers
    def _load_rows(self) -> None:
        targets = set(self.backend.targets())
        for name in self.backend.services():
            buildable = name in targets
            row = ServiceState(name, buildable=buildable, build_state="unknown" if buildable else "-")
            self.rows[name] = row
            recent = getattr(self.backend, "recent_durations", None)
            if buildable and recent is not None:
                # The duration sparkline starts from the build history, not empty.
                with contextlib.suppress(Exception):
                    row.durations.extend(recent(name))
        self.rows[PACK_BINARIES] = ServiceState(PACK_BINARIES, kind=PACK_BINARIES)
        self.rows[PACKS] = ServiceState(PACKS, kind=PACKS, buildable=False)

    def touch(self) -> None:
        """Record that something the UI shows changed."""
        self.version += 1

    def notify(self, message: str, level: str = "information") -> None:
        self.notices.append(Notice(message, level))
        self.touch()

    def build_log(self, target: str) -> LogBuffer:
        buf = self.build_logs.get(target)
        if buf is None:
            buf = self.build_logs[target] = LogBuffer(self.config.log_lines)
        return buf

    @property
    def services(self) -> list[str]:
        """Compose services (rows of kind ``service``)."""
        return [n for n, r in self.rows.items() if r.kind == "service"]

    @property
    def running_builds(self) -> list[str]:
        return [n for n, t in self._tasks.items() if not t.done()]

    def stale_targets(self) -> list[str]:
        """Services whose image is out of date: predicted stale, never built, or last build failed."""
        wanted = ("stale", "not built", "failed")
        return [
            n for n, r in self.rows.items() if r.kind == "service" and r.buildable and r.build_state in wanted
        ]

    def _spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task[None]:
        async def runner() -> None:
            await coro

        task = asyncio.ensure_future(runner())
        task.set_name(name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Begin monitoring the daemon (and, when configured, watching the workspace)."""
        self._monitor_task = asyncio.ensure_future(self._monitor())
        self._spawn(self.predict_all(), "predict")
        if self.config.watch:
            self.set_watch(True)

    async def stop(self, timeout: float = 10.0) -> None:
        """Cancel builds, watchers and followers and wait (bounded) for them to end.

        ``asyncio.wait`` rather than awaiting each task: it never raises, never swallows the
        caller's own cancellation, and gives up after ``timeout`` so quitting cannot hang.
        """
        tasks = [self._tasks[n] for n in self.running_builds]
        tasks += [t for t in (self._watch_task, self._logs_task, self._monitor_task) if t is not None]
        tasks += list(self._background)
        for t in tasks:
            t.cancel()
        pending = [t for t in tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        aclose = getattr(self.backend, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(aclose(), timeout)

    async def _monitor(self) -> None:
        """Ping the daemon; on loss show the banner, on return reconnect the followers."""
        last_problem = ""
        while True:
            try:
                await _within(self.backend.ping(), 10)
                status = await self.backend.container_status()
            except (DockerUnavailable, TimeoutError, OSError) as exc:
                self._set_daemon(False, str(exc) or "Docker daemon not answering")
            except Exception as exc:  # the daemon answers, but reading state failed: say so once
                self._set_daemon(True, "")
                problem = str(exc) or type(exc).__name__
                if problem != last_problem:
                    last_problem = problem
                    self.notify(problem, "warning")
            else:
                last_problem = ""
                self._set_daemon(True, "")
                self._apply_status(status)
            await asyncio.sleep(self.monitor_interval)

    def _set_daemon(self, ok: bool, message: str) -> None:
        was, old_message = self.daemon_ok, self.daemon_message
        self.daemon_ok = ok
        self.daemon_message = message
        if was is not ok or message != old_message:
            self.touch()
        if ok and was is False:
            self.notify("Docker daemon is back: reconnected")
        if ok and was is not True:
            self._start_log_follow()
            self._spawn(self.check_packs(quiet=True), "packs-status")
        if not ok:
            self._pack_paths = None
            close_packs = getattr(self.backend, "close_packs", None)
            if was is not False and close_packs is not None:
                self._spawn(close_packs(), "close-packs")
        if not ok and self._logs_task is not None:
            self._logs_task.cancel()
            self._logs_task = None

    def _apply_status(self, status: dict[str, ContainerStatus]) -> None:
        changed = False
        for name, row in self.rows.items():
            if row.kind != "service":
                continue
            new = status.get(name)
            if new != row.container:
                row.container = new
                changed = True
            if row.build_state == "unknown" and row.buildable:
                row.build_state = "built" if new and new.image_created else "not built"
                changed = True
            if new is not None and new.source_newer and row.buildable and row.build_state == "built":
                # The running container's image predates the sources on disk (fingerprints differ).
                row.build_state = "stale"
                row.stale = row.stale or ServiceImpact(None, None, new.stale_reason or "source changed")
                changed = True
        if changed:
            self.touch()

    def _start_log_follow(self) -> None:
        if self._logs_task is not None and not self._logs_task.done():
            return
        append = self.container_logs.append

        async def follow() -> None:
            try:
                await self.backend.follow_logs(self.services, lambda svc, line: append(line, svc))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.notify(f"log follow stopped: {exc}", "warning")

        self._logs_task = asyncio.ensure_future(follow())

    # ------------------------------------------------------------------ builds
    async def build(
        self, target: str, *, no_cache: bool = False, reason: ServiceImpact | None = None
    ) -> None:
        """Start building ``target`` in the background (returns at once)."""
        row = self.rows.get(target)
        if row is None or not row.buildable:
            self.notify(f"{target}: nothing to build (no build: section)", "warning")
            return
        if target in self.running_builds:
            self.notify(f"{target}: already building (c cancels)", "warning")
            return
        row.build_reason = (
            reason or row.stale or (ServiceImpact(None, None, "--no-cache") if no_cache else None)
        )
        row.build_state = "queued"
        self.touch()
        self._tasks[target] = asyncio.ensure_future(self._run_build(target, no_cache))

    async def predict(self, target: str) -> ServiceImpact | None:
        """The backend's fingerprint prediction for ``target`` (None when it has none).

        When the impact analysis already named the same step, its reason (which names the
        changed file) is kept.
        """
        predict = getattr(self.backend, "predict", None)
        if predict is None:
            return None
        try:
            why: ServiceImpact | None = await asyncio.to_thread(predict, target)
        except Exception:
            return None
        stale = self.rows[target].stale if target in self.rows else None
        if why is not None and stale is not None and why.instruction == stale.instruction:
            return stale
        return why

    async def predict_all(self) -> None:
        """On load: rows whose sources changed since their last recorded build turn stale, with why."""
        for name, row in list(self.rows.items()):
            if not row.buildable or row.kind == PACKS:
                continue
            why = await self.predict(name)
            if why is None or why.stage is None or row.building:
                continue
            if row.build_state in ("unknown", "built", "not built", "up to date"):
                row.stale = why
                row.build_state = "stale"
                self.touch()

    async def _run_build(self, target: str, no_cache: bool) -> None:
        row = self.rows[target]
        log = self.build_log(target)
        try:
            if not no_cache:
                # Every build gets a reason for its first miss, not only the ones watch mode marked.
                predicted = await self.predict(target)
                if predicted is not None:
                    row.build_reason = predicted
            async with self._slots:
                row.build_state = "building"
                log.clear()
                self.touch()
                run = await self.backend.build(
                    target, no_cache=no_cache, on_run=lambda r: self._attach_run(row, r)
                )
                if row.run is not run:
                    self._attach_run(row, run)
                self._drain_step_logs(run, log)
            self._finish_build(row, run)
            if run.state is RunState.DONE and target == PACK_BINARIES:
                summary = await self.backend.install_pack_binaries(run)
                self.notify(f"pack binaries: {summary}")
                await self.check_packs(quiet=True)
        except asyncio.CancelledError:
            if row.run is not None and not row.run.state.finished:
                row.run.finish(RunState.CANCELLED, error="cancelled")
            row.build_state = "cancelled"
            self.notify(f"{target}: build cancelled", "warning")
            raise
        except Exception as exc:
            row.build_state = "failed"
            self.notify(f"{target}: build failed: {exc}", "error")
            if isinstance(exc, DockerUnavailable):
                self._set_daemon(False, str(exc))
        finally:
            self.touch()

    def _attach_run(self, row: ServiceState, run: BuildRun) -> None:
        row.run = run
        log = self.build_log(row.name)

        def on_events(events: Sequence[BuildEvent]) -> None:
            for e in events:
                if e.kind is EventKind.STEP_LOG or (
                    e.kind is EventKind.STEP_STATE and e.step is not None and e.step.state.finished
                ):
                    self._drain_step_logs(run, log)
                    break
            self.touch()

        run.subscribe(on_events)
        self.touch()

    def _drain_step_logs(self, run: BuildRun, log: LogBuffer) -> None:
        """Copy the step log lines not yet copied into the build's LogBuffer (source = step digest)."""
        for step in run.steps:
            key = id(step.log)
            seen = self._log_seen.get(key, 0)
            new = step.log.total - seen
            if new <= 0:
                continue
            lines = step.log.tail(new)
            log.extend((text for _stream, text in lines), source=step.digest)
            self._log_seen[key] = step.log.total

    def _finish_build(self, row: ServiceState, run: BuildRun) -> None:
        if run.state is RunState.DONE:
            row.build_state = "up to date"
            row.stale = None
            if run.duration is not None:
                row.durations.append(run.duration)
            self.notify(f"{row.name}: built, cached {run.cached}/{run.total} · {run.duration or 0:.1f} s")
        elif run.state is RunState.CANCELLED:
            row.build_state = "cancelled"
            self.notify(f"{row.name}: build cancelled", "warning")
        else:
            row.build_state = "failed"
            step = run.error_step
            where = f" at {step.name}" if step else ""
            self.notify(f"{row.name}: build failed{where}: {run.error or 'see the build log'}", "error")

    async def build_stale(self) -> None:
        """Build every stale service; the parallel limit queues the rest."""
        stale = self.stale_targets()
        if not stale:
            self.notify("nothing is stale")
            return
        for name in stale:
            await self.build(name)

    async def cancel(self, target: str) -> None:
        task = self._tasks.get(target)
        if task is None or task.done():
            self.notify(f"{target}: no build running", "warning")
            return
        task.cancel()
        await asyncio.wait([task], timeout=60)

    async def cancel_all(self, wait: bool = True) -> int:
        running = [self._tasks[n] for n in self.running_builds]
        for task in running:
            task.cancel()
        if wait and running:
            await asyncio.wait(running, timeout=60)
        return len(running)

    # ------------------------------------------------------------------ services and packs
    async def _action(self, what: str, coro: Awaitable[object]) -> bool:
        try:
            await coro
        except DockerUnavailable as exc:
            self._set_daemon(False, str(exc))
            self.notify(f"{what} failed: {exc}", "error")
            return False
        except (AttuneError, OSError, RuntimeError, ValueError) as exc:
            self.notify(f"{what} failed: {exc}", "error")
            return False
        return True

    async def restart(self, service: str) -> None:
        if await self._action(f"restart {service}", self.backend.restart(service)):
            self.notify(f"{service}: restarted")

    async def recreate(self, service: str) -> None:
        if await self._action(f"recreate {service}", self.backend.recreate(service)):
            self.notify(f"{service}: recreated with its current image")

    async def up(self) -> None:
        if await self._action("start the stack", self.backend.up()):
            self.notify("stack started")
            self._start_log_follow()
            await self.check_packs(quiet=True)  # init-packs has just filled the volume

    async def check_packs(self, quiet: bool = False) -> None:
        row = self.rows[PACKS]
        try:
            row.packs = await self.backend.packs_status()
        except Exception as exc:
            if not quiet:
                self.notify(f"packs status failed: {exc}", "error")
            return
        row.build_state = (
            "no volume" if not row.packs.volume_exists else ("in sync" if row.packs.changed == 0 else "stale")
        )
        if row.build_state == "in sync" and self.watching:
            self._pack_paths = set()  # from here on the watcher knows every pack change
        elif row.build_state != "in sync":
            self._pack_paths = None  # out of sync for reasons the watcher may not have seen
        self.touch()

    async def refresh_packs(self) -> None:
        summary: list[str] = []

        known = sorted(self._pack_paths) if self._pack_paths and self.watching else None
        limited = getattr(self.backend, "refresh_pack_paths", None)

        async def run() -> None:
            after = self.config.after_refresh
            if known is not None and limited is not None:
                summary.append(await limited(after, [str(self.workspace / p) for p in known]))
            else:
                summary.append(await self.backend.refresh_packs(after))

        if await self._action("packs refresh", run()):
            self.notify(f"packs: {summary[0] if summary else 'refreshed'}")
            await self.check_packs(quiet=True)

    async def build_pack_binaries(self) -> None:
        await self.build(PACK_BINARIES)

    # ------------------------------------------------------------------ watch
    def set_watch(self, on: bool) -> None:
        if on == self.watching:
            return
        self.watching = on
        self._pack_paths = None  # changes while not watching are unknown: the next refresh scans all
        if on:
            self._watch_task = asyncio.ensure_future(self._watch())
        elif self._watch_task is not None:
            self._watch_task.cancel()
            self._watch_task = None
        self.notify(f"watch mode {'on' if on else 'off'}")

    def set_auto_rebuild(self, on: bool) -> None:
        self.auto_rebuild = on
        hint = "" if self.watching or not on else " (press w to start watching)"
        self.notify(f"auto-rebuild {'on' if on else 'off'}{hint}")

    async def _watch(self) -> None:
        from attune_console.core.watcher import WorkspaceWatcher

        watcher = WorkspaceWatcher(self.workspace, debounce_ms=self.config.debounce_ms)
        try:
            async for batch in watcher.batches():
                await self.on_changes(batch.relative(self.workspace))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.watching = False
            self._pack_paths = None
            self.notify(f"watch mode stopped: {exc}", "error")

    async def on_changes(self, paths: Iterable[str]) -> Impact | None:
        """Run the impact analysis on changed paths and mark what it affects."""
        paths = list(paths)
        if not paths:
            return None
        t0 = time.perf_counter()
        try:
            impact = await self.backend.impact(paths)
        except Exception as exc:
            self.notify(f"impact analysis failed: {exc}", "error")
            return None
        self.last_impact_ms = (time.perf_counter() - t0) * 1000
        affected = []
        for name, why in impact.services.items():
            row = self.rows.get(name)
            if row is None:
                continue
            row.stale = why
            if not row.building:
                row.build_state = "stale"
            affected.append(name)
        if self._pack_paths is not None:
            self._pack_paths.update(p for p in paths if p.startswith("packs/"))
        if impact.packs_refresh:
            packs = self.rows[PACKS]
            packs.build_state = "stale"
            packs.stale = ServiceImpact(None, None, "pack files changed")
        if impact.pack_binaries:
            pb = self.rows[PACK_BINARIES]
            pb.stale = ServiceImpact(None, None, "pack binary sources changed")
            if not pb.building:
                pb.build_state = "stale"
            affected.append(PACK_BINARIES)
        self.touch()
        if self.auto_rebuild and self.watching:
            for name in affected:
                if name in self.running_builds:
                    # The running build is obsolete: the next change invalidated it.
                    await self.cancel(name)
                await self.build(name, reason=self.rows[name].stale)
        return impact


async def _within(coro: Awaitable[None], timeout: float) -> None:
    """Await ``coro`` for at most ``timeout`` seconds (raises TimeoutError).

    Not ``asyncio.wait_for``: on Python < 3.12 it can swallow the caller's cancellation when the
    inner call finishes at the same moment, and the monitor loop would then never stop.
    """
    task = asyncio.ensure_future(coro)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    finally:
        if not task.done():
            task.cancel()
    if not done:
        raise TimeoutError(f"no answer within {timeout:.0f} s")
    task.result()


def sparkline(values: Iterable[float]) -> str:
    """Durations as a tiny bar chart (no UI library needed)."""
    bars = "▁▂▃▄▅▆▇█"
    vals = list(values)
    if not vals:
        return ""
    low, high = min(vals), max(vals)
    span = high - low or 1.0
    return "".join(bars[min(7, int((v - low) / span * 7))] for v in vals)


__all__ = [
    "PACKS",
    "PACK_BINARIES",
    "Backend",
    "ConsoleSession",
    "ContainerStatus",
    "Impact",
    "Notice",
    "PacksStatus",
    "ServiceImpact",
    "ServiceState",
    "StepState",
    "sparkline",
]


class NullBackend:
    """A backend for a workspace that could not be loaded: every Docker action says why."""

    def __init__(self, reason: str = "workspace could not be loaded") -> None:
        self.reason = reason

    def targets(self) -> list[str]:
        return []

    def services(self) -> list[str]:
        return []

    async def ping(self) -> None:
        raise DockerUnavailable(self.reason)

    async def build(self, target: str, *, no_cache: bool, on_run: Callable[[BuildRun], None]) -> BuildRun:
        raise AttuneError(self.reason)

    async def container_status(self) -> dict[str, ContainerStatus]:
        return {}

    async def impact(self, paths: Sequence[str]) -> Impact:
        raise AttuneError(self.reason)

    async def packs_status(self) -> PacksStatus:
        raise AttuneError(self.reason)

    async def refresh_packs(self, after: str) -> str:
        raise AttuneError(self.reason)

    async def install_pack_binaries(self, run: BuildRun) -> str:
        raise AttuneError(self.reason)

    async def restart(self, service: str) -> None:
        raise AttuneError(self.reason)

    async def recreate(self, service: str) -> None:
        raise AttuneError(self.reason)

    async def up(self) -> None:
        raise AttuneError(self.reason)

    async def follow_logs(self, services: Sequence[str], sink: Callable[[str, str], None]) -> None:
        raise AttuneError(self.reason)


def _parse_docker_time(value: str | None) -> float | None:
    """Epoch seconds of a Docker RFC 3339 timestamp (nanoseconds tolerated)."""
    if not value:
        return None
    from datetime import datetime

    text = value.rstrip("Z")
    if "." in text:
        head, frac = text.split(".", 1)
        digits = "".join(ch for ch in frac if ch.isdigit())[:6]
        text = f"{head}.{digits or '0'}"
    try:
        from datetime import timezone

        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


class DockerBackend:
    """The real backend: workspace model + impact, BuildEngine, packs, services and logs modules.

    This is the one place that knows those modules' APIs; each blocking SDK call runs in a
    thread (``asyncio.to_thread``) so the UI's event loop never waits on Docker.
    """

    def __init__(self, workspace: Path, config: ConsoleConfig | None = None) -> None:
        from attune_console.core.buildx import detect_builder
        from attune_console.core.docker_conn import DockerConnection
        from attune_console.core.engine import BuildEngine
        from attune_console.core.model import Workspace

        self.root = workspace
        self.config = config or ConsoleConfig()
        self.model = Workspace.load(workspace)  # InputError with file:line for bad input
        self.project = self.model.compose
        self.connection = DockerConnection()
        history = None
        with contextlib.suppress(Exception):
            from attune_console.core.history import History

            history = History()
        self.history = history
        # A non-default buildx builder (remote, kubernetes, docker-container) builds the console's
        # targets too, like `attune-console build`; without one this is a config-file read.
        self.engine = BuildEngine(
            self.connection,
            concurrency=self.config.parallel_builds,
            history=history,
            buildx=detect_builder(),
        )
        self._monitor: object | None = None
        # impact_and_reload swaps the model's builds and fingerprints fill its digest cache, both in
        # worker threads: one lock keeps a fingerprint from reading a half-reloaded model.
        self._model_lock = threading.Lock()
        self._prints: dict[int, ServiceFingerprint] = {}
        self._definitions = self._definition_stats()
        self._packs: AsyncPacksSession | None = None
        self.last_refresh_paths: list[str] | None = None  # what the last refresh was limited to

    # -- model -------------------------------------------------------------------------
    def targets(self) -> list[str]:
        return [n for n, s in self.project.services.items() if s.build is not None]

    def services(self) -> list[str]:
        return list(self.project.services)

    def recent_durations(self, target: str, limit: int = 12) -> list[float]:
        """Durations of the last successful builds of ``target`` (oldest first), from history."""
        if self.history is None:
            return []
        svc = self.project.services.get(target)
        image = svc.image if svc is not None else None
        try:
            records = self.history.recent(target, limit=50)
        except Exception:
            return []
        out = [
            r.duration_s
            for r in records
            if r.result == "done" and r.duration_s is not None and (image is None or r.image == image)
        ][:limit]
        return list(reversed(out))

    async def impact(self, paths: Sequence[str]) -> Impact:
        from attune_console.core import impact as impact_mod

        def run() -> impact_mod.Impact:
            with self._model_lock:
                return impact_mod.impact_and_reload(self.model, list(paths))

        result = await asyncio.to_thread(run)
        services = {
            s.service: ServiceImpact(
                s.stage, s.instruction, s.reason or (f"{s.file} changed" if s.file else "changed")
            )
            for s in result.services
            if s.rebuild
        }
        return Impact(services, packs_refresh=result.packs_refresh, pack_binaries=result.pack_binaries)

    def _model_key(self, target: str) -> str:
        from attune_console.core import model as model_mod

        return model_mod.PACK_BINARIES if target == PACK_BINARIES else target

    def _definition_stats(self) -> dict[Path, tuple[int, int] | None]:
        out: dict[Path, tuple[int, int] | None] = {}
        for f in self.model.definition_files():
            try:
                st = f.stat()
            except OSError:
                out[f] = None
            else:
                out[f] = (st.st_size, st.st_mtime_ns)
        return out

    def _reload_definitions(self) -> None:
        """Reload the model when a Dockerfile, compose or Cargo file changed with watch mode off
        (about twenty ``stat`` calls; the impact analysis reloads them itself in watch mode)."""
        now = self._definition_stats()
        changed = [f for f in set(now) | set(self._definitions) if now.get(f) != self._definitions.get(f)]
        if changed:
            self.model.reload(changed)
            self._definitions = self._definition_stats()

    def fingerprint_json(self, target: str) -> str | None:
        """The fingerprint of ``target`` as the workspace is on disk now (None when it cannot be made)."""
        from attune_console.core.fingerprint import fingerprint

        try:
            with self._model_lock:
                self._reload_definitions()
                return fingerprint(self.model, self._model_key(target)).to_json()
        except Exception:
            return None

    def _last_print(self, target: str) -> ServiceFingerprint | None:
        """The fingerprint stored with ``target``'s newest successful build (parsed once per record)."""
        from attune_console.core.engine import targets_for
        from attune_console.core.fingerprint import ServiceFingerprint

        if self.history is None:
            return None
        try:
            (bt,) = targets_for(self.project, [target])
            rec = self.history.last_success(target, workspace=str(bt.context))
        except Exception:
            return None
        if rec is None or not rec.fingerprint:
            return None
        hit = self._prints.get(rec.id)
        if hit is None:
            try:
                hit = self._prints[rec.id] = ServiceFingerprint.from_json(rec.fingerprint)
            except Exception:
                return None
        return hit

    def predict(self, target: str) -> ServiceImpact | None:
        """Why the next build of ``target`` will miss, from the fingerprint of its last good build.

        ``None`` when there is no recorded fingerprint (the caller falls back to the impact
        analysis); a :class:`ServiceImpact` without a stage when nothing changed. Cheap: file
        digests are cached by (size, mtime, mode) and stored fingerprints are parsed once.
        """
        from attune_console.core.fingerprint import ServiceFingerprint, first_miss, known_keys

        old = self._last_print(target)
        if old is None:
            return None
        now_json = self.fingerprint_json(target)
        if now_json is None:
            return None
        now = ServiceFingerprint.from_json(now_json)
        others = [self._last_print(t) for t in [*self.targets(), PACK_BINARIES] if t != target]
        miss = first_miss(old, now, known_keys(others))
        if miss is None:
            return ServiceImpact(None, None, "no source change since the last build")
        before = next(
            (s for s in old.steps if s.stage == miss.stage and s.instruction == miss.instruction), None
        )
        if before is None:
            why = f"new step ({miss.file}:{miss.line} changed since the last build)"
        elif miss.instruction.split(" ", 1)[0].upper() in ("COPY", "ADD"):
            why = "the files it copies changed since the last build"
        else:
            why = "its command, ARG or ENV values changed since the last build"
        return ServiceImpact(miss.stage, miss.instruction, why)

    # -- daemon ------------------------------------------------------------------------
    async def ping(self) -> None:
        if not await asyncio.to_thread(self.connection.available):
            await self.close_packs()  # its helper is gone with the daemon; reopen after
            raise DockerUnavailable(self.connection.last_error or "Docker daemon not answering")

    def _source_check(self) -> Callable[[Any], bool] | None:
        """The monitor's "source newer than image" check, from the build fingerprints in history."""
        from attune_console.core import services as services_mod

        if self.history is None:
            return None
        try:
            return services_mod.fingerprint_source_check(self.root, self.history)
        except Exception:
            return None  # staleness is a hint: without it the monitor still reports containers

    def _client(self) -> object:
        return self.connection.client()

    async def container_status(self) -> dict[str, ContainerStatus]:
        from attune_console.core import services as services_mod

        def read() -> dict[str, ContainerStatus]:
            monitor = self._monitor
            thread = getattr(monitor, "_thread", None)
            if monitor is None or thread is None or not thread.is_alive():
                if monitor is not None:
                    with contextlib.suppress(Exception):
                        monitor.stop()  # type: ignore[attr-defined]
                monitor = services_mod.ServiceMonitor(
                    self._client(), self.project, source_check=self._source_check()
                )
                monitor.start()
                self._monitor = monitor
            states = monitor.states()  # type: ignore[attr-defined]
            out: dict[str, ContainerStatus] = {}
            for name, st in states.items():
                health = next((c.health for c in st.containers if c.health), None)
                out[name] = ContainerStatus(
                    state=None if st.state == "absent" else st.state,
                    health=health,
                    image_created=_parse_docker_time(st.built_at),
                    image_id=st.built_image_id,
                    restarts=sum(c.restart_count for c in st.containers),
                    source_newer=st.source_newer and st.stale_reason is not None,
                    stale_reason=st.stale_reason,
                )
            return out

        from attune_console.core.docker_conn import explain, is_connection_error

        try:
            return await asyncio.to_thread(read)
        except DockerUnavailable:
            raise
        except Exception as exc:
            self._monitor = None
            if is_connection_error(exc):
                self.connection.invalidate()
                raise DockerUnavailable(explain(exc)) from exc
            raise AttuneError(f"reading container state failed: {exc}") from exc

    # -- builds ------------------------------------------------------------------------
    async def build(self, target: str, *, no_cache: bool, on_run: Callable[[BuildRun], None]) -> BuildRun:
        from attune_console.core.engine import targets_for

        (build_target,) = targets_for(self.project, [target])
        # Like the CLI: the fingerprint of the sources as built goes into history with the run,
        # so the next prediction (first_miss) can compare against it.
        fp = await asyncio.to_thread(self.fingerprint_json, target)
        if fp is None:
            self.engine.fingerprints.pop(target, None)
        else:
            self.engine.fingerprints[target] = fp
        run = self.engine.submit(build_target, no_cache=no_cache)
        on_run(run)
        try:
            return await self.engine.wait(run)
        except asyncio.CancelledError:
            self.engine.cancel(run)
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self.engine.wait(run), 30)
            raise

    async def install_pack_binaries(self, run: BuildRun) -> str:
        from attune_console.core import pack_binaries

        image = run.image_id or run.image
        if image is None:
            raise AttuneError("the pack binaries build produced no image")
        installed = await asyncio.to_thread(
            pack_binaries.extract_binaries, self._client(), image, self.root / "packs"
        )
        names = ", ".join(b.name for b in installed)
        refreshed = await self.refresh_packs(self.config.after_refresh)
        return f"installed {names}; packs: {refreshed}"

    # -- packs -------------------------------------------------------------------------
    async def _packs_session(self) -> AsyncPacksSession:
        """The console's one packs helper session (opened on first use, reopened after a loss)."""
        from attune_console.core import packs

        if self._packs is None:
            self._packs = packs.AsyncPacksSession(self._client(), self.project)
        return self._packs

    async def close_packs(self) -> None:
        """Remove the packs helper (bounded: the daemon may be gone); the next call opens a new one."""
        old, self._packs = self._packs, None
        if old is not None:
            with contextlib.suppress(Exception):
                await _within(old.aclose(), 10)

    async def _with_packs(self, call: Callable[[AsyncPacksSession], Awaitable[_T]]) -> _T:
        from attune_console.core.docker_conn import explain, is_connection_error

        session = await self._packs_session()
        try:
            return await call(session)
        except Exception as exc:
            # The helper may be dead or the daemon gone: never reuse a session that failed.
            await self.close_packs()
            if is_connection_error(exc):
                self.connection.invalidate()
                raise DockerUnavailable(explain(exc)) from exc
            raise

    async def packs_status(self) -> PacksStatus:
        status = await self._with_packs(lambda s: s.status())
        changed = sum(len(p.added) + len(p.changed) + len(p.removed) for p in status.packs)
        detail = ", ".join(f"{p.pack} {p.state}" for p in status.packs if p.state != "unchanged")
        return PacksStatus(status.volume_exists, changed, detail)

    async def refresh_packs(self, after: str) -> str:
        return await self.refresh_pack_paths(after, None)

    async def refresh_pack_paths(self, after: str, paths: Sequence[str] | None) -> str:
        """Refresh the volume; ``paths`` (from the watcher) limits the scan to those files."""
        mode: Any = after if after in ("none", "hup", "restart") else "none"
        self.last_refresh_paths = None if paths is None else list(paths)
        result = await self._with_packs(lambda s: s.refresh(mode, paths=paths))
        plan = result.plan
        text = f"{len(plan.put)} written, {len(plan.remove)} removed ({result.bytes_sent} bytes)"
        if result.created_volume:
            text += ", volume created"
        if result.services:
            text += "; " + ", ".join(f"{svc}: {what}" for svc, what in result.services.items())
        return text

    # -- services ----------------------------------------------------------------------
    async def restart(self, service: str) -> None:
        from attune_console.core import services as services_mod

        result = await asyncio.to_thread(
            services_mod.restart_service, self._client(), self.project.name, service, only_running=False
        )
        if result.startswith("no "):
            raise AttuneError(f"{result} for {service} (U starts the stack)")

    async def recreate(self, service: str) -> None:
        from attune_console.core import services as services_mod

        await services_mod.recreate_service(self._client(), self.project, service)

    async def up(self) -> None:
        from attune_console.core import services as services_mod

        await services_mod.up_stack(self._client(), self.project)

    async def follow_logs(self, services: Sequence[str], sink: Callable[[str, str], None]) -> None:
        from attune_console.core import logs

        follower = logs.LogFollower(self._client(), self.project.name, services)
        follower.start()
        try:
            async for batch in follower.batches():
                for item in batch:
                    if isinstance(item, logs.LogLine):
                        sink(item.service, item.text)
                    elif item.kind != "attached":
                        detail = f"{item.count} lines dropped" if item.kind == "dropped" else item.detail
                        sink(item.service, f"\x1b[2m-- {item.kind}: {detail}\x1b[0m")
        finally:
            await asyncio.to_thread(follower.close)

    async def aclose(self) -> None:
        await self.close_packs()
        await self.engine.aclose()
        monitor = self._monitor
        if monitor is not None:
            await asyncio.to_thread(monitor.stop)  # type: ignore[attr-defined]
