"""`attune-console build SERVICE... [--plain|--json] [--no-cache] [--pack-binaries]`.

Builds compose services (and the pack binaries) through the BuildKit engine and prints the progress
model: ``--plain`` (default) one line per step transition and the failing step's log on error;
``--json`` JSON lines (``step``, ``log`` and ``run`` events) ending with one ``summary`` object per
service. Exit 0 when every build succeeded, 1 when one failed, 130 on Ctrl-C (after the builds were
really cancelled), 2 for bad input or no daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from attune_console.commands._common import fail, resolve_workspace
from attune_console.core.errors import AttuneError, DockerUnavailable
from attune_console.core.progress import BuildEvent, BuildRun, BuildStep, EventKind, RunState, StepState

ERROR_LOG_LINES = 60


class PlainPrinter:
    """``#7 [builder 4/6] COPY crates/api/ ./crates/api/ CACHED``: one line per step transition."""

    def __init__(self, out: TextIO, prefix_service: bool) -> None:
        self.out = out
        self.prefix_service = prefix_service

    def __call__(self, events: Sequence[BuildEvent]) -> None:
        lines = []
        for e in events:
            if e.kind is EventKind.RUN_STATE:
                continue
            step = e.step
            if step is None or e.kind not in (EventKind.STEP_ADDED, EventKind.STEP_STATE):
                continue
            state = e.new_state
            if state is StepState.QUEUED:
                continue
            pre = f"{e.run.service} " if self.prefix_service else ""
            head = f"{pre}#{step.order + 1} {step.name}"
            if state is StepState.RUNNING:
                lines.append(head)
            elif state is StepState.CACHED:
                lines.append(f"{head} CACHED")
            elif state is StepState.DONE:
                d = step.duration
                lines.append(f"{head} DONE" + (f" {d:.1f}s" if d is not None else ""))
            elif state is StepState.ERROR:
                lines.append(f"{head} ERROR: {step.error}")
            elif state is StepState.CANCELLED:
                lines.append(f"{head} CANCELED")
        if lines:
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()

    def finish(self, run: BuildRun) -> None:
        w = self.out.write
        if run.state is RunState.ERROR:
            step = run.error_step
            if step is not None:
                w(f"\n------ {run.service}: #{step.order + 1} {step.name}")
                if step.line is not None:
                    w(f" (Dockerfile line {step.line})")
                w("\n")
                for _, text in run.last_log_lines(ERROR_LOG_LINES):
                    w(f"  {text}\n")
                w("------\n")
            w(f"{run.service}: ERROR: {run.error or 'build failed'}\n")
        elif run.state is RunState.CANCELLED:
            w(f"{run.service}: cancelled\n")
        else:
            dur = run.duration or 0.0
            w(f"{run.service}: built {run.image} ({run.image_id}) in {dur:.1f}s, ")
            w(f"{run.cached}/{run.total} steps cached\n")
        self.out.flush()


