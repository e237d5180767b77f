"""Errors the core raises for bad input, each able to name the file and line.

Every message a user sees for bad input goes through these classes so that the
CLI and the TUI can print one clear line (``file:line:col: message``) instead of
a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class AttuneError(Exception):
    """Base class of every error the core reports to users."""


@dataclass
class InputError(AttuneError):
    """Malformed input: a manifest, compose file, Dockerfile or pack path.

    ``line`` and ``col`` are 1-based; ``None`` when the parser could not say.
    """

    message: str
    file: Path | None = None
    line: int | None = None
    col: int | None = None

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
                if self.col is not None:
                    where += f":{self.col}"
            where += ": "
        return f"{where}{self.message}"


class WorkspaceNotFound(AttuneError):
    """The path given is not a Cargo workspace with a compose file."""


class DockerUnavailable(AttuneError):
    """No Docker daemon answers; the message says what to do about it."""
