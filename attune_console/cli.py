"""Command-line entry point: ``attune-console [WORKSPACE]`` and its subcommands.

The parser lives here; each subcommand's body lives in ``attune_console.commands``
so the modules stay small and the TUI (and Textual) is only imported when the
TUI is what the user asked for.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from attune_console import __version__

SUBCOMMANDS = ("check", "impact", "build", "packs", "tui")

EPILOG = """\
subcommands:
  check [WORKSPACE] [--json]              lint Dockerfiles and compose against the Cargo workspace
  impact PATH... [-w WORKSPACE] [--json]  which services a change rebuilds, at which step, and why
  build SERVICE... [-w WORKSPACE]         build services through BuildKit with live step status
  packs {status,refresh,build-binaries}   compare, refresh or rebuild the packs volume
Run 'attune-console SUBCOMMAND --help' for the options of one subcommand.
"""


def _workspace_opt(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-w",
        "--workspace",
        default=".",
        metavar="WORKSPACE",
        help="workspace root (default: the current directory)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The full parser; kept separate from ``main`` so tests can inspect it."""
    parser = argparse.ArgumentParser(
        prog="attune-console",
        description="Keyboard-driven build console for Docker-based Rust workspaces.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"attune-console {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("tui", help="run the console (the default)")
    p.add_argument("workspace", nargs="?", default=".", help="workspace root (default: .)")

    p = sub.add_parser("check", help="lint the workspace's Dockerfiles and compose file")
    p.add_argument("workspace", nargs="?", default=".", help="workspace root (default: .)")
    p.add_argument("--json", action="store_true", help="print findings as JSON")

    p = sub.add_parser("impact", help="predict which services a change rebuilds and why")
    p.add_argument("paths", nargs="+", metavar="PATH", help="changed files (workspace-relative or absolute)")
    _workspace_opt(p)
    p.add_argument("--json", action="store_true", help="print the impact as JSON")

    p = sub.add_parser("build", help="build services with live BuildKit progress")
    p.add_argument("services", nargs="*", metavar="SERVICE", help="compose services to build")
    _workspace_opt(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--plain", action="store_true", help="one line per step transition (default)")
    mode.add_argument("--json", action="store_true", help="JSON lines events and a summary per service")
    p.add_argument("--no-cache", action="store_true", help="do not use the build cache")
    p.add_argument("--pack-binaries", action="store_true", help="also build the pack binaries image")

    p = sub.add_parser("packs", help="packs volume: status, refresh, build pack binaries")
    p.add_argument("action", choices=("status", "refresh", "build-binaries"))
    _workspace_opt(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    after = p.add_mutually_exclusive_group()
    after.add_argument("--restart", action="store_true", help="restart services that mount the volume")
    after.add_argument("--hup", action="store_true", help="send SIGHUP to services that mount the volume")
    return parser


def _normalise_argv(argv: list[str]) -> list[str]:
    """Let ``attune-console [WORKSPACE]`` mean ``attune-console tui [WORKSPACE]``."""
    if not argv:
        return ["tui"]
    first = argv[0]
    if first in SUBCOMMANDS or first.startswith("-"):
        return argv
    return ["tui", *argv]


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(_normalise_argv(args_list))

    # Imported lazily: 'check' must not pay for importing Textual, and the TUI
    # must not pay for the docker SDK before it has drawn its first frame.
    from attune_console import commands

    handler = commands.HANDLERS[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