class JsonPrinter:
    """JSON lines: ``{"event": "step"|"log"|"run"|"summary", ...}``."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.sent: dict[int, int] = {}  # id(step) -> log lines already printed

    def _emit(self, obj: dict[str, Any]) -> None:
        self.out.write(json.dumps(obj) + "\n")

    def __call__(self, events: Sequence[BuildEvent]) -> None:
        for e in events:
            run, step = e.run, e.step
            if e.kind is EventKind.RUN_STATE:
                self._emit(
                    {"event": "run", "service": run.service, "state": getattr(e.new_state, "value", None)}
                )
            elif step is not None and e.kind in (EventKind.STEP_ADDED, EventKind.STEP_STATE):
                d = (
                    step.duration
                    if e.new_state in (StepState.DONE, StepState.CACHED, StepState.ERROR)
                    else None
                )
                self._emit(
                    {
                        "event": "step",
                        "service": run.service,
                        "step": step.order + 1,
                        "name": step.name,
                        "state": getattr(e.new_state, "value", None),
                        "line": step.line,
                        "duration_s": None if d is None else round(d, 3),
                        **({"error": step.error, "exit_code": step.exit_code} if step.error else {}),
                    }
                )
            elif step is not None and e.kind is EventKind.STEP_LOG:
                self._log(run, step)
        self.out.flush()

    def _log(self, run: BuildRun, step: BuildStep) -> None:
        sent = self.sent.get(id(step), 0)
        new = step.log.total - sent
        if new <= 0:
            return
        lines = list(step.log.lines)[-min(new, len(step.log.lines)) :]
        self.sent[id(step)] = step.log.total
        self._emit(
            {
                "event": "log",
                "service": run.service,
                "step": step.order + 1,
                "lines": [{"stream": "stderr" if s == 2 else "stdout", "text": t} for s, t in lines],
            }
        )

    def finish(self, run: BuildRun) -> None:
        for step in run.steps:
            self._log(run, step)  # lines completed by the final flush of partial lines
        self._emit({"event": "summary", **run.summary()})
        self.out.flush()


def _fingerprints(root: Any, services: list[str]) -> dict[str, str]:
    """Impact fingerprints of the services as they are on disk now (best effort; history only)."""
    try:
        from attune_console.core import model
        from attune_console.core.engine import PACK_BINARIES
        from attune_console.core.fingerprint import fingerprint

        ws = model.Workspace.load(root)
    except Exception:
        return {}
    out = {}
    for s in services:
        key = model.PACK_BINARIES if s == PACK_BINARIES else s  # the model's name for that build
        with contextlib.suppress(Exception):
            out[s] = fingerprint(ws, key).to_json()
    return out


async def _main(args: argparse.Namespace, root: Any) -> int:
    from attune_console.core.buildx import detect_builder
    from attune_console.core.compose import load_compose
    from attune_console.core.docker_conn import DockerConnection
    from attune_console.core.engine import BuildEngine, targets_for
    from attune_console.core.history import History

    project = load_compose(root)
    services = list(args.services)
    if not services and not args.pack_binaries:  # like `compose build`: every service that builds
        services = [n for n, s in project.services.items() if s.build is not None]
    targets = targets_for(project, services, pack_binaries=args.pack_binaries)
    if not targets:
        return fail("nothing to build: no service has a build: section", 2)

    concurrency = 2
    with contextlib.suppress(Exception):
        from attune_console.core.console_config import load_config

        concurrency = load_config(root).parallel_builds
    connection = DockerConnection()
    buildx = detect_builder()
    if buildx is None:
        await asyncio.to_thread(connection.client)  # DockerUnavailable here says what to do
    history = None
    with contextlib.suppress(Exception):
        history = History()
    engine = BuildEngine(connection, concurrency=concurrency, history=history, buildx=buildx)
    engine.fingerprints = await asyncio.to_thread(_fingerprints, root, [t.service for t in targets])

    printer: PlainPrinter | JsonPrinter
    printer = JsonPrinter(sys.stdout) if args.json else PlainPrinter(sys.stdout, len(targets) > 1)
    if buildx is not None and not args.json:
        print(f"building with buildx builder '{buildx.name}' ({buildx.driver} driver)", flush=True)

    interrupted = False
    loop = asyncio.get_running_loop()

    def on_sigint() -> None:
        nonlocal interrupted
        interrupted = True
        engine.cancel_all()
        # A second Ctrl-C is not caught: it interrupts for good even if the daemon does not answer.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    runs = []
    for t in targets:
        run = engine.submit(t, no_cache=args.no_cache)
        run.subscribe(printer)
        runs.append(run)
    try:
        for run in runs:
            await engine.wait(run)
            printer.finish(run)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
        await engine.aclose()
        connection.close()
    if interrupted or any(r.state is RunState.CANCELLED for r in runs):
        return 130
    return 0 if all(r.state is RunState.DONE for r in runs) else 1


def run(args: argparse.Namespace) -> int:
    root = resolve_workspace(getattr(args, "workspace", "."))
    if root is None:
        return 2
    try:
        return asyncio.run(_main(args, root))
    except DockerUnavailable as exc:
        return fail(str(exc), 2)
    except AttuneError as exc:
        return fail(str(exc), 2)
    except KeyboardInterrupt:
        return 130
