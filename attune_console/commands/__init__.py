"""Subcommand bodies. Each ``run(args) -> int`` returns the process exit code.

Exit codes: 0 success, 1 findings or a failed build, 2 bad usage / unreadable
workspace / not built yet, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable


def _lazy(module: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        mod = importlib.import_module(f"attune_console.commands.{module}")
        result: int = mod.run(args)
        return result

    return run


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "tui": _lazy("tui"),
    "check": _lazy("check"),
    "impact": _lazy("impact"),
    "build": _lazy("build"),
    "packs": _lazy("packs"),
}
