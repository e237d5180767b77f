"""``attune-console [WORKSPACE]``: run the Textual console on a workspace."""

from __future__ import annotations

import argparse

from attune_console.commands._common import resolve_workspace


def run(args: argparse.Namespace) -> int:
    root = resolve_workspace(args.workspace)
    if root is None:
        return 2
    from attune_console.tui.app import AttuneConsoleApp

    AttuneConsoleApp(root).run()
    return 0
