"""Helpers shared by the subcommands: workspace resolution and error printing."""

from __future__ import annotations

import sys
from pathlib import Path

from attune_console.core.errors import AttuneError
from attune_console.core.workspace import locate_workspace


def fail(message: str, code: int = 2) -> int:
    """Print one line to stderr, prefixed with the program name, and return ``code``."""
    print(f"attune-console: {message}", file=sys.stderr)
    return code


def resolve_workspace(path: str) -> Path | None:
    """The workspace root, or ``None`` after printing why ``path`` is not one."""
    try:
        return locate_workspace(path)
    except AttuneError as exc:
        fail(str(exc))
        return None


def not_built(name: str) -> int:
    """A subcommand that does not exist yet says so and exits 2; it never pretends."""
    return fail(f"'{name}' is not built yet in this version", 2)
