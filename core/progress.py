"""The UI-free progress model of a build: one :class:`BuildRun` per service, ordered :class:`BuildStep`s.

Producers (the BuildKit trace decoder, the buildx rawjson reader) call the ``apply_*`` methods and then
:meth:`BuildRun.flush`; consumers (the TUI, the CLI printers, history) subscribe and receive *batches* of
:class:`BuildEvent` — one batch per decoded BuildKit status message, never one call per log line.

Cheapness is a design rule: BuildKit may send thousands of log lines per second. A log chunk costs one
``str.split`` plus a ``deque.extend`` of plain ``(stream, text)`` tuples into a bounded deque; carriage
return progress lines (cargo's ``Building [==>  ] 12/80``) are collapsed to their last state as they
arrive, so nothing grows without bound. Events name the step and what changed; consumers read the step's
fields themselves.

Everything runs on one thread (the event loop): producers decode off-loop and hand whole messages to the
loop, so the model needs no locks.

Typical use::

    run = BuildRun(service="api", image="demo-api")
    unsubscribe = run.subscribe(lambda events: print([e.kind for e in events]))
    async for events in run.updates():   # or this, until the run finishes
        ...
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = [
    "STDERR",
    "STDOUT",
    "BuildEvent",
    "BuildRun",
    "BuildStep",
    "ByteProgress",
    "EventKind",
    "LogLine",
    "RunState",
    "StepKind",
    "StepLog",
    "StepState",
    "StepWarning",
    "parse_exit_code",
    "split_vertex_name",
]

STDOUT = 1
STDERR = 2

LogLine = tuple[int, str]
"""One log line: ``(stream, text)`` with stream 1 = stdout, 2 = stderr (BuildKit's numbering)."""

DEFAULT_MAX_LOG_LINES = 5000
"""Per step. A failing cargo build prints far less; a chatty one keeps its newest lines."""

_MAX_PARTIAL = 64 * 1024


class StepState(str, Enum):
    """Where a step is. ``cached`` and ``done`` both mean success; ``cached``: BuildKit reused a result."""

    QUEUED = "queued"
    RUNNING = "running"
    CACHED = "cached"
    DONE = "done"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in (StepState.QUEUED, StepState.RUNNING)


_MISSED = (StepState.DONE, StepState.ERROR, StepState.RUNNING)


class RunState(str, Enum):
    """Where a whole build is. ``queued`` waits for a concurrency slot of the engine."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (RunState.DONE, RunState.ERROR, RunState.CANCELLED)


class StepKind(str, Enum):
    """What a vertex is, so totals count what users mean by "steps".

    ``instruction``: a Dockerfile instruction (``[builder 4/6] COPY ...``); counted in cached/total.
    ``from``: a stage's base image (``[builder 1/6] FROM ...``); BuildKit reports it DONE, never CACHED,
    even on a fully cached rebuild, so it is counted apart. ``internal``: context transfer, metadata
    loads, exporting — everything without a ``[stage n/m]`` prefix.
    """

    INSTRUCTION = "instruction"
    FROM = "from"
    INTERNAL = "internal"


class EventKind(str, Enum):
    STEP_ADDED = "step_added"  # a vertex appeared (already has its first state)
    STEP_STATE = "step_state"  # state changed; ``old_state`` says from what
    STEP_PROGRESS = "step_progress"  # byte/item progress changed
    STEP_LOG = "step_log"  # new log lines (one event per step per batch)
    STEP_WARNING = "step_warning"
    RUN_STATE = "run_state"  # the run changed state (``step`` is None)


@dataclass(frozen=True, slots=True)
class BuildEvent:
    """One change. ``step`` is None for run-level events.

    For ``step_state`` / ``run_state`` events ``old_state`` and ``new_state`` record the transition as it
    happened (the step or run may have moved on by the time a queued consumer reads the event).
    """

    kind: EventKind
    run: BuildRun
    step: BuildStep | None = None
    old_state: StepState | RunState | None = None
    new_state: StepState | RunState | None = None


@dataclass(slots=True)
class ByteProgress:
    """One BuildKit status of a vertex (a layer being extracted, the context being transferred...)."""

    id: str
    name: str = ""
    current: int = 0
    total: int = 0
    started: float | None = None
    completed: float | None = None


@dataclass(frozen=True, slots=True)
class StepWarning:
    """A BuildKit warning (level 1 = lint-ish, 2 = important); ``line`` in the Dockerfile when known."""

    short: str
    detail: tuple[str, ...] = ()
    url: str = ""
    level: int = 1
    line: int | None = None


class StepLog:
    """Bounded log of one step with carriage-return collapsing and partial-line buffering.

    ``lines`` holds complete lines (newest ``maxlen``); ``partial`` holds, per stream, the unfinished
    last line (already CR-collapsed) so a progress bar can be shown live. ``total`` counts every line
    ever appended so a consumer can tell how many it missed (``total - len(lines)`` were dropped).
    """

    __slots__ = ("_partial", "lines", "total")

    def __init__(self, maxlen: int = DEFAULT_MAX_LOG_LINES) -> None:
        self.lines: deque[LogLine] = deque(maxlen=maxlen)
        self.total = 0
        self._partial: dict[int, str] = {}

    def feed(self, stream: int, data: bytes | str) -> int:
        """Append a raw chunk; returns how many complete lines it finished."""
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        prev = self._partial.get(stream)
        if prev:
            text = prev + text
        if "\n" not in text:
            self._partial[stream] = _collapse_partial(text)
            return 0
        parts = text.split("\n")
        rest = parts.pop()
        self._partial[stream] = _collapse_partial(rest) if rest else ""
        if "\r" in text:
            parts = [p.rstrip("\r").rpartition("\r")[2] if "\r" in p else p for p in parts]
        self.lines.extend([(stream, p) for p in parts])
        self.total += len(parts)
        return len(parts)

    def close(self) -> None:
        """Turn unfinished partial lines into lines (the step ended without a final newline)."""
        for stream, rest in self._partial.items():
            if rest:
                self.lines.append((stream, rest.rstrip("\r")))
                self.total += 1
        self._partial.clear()

    def partial(self, stream: int = STDOUT) -> str:
        return self._partial.get(stream, "").rstrip("\r")

    def tail(self, n: int) -> list[LogLine]:
        """The last ``n`` complete lines (plus nothing else: call :meth:`close` first at the end)."""
        if n >= len(self.lines):
            return list(self.lines)
        return list(self.lines)[-n:]

    def text(self) -> str:
        return "\n".join(t for _, t in self.lines)

    def __len__(self) -> int:
        return len(self.lines)


def _collapse_partial(text: str) -> str:
    if "\r" not in text:
        return text[-_MAX_PARTIAL:]
    ends_cr = text.endswith("\r")
    last = text.rstrip("\r").rpartition("\r")[2]
    return (last + "\r") if ends_cr else last


_NAME_RE = re.compile(
    r"^\[(?P<stage>[^\]\s]+(?: [^\]\s]+)*?)\s+(?P<index>\d+)/(?P<count>\d+)\]\s+(?P<instr>.*)$", re.S
)


def split_vertex_name(name: str) -> tuple[str | None, int | None, int | None, str]:
    """Split a BuildKit vertex name into ``(stage, index, count, instruction)``.

    ``[builder 4/6] COPY crates/api/ ./crates/api/`` gives
    ``("builder", 4, 6, "COPY crates/api/ ./crates/api/")``;
    an unnamed stage prints as ``[4/6] RUN ...`` (stage None); internal vertices (``[internal] load
    .dockerignore``, ``exporting to image``) return ``(None, None, None, name)``.
    """
    if name.startswith("[") and not name.startswith("[internal]"):
        m = _NAME_RE.match(name)
        if m:
            return m["stage"], int(m["index"]), int(m["count"]), m["instr"]
        m2 = re.match(r"^\[(\d+)/(\d+)\]\s+(.*)$", name, re.S)
        if m2:
            return None, int(m2[1]), int(m2[2]), m2[3]
    return None, None, None, name


_EXIT_RE = re.compile(r"exit code: (\d+)")


def parse_exit_code(error: str) -> int | None:
    """The exit code in a BuildKit vertex error (``...did not complete successfully: exit code: 101``)."""
    m = _EXIT_RE.search(error)
    return int(m.group(1)) if m else None


def _is_cancel_error(error: str) -> bool:
    return "context canceled" in error or "context cancelled" in error


@dataclass(eq=False)
class BuildStep:
    """One BuildKit vertex. Identity is the vertex digest; ``name`` is exactly as BuildKit names it."""

    digest: str
    name: str
    stage: str | None = None
    index: int | None = None  # n of ``[stage n/m]``
    count: int | None = None  # m of ``[stage n/m]``
    instruction: str = ""  # the name without the ``[stage n/m]`` prefix
    kind: StepKind = StepKind.INTERNAL
    line: int | None = None  # 1-based Dockerfile line when the engine could map it
    state: StepState = StepState.QUEUED
    started: float | None = None  # epoch seconds (BuildKit's clock)
    completed: float | None = None
    error: str | None = None
    exit_code: int | None = None
    inputs: tuple[str, ...] = ()
    progress: dict[str, ByteProgress] = field(default_factory=dict)
    log: StepLog = field(default_factory=StepLog)
    warnings: list[StepWarning] = field(default_factory=list)
    order: int = 0  # position of first appearance in the run

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        end = self.completed if self.completed is not None else time.time()
        return max(0.0, end - self.started)

    @property
    def current_bytes(self) -> int:
        return sum(p.current for p in self.progress.values())

    @property
    def total_bytes(self) -> int:
        return sum(p.total for p in self.progress.values())

    def to_dict(self) -> dict[str, Any]:
        d = self.duration
        return {
            "digest": self.digest,
            "name": self.name,
            "stage": self.stage,
            "line": self.line,
            "kind": self.kind.value,
            "state": self.state.value,
            "duration_s": None if d is None else round(d, 3),
            "error": self.error,
            "exit_code": self.exit_code,
        }


Subscriber = Callable[[Sequence[BuildEvent]], None]


class BuildRun:
    """The build of one target (a compose service or the pack binaries).

    Steps are kept in order of first appearance (``steps``), indexed by digest (``step_by_digest``).
    ``line_resolver``, if set, maps ``(stage, index, instruction)`` to a Dockerfile line for new steps.
    """

    def __init__(
        self,
        service: str,
        image: str | None = None,
        *,
        target: str | None = None,
        max_log_lines: int = DEFAULT_MAX_LOG_LINES,
        line_resolver: Callable[[str | None, int | None, str], int | None] | None = None,
    ) -> None:
        self.service = service
        self.image = image
        self.target = target
        self.state = RunState.QUEUED
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self.image_id: str | None = None
        self.error: str | None = None  # run-level message (daemon error, cancel reason...)
        self.error_step: BuildStep | None = None
        self.steps: list[BuildStep] = []
        self.step_by_digest: dict[str, BuildStep] = {}
        self.max_log_lines = max_log_lines
        self.line_resolver = line_resolver
        self.messages: list[str] = []  # non-trace stream text from the daemon (rare)
        # CPU seconds the console itself spent on this run (the bench reports them against the build):
        self.decode_cpu_s = 0.0  # splitting, JSON and protobuf decoding (reader thread)
        self.apply_cpu_s = 0.0  # applying decoded messages to this model and notifying (event loop)
        self.client_cpu_s = 0.0  # the whole reader thread, including the context tar upload
        self._subscribers: list[Subscriber] = []
        self._pending: list[BuildEvent] = []
        self._logged: set[str] = set()

    # ----------------------------------------------------------------- derived
    @property
    def exit_code(self) -> int | None:
        return self.error_step.exit_code if self.error_step else None

    @property
    def counted_steps(self) -> list[BuildStep]:
        """The steps that make up cached/total: Dockerfile instructions other than ``FROM``."""
        return [s for s in self.steps if s.kind is StepKind.INSTRUCTION]

    @property
    def total(self) -> int:
        return len(self.counted_steps)

    @property
    def cached(self) -> int:
        return sum(1 for s in self.steps if s.kind is StepKind.INSTRUCTION and s.state is StepState.CACHED)

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished if self.finished is not None else time.time()) - self.started

    @property
    def first_missed_step(self) -> BuildStep | None:
        """The counted step that missed the cache first: the root cause of a rebuild.

        Stages run in parallel, so "first" is by start time (then by appearance), not by list order.
        """
        missed = [
            s
            for s in self.steps
            if s.kind is StepKind.INSTRUCTION
            and s.state in (StepState.DONE, StepState.ERROR, StepState.RUNNING)
        ]
        if not missed:
            return None
        return min(missed, key=lambda s: (s.started if s.started is not None else float("inf"), s.order))

    def last_log_lines(self, n: int = 30) -> list[LogLine]:
        """The failing step's last ``n`` lines (empty when there is no failing step)."""
        return self.error_step.log.tail(n) if self.error_step else []

    # ------------------------------------------------------------ subscriptions
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(events)`` after every batch of changes; returns the unsubscribe function.

        Callbacks run on the event loop thread and must be quick; an exception in one is not
        allowed to break the build (it is swallowed after being attached to the run's messages).
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    async def updates(self) -> AsyncIterator[Sequence[BuildEvent]]:
        """Async iterator over event batches; ends after the batch in which the run finished."""
        queue: asyncio.Queue[Sequence[BuildEvent]] = asyncio.Queue()
        unsubscribe = self.subscribe(queue.put_nowait)
        try:
            if self.state.finished:
                return
            while True:
                batch = await queue.get()
                yield batch
                if any(
                    e.kind is EventKind.RUN_STATE
                    and isinstance(e.new_state, RunState)
                    and e.new_state.finished
                    for e in batch
                ):
                    return
        finally:
            unsubscribe()

    def flush(self) -> None:
        """Deliver the pending events to subscribers as one batch."""
        if not self._pending:
            return
        batch = self._pending
        self._pending = []
        self._logged.clear()
        for cb in tuple(self._subscribers):
            try:
                cb(batch)
            except Exception as exc:  # a broken consumer must not kill the build
                self.messages.append(f"subscriber error: {exc!r}")

    # ------------------------------------------------------------ producer API
    def start(self) -> None:
        if self.state is RunState.QUEUED:
            self.started = time.time()
            self._set_state(RunState.RUNNING)

    def apply_vertex(
        self,
        digest: str,
        name: str,
        *,
        started: float | None,
        completed: float | None,
        cached: bool,
        error: str = "",
        inputs: Iterable[str] = (),
    ) -> BuildStep:
        """Create or update the step for a BuildKit vertex and derive its state."""
        step = self.step_by_digest.get(digest)
        new = step is None
        if step is None:
            stage, index, count, instr = split_vertex_name(name)
            if index is None:
                kind = StepKind.INTERNAL
            elif instr.startswith("FROM "):
                kind = StepKind.FROM
            else:
                kind = StepKind.INSTRUCTION
            step = BuildStep(
                digest=digest,
                name=name,
                stage=stage,
                index=index,
                count=count,
                instruction=instr,
                kind=kind,
                inputs=tuple(inputs),
                log=StepLog(self.max_log_lines),
                order=len(self.steps),
            )
            if self.line_resolver is not None and index is not None:
                try:
                    step.line = self.line_resolver(stage, index, instr)
                except Exception:
                    step.line = None
            self.steps.append(step)
            self.step_by_digest[digest] = step
        if started is not None:
            step.started = started
        if completed is not None:
            step.completed = completed
        old = step.state
        if error:
            step.error = error
            if _is_cancel_error(error):
                step.state = StepState.CANCELLED
            else:
                step.state = StepState.ERROR
                step.exit_code = parse_exit_code(error)
                if self.error_step is None:
                    self.error_step = step
        elif cached:
            step.state = StepState.CACHED
        elif completed is not None:
            step.state = StepState.DONE
        elif started is not None:
            step.state = StepState.RUNNING
            step.completed = None  # BuildKit restarted the vertex (it does, e.g. for context loads)
        if new:
            self._pending.append(BuildEvent(EventKind.STEP_ADDED, self, step, None, step.state))
        elif old is not step.state:
            self._pending.append(BuildEvent(EventKind.STEP_STATE, self, step, old, step.state))
        if step.completed is not None and step.state.finished:
            step.log.close()
        return step

    def apply_status(
        self,
        vertex: str,
        id: str,
        *,
        name: str = "",
        current: int = 0,
        total: int = 0,
        started: float | None = None,
        completed: float | None = None,
    ) -> None:
        step = self.step_by_digest.get(vertex)
        if step is None:
            return
        p = step.progress.get(id)
        if p is None:
            p = step.progress[id] = ByteProgress(id=id, name=name)
        p.current, p.total = current, total
        if started is not None:
            p.started = started
        if completed is not None:
            p.completed = completed
        self._pending.append(BuildEvent(EventKind.STEP_PROGRESS, self, step))

    def apply_log(self, vertex: str, stream: int, data: bytes | str) -> None:
        step = self.step_by_digest.get(vertex)
        if step is None:
            return
        step.log.feed(stream, data)
        if vertex not in self._logged:
            self._logged.add(vertex)
            self._pending.append(BuildEvent(EventKind.STEP_LOG, self, step))

    def apply_warning(self, vertex: str, warning: StepWarning) -> None:
        step = self.step_by_digest.get(vertex)
        if step is None:
            return
        step.warnings.append(warning)
        self._pending.append(BuildEvent(EventKind.STEP_WARNING, self, step))

    def finish(
        self,
        state: RunState,
        *,
        image_id: str | None = None,
        error: str | None = None,
    ) -> None:
        """End the run. Unfinished steps become ``cancelled`` (or stay as BuildKit left them on success)."""
        if self.state.finished:
            return
        if image_id:
            self.image_id = image_id
        if error:
            self.error = error
        if state is not RunState.DONE:
            for s in self.steps:
                if not s.state.finished:
                    old = s.state
                    s.state = StepState.CANCELLED
                    self._pending.append(BuildEvent(EventKind.STEP_STATE, self, s, old, s.state))
        for s in self.steps:
            s.log.close()
        if self.started is None:
            self.started = time.time()
        self.finished = time.time()
        self._set_state(state)
        self.flush()

    def _set_state(self, state: RunState) -> None:
        old = self.state
        if old is state:
            return
        self.state = state
        self._pending.append(BuildEvent(EventKind.RUN_STATE, self, None, old, state))

    # ----------------------------------------------------------------- output
    def summary(self) -> dict[str, Any]:
        """The CLI's ``--json`` summary object (also what history stores)."""
        return {
            "service": self.service,
            "image": self.image,
            "image_id": self.image_id,
            "result": self.state.value,
            "cached": self.cached,
            "total": self.total,
            "duration_s": None if self.duration is None else round(self.duration, 3),
            "error": self.error,
            "error_step": self.error_step.name if self.error_step else None,
            "exit_code": self.exit_code,
            "first_missed_step": (m.name if (m := self.first_missed_step) else None),
            "steps": [
                {
                    "name": s.name,
                    "state": s.state.value,
                    "duration_s": None if (d := s.duration) is None else round(d, 3),
                }
                for s in self.steps
            ],
        }

    def __repr__(self) -> str:
        return f"BuildRun({self.service!r}, state={self.state.value}, {self.cached}/{self.total} cached)"
