"""Watch a workspace for edits: debounced, coalesced, and blind to what cannot matter.

``watchfiles.awatch`` reports raw file events; this module turns them into
:class:`ChangeBatch` objects, one per burst of edits. A save storm (a branch
switch, ``cargo fmt`` over the tree, 1,000 files written at once) is one batch,
because changes are accumulated while the consumer works and handed over only
after ``debounce_ms`` of quiet. The consumer (the console core) runs the impact
analysis once per batch instead of once per file.

Ignored: ``.git/``, any ``target/`` directory (cargo output), editor droppings,
and whatever ``.dockerignore`` excludes (it cannot enter an image, so it
cannot invalidate a layer) -- except under ``packs/``: packs are often
dockerignored precisely because they ship through the volume, and a pack edit
must still mark the packs volume out of sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from docker.utils.build import PatternMatcher

ALWAYS_IGNORED_DIRS = frozenset(
    {".git", "target", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
)
IGNORED_SUFFIXES = (".swp", ".swx", "~", ".tmp")


@dataclass(frozen=True)
class ChangeBatch:
    """Paths (absolute) that changed in one burst, and when the burst was handed over."""

    paths: frozenset[Path]
    at: float = field(default_factory=time.monotonic)

    def relative(self, root: Path) -> list[str]:
        """Workspace-relative POSIX paths, sorted (what impact analysis takes)."""
        out = []
        for p in self.paths:
            try:
                out.append(p.relative_to(root).as_posix())
            except ValueError:
                continue
        return sorted(out)


def read_dockerignore(root: Path) -> list[str]:
    """The patterns of ``root/.dockerignore`` (comments and blanks removed)."""
    path = root / ".dockerignore"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


class PathFilter:
    """Decides whether a path can matter to a build or to the packs volume."""

    def __init__(self, root: Path, keep_dirs: Iterable[str] = ("packs",)) -> None:
        self.root = root
        self.keep_dirs = tuple(keep_dirs)
        self.reload()

    def reload(self) -> None:
        """Re-read ``.dockerignore`` (called when it changes)."""
        patterns = read_dockerignore(self.root)
        self._matcher = PatternMatcher(patterns) if patterns else None

    def __call__(self, path: Path | str) -> bool:
        p = Path(path)
        try:
            rel = p.relative_to(self.root)
        except ValueError:
            return False
        parts = rel.parts
        if not parts:
            return False
        if any(part in ALWAYS_IGNORED_DIRS for part in parts):
            return False
        name = parts[-1]
        if name.endswith(IGNORED_SUFFIXES) or name.startswith(".#"):
            return False
        if rel.as_posix() == ".dockerignore":
            return True
        if parts[0] in self.keep_dirs:
            return True
        return not (self._matcher is not None and self._matcher.matches(rel.as_posix()))


class WorkspaceWatcher:
    """Async source of :class:`ChangeBatch` for one workspace.

    Iterate :meth:`batches`; stop with :meth:`stop` (or by cancelling the task).
    """

    def __init__(self, root: Path, *, debounce_ms: int = 200, keep_dirs: Iterable[str] = ("packs",)) -> None:
        self.root = root.resolve()
        self.debounce = debounce_ms / 1000
        self.filter = PathFilter(self.root, keep_dirs)
        self._stop = asyncio.Event()
        self._pending: set[Path] = set()
        self._arrived = asyncio.Event()
        self._last_change = 0.0
        self.raw_events = 0

    def stop(self) -> None:
        """Ask :meth:`batches` to finish after the current batch."""
        self._stop.set()
        self._arrived.set()

    async def _collect(self, ready: asyncio.Event) -> None:
        import watchfiles

        def accept(_change: watchfiles.Change, path: str) -> bool:
            return self.filter(path)

        ready.set()
        async for changes in watchfiles.awatch(
            self.root,
            watch_filter=accept,
            debounce=max(50, int(self.debounce * 1000)),
            step=min(50, max(10, int(self.debounce * 1000))),
            stop_event=self._stop,
            recursive=True,
            rust_timeout=500,
            yield_on_timeout=False,
        ):
            self.raw_events += len(changes)
            for _change, path in changes:
                p = Path(path)
                if p.name == ".dockerignore":
                    self.filter.reload()
                self._pending.add(p)
            self._last_change = time.monotonic()
            self._arrived.set()

    async def batches(self) -> AsyncIterator[ChangeBatch]:
        """Yield one batch per burst of changes, after ``debounce_ms`` of quiet."""
        ready = asyncio.Event()
        collector = asyncio.create_task(self._collect(ready))
        collector.add_done_callback(lambda _t: self._arrived.set())
        try:
            await ready.wait()
            while not self._stop.is_set():
                await self._arrived.wait()
                if self._stop.is_set():
                    break
                # Quiet period: keep accumulating until nothing arrived for `debounce`.
                while True:
                    wait = self._last_change + self.debounce - time.monotonic()
                    if wait <= 0:
                        break
                    await asyncio.sleep(wait)
                self._arrived.clear()
                if collector.done() and not self._pending:
                    collector.result()  # re-raise a watcher failure
                    break
                if not self._pending:
                    continue
                batch = ChangeBatch(frozenset(self._pending))
                self._pending = set()
                yield batch
        finally:
            self._stop.set()
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await collector
