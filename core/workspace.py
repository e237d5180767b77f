"""Locating a workspace on disk: a Cargo workspace with a compose file beside it.

This is deliberately small: it only answers "is this a workspace, and if not,
what exactly is missing", so every entry point (CLI, TUI) can fail with one
clear line before loading anything.
"""

from __future__ import annotations

from pathlib import Path

from attune_console.core.errors import WorkspaceNotFound

COMPOSE_FILE_NAMES: tuple[str, ...] = (
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
)


def find_compose_file(root: Path) -> Path | None:
    """Return the compose file compose itself would pick in ``root``, if any."""
    for name in COMPOSE_FILE_NAMES:
        candidate = root / name
        if candidate.is_file():
            return candidate
    return None


def locate_workspace(path: str | Path) -> Path:
    """Resolve ``path`` to a workspace root or raise :class:`WorkspaceNotFound`.

    The message names what is missing so the user knows what to fix.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise WorkspaceNotFound(f"{root}: no such directory")
    if not root.is_dir():
        raise WorkspaceNotFound(f"{root}: not a directory")
    root = root.resolve()
    missing = []
    if not (root / "Cargo.toml").is_file():
        missing.append("Cargo.toml")
    if find_compose_file(root) is None:
        missing.append("a compose file (" + " / ".join(COMPOSE_FILE_NAMES) + ")")
    if missing:
        raise WorkspaceNotFound(f"{root}: not an attune workspace: missing " + " and ".join(missing))
    return root
