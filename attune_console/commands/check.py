"""`attune-console check`: not built yet."""

from __future__ import annotations

import argparse

from attune_console.commands._common import not_built, resolve_workspace


def run(args: argparse.Namespace) -> int:
    if resolve_workspace(getattr(args, "workspace", ".")) is None:
        return 2
    return not_built("check")
