"""Build history: one sqlite row per finished build, in the user's state directory.

Where: ``$ATTUNE_CONSOLE_STATE_DIR/history.sqlite3`` when that variable is set (tests, CI), else
``platformdirs.user_state_path("attune-console")`` (``~/.local/state/attune-console/`` on Linux).

What: service, workspace (the build context), start, duration, cached/total steps, result, first missed
step, failing step and exit code, image id, and the impact fingerprint of a successful build (so the
next prediction can compare against what actually entered the last good build). The TUI shows it and
the benches read it. Each call opens its own short-lived connection, so any thread may use it; WAL mode
keeps concurrent writers (two consoles, parallel builds) from failing.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from attune_console.core.progress import BuildRun

__all__ = ["BuildRecord", "History", "default_history_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace TEXT,
    service TEXT NOT NULL,
    image TEXT,
    started REAL NOT NULL,
    duration_s REAL,
    cached INTEGER NOT NULL,
    total INTEGER NOT NULL,
    result TEXT NOT NULL,
    first_missed_step TEXT,
    error_step TEXT,
    exit_code INTEGER,
    image_id TEXT,
    fingerprint TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS builds_service ON builds (service, started);
"""

_COLUMNS = (
    "id, workspace, service, image, started, duration_s, cached, total, result, first_missed_step, "
    "error_step, exit_code, image_id, fingerprint, error"
)


def default_history_path() -> Path:
    """The history database path (honours ``ATTUNE_CONSOLE_STATE_DIR``)."""
    override = os.environ.get("ATTUNE_CONSOLE_STATE_DIR")
    base = Path(override) if override else platformdirs.user_state_path("attune-console")
    return base / "history.sqlite3"


@dataclass(frozen=True)
class BuildRecord:
    id: int
    workspace: str | None
    service: str
    image: str | None
    started: float
    duration_s: float | None
    cached: int
    total: int
    result: str
    first_missed_step: str | None
    error_step: str | None
    exit_code: int | None
    image_id: str | None
    fingerprint: str | None
    error: str | None


class History:
    """The build history database (created on first use)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_history_path()
        self._ready = False

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=10)) as conn:
            if not self._ready:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
                self._ready = True
            with conn:
                yield conn

    def record(self, run: BuildRun, fingerprint: str | None = None, workspace: str | None = None) -> int:
        """Store a finished run; returns its row id."""
        missed = run.first_missed_step
        with self._connect() as conn:
            cur = conn.execute(
                "INSERT INTO builds (workspace, service, image, started, duration_s, cached, total, result, "
                "first_missed_step, error_step, exit_code, image_id, fingerprint, error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    workspace,
                    run.service,
                    run.image,
                    run.started if run.started is not None else run.created,
                    run.duration,
                    run.cached,
                    run.total,
                    run.state.value,
                    missed.name if missed else None,
                    run.error_step.name if run.error_step else None,
                    run.exit_code,
                    run.image_id,
                    fingerprint,
                    run.error,
                ),
            )
            return int(cur.lastrowid or 0)

    def recent(
        self, service: str | None = None, limit: int = 50, workspace: str | None = None
    ) -> list[BuildRecord]:
        """Newest first; optionally for one service and/or workspace."""
        where, params = _filters(service, workspace)
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM builds{where} ORDER BY started DESC, id DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [BuildRecord(*row) for row in rows]

    def last_success(self, service: str, workspace: str | None = None) -> BuildRecord | None:
        """The newest ``done`` build of ``service`` (with its fingerprint), if any."""
        where, params = _filters(service, workspace)
        with self._connect() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM builds{where} AND result = 'done' "
                "ORDER BY started DESC, id DESC LIMIT 1",
                params,
            ).fetchone()
        return BuildRecord(*row) if row else None


def _filters(service: str | None, workspace: str | None) -> tuple[str, tuple[str, ...]]:
    clauses = ["1=1"]
    params: list[str] = []
    if service is not None:
        clauses.append("service = ?")
        params.append(service)
    if workspace is not None:
        clauses.append("workspace = ?")
        params.append(workspace)
    return " WHERE " + " AND ".join(clauses), tuple(params)
