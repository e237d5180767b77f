"""core/ must stay UI-free: importing any core module never pulls in Textual or Rich.

import-linter checks the static imports; this checks what really happens at import
time (a lazy import inside a function would slip past a static check only if it ran).
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import attune_console.core as core


def _core_modules() -> list[str]:
    return sorted(
        m.name
        for m in pkgutil.walk_packages(core.__path__, prefix="attune_console.core.")
        if not m.name.endswith("_pb2")
    )


def test_core_has_modules() -> None:
    assert "attune_console.core.errors" in _core_modules()


def test_core_imports_no_ui() -> None:
    modules = _core_modules()
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'textual', 'rich'}"
        " or m.startswith('attune_console.tui'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core pulled in UI modules: {out.stdout.strip()}"


def test_cli_check_path_does_not_import_textual() -> None:
    code = (
        "import sys\n"
        "from attune_console.cli import main\n"
        "rc = main(['check', '/nonexistent-attune-ws'])\n"
        "print(rc, 'textual' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2", "False"]
