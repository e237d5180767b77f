"""The CLI surface: help, workspace errors, and the default TUI command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from attune_console.cli import _normalise_argv, build_parser, main


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "attune_console", *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


def test_help_lists_every_subcommand() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    for name in ("check", "impact", "build", "packs"):
        assert name in out.stdout


@pytest.mark.parametrize("sub", ["check", "impact", "build", "packs"])
def test_subcommand_help(sub: str) -> None:
    out = run_cli(sub, "--help")
    assert out.returncode == 0
    assert out.stdout.startswith("usage: attune-console " + sub)


def test_default_command_is_tui() -> None:
    assert _normalise_argv([]) == ["tui"]
    assert _normalise_argv(["some/dir"]) == ["tui", "some/dir"]
    assert _normalise_argv(["check", "x"]) == ["check", "x"]
    args = build_parser().parse_args(_normalise_argv(["ws"]))
    assert args.command == "tui" and args.workspace == "ws"


def test_not_a_workspace_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "Cargo.toml").write_text("[workspace]\nmembers = []\n")
    out = run_cli("check", str(tmp_path))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "compose file" in lines[0] and "Traceback" not in out.stderr
    assert "Cargo.toml" not in lines[0].split("missing", 1)[1]


def test_missing_directory_for_tui(tmp_path: Path) -> None:
    rc = main([str(tmp_path / "nope")])
    assert rc == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["impact", "x", "-w", "{ws}"],
        ["packs", "status", "-w", "{ws}"],
        ["build", "api", "-w", "{ws}"],
    ],
)
def test_workspace_option_errors(tmp_path: Path, argv: list[str]) -> None:
    argv = [a.replace("{ws}", str(tmp_path)) for a in argv]
    out = run_cli(*argv)
    assert out.returncode == 2
    assert "missing Cargo.toml" in out.stderr and "Traceback" not in out.stderr
