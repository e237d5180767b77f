"""The console's settings: key bindings, limits and what a packs refresh does after.

Read from two TOML files, the second overriding the first:

* ``~/.config/attune-console/config.toml`` (the user's taste: keys, theme);
* ``<workspace>/attune-console.toml`` (the project's needs: parallel builds,
  after-refresh action).

Every action the console offers is listed once here, in :data:`ACTIONS`, with
its id, default key and description; the TUI builds its bindings, footer, help
screen and command palette from this table, so a rebind in the config file
reaches all of them. Bad values name the file and line (:class:`InputError`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from attune_console.core.errors import InputError

USER_CONFIG_NAME = "config.toml"
WORKSPACE_CONFIG_NAME = "attune-console.toml"
AFTER_REFRESH_CHOICES = ("none", "hup", "restart")


@dataclass(frozen=True)
class ActionSpec:
    """One user action: stable id (used in config files), default key, words for help."""

    id: str
    key: str
    description: str
    show: bool = True  # shown in the footer (help and palette list every action)
    label: str = ""  # short footer label; the description when empty


#: Every action, in the order the help screen lists them.
ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("build", "b", "Build the selected service", label="Build"),
    ActionSpec("build-stale", "B", "Build every stale service (parallel limit)", label="Build stale"),
    ActionSpec(
        "build-no-cache", "ctrl+b", "Rebuild the selected service with --no-cache (asks first)", False
    ),
    ActionSpec("pack-binaries", "P", "Rebuild the pack binaries and refresh the packs volume", False),
    ActionSpec(
        "refresh-packs",
        "p",
        "Refresh the packs volume (no image rebuild), then HUP/restart",
        label="Refresh packs",
    ),
    ActionSpec("restart", "r", "Restart the selected service", label="Restart"),
    ActionSpec("recreate", "u", "Recreate the selected service with its new image", False),
    ActionSpec("up", "U", "Start the whole stack (init-packs first)", False),
    ActionSpec("focus-logs", "l", "Focus the log pane (again: switch tab)", False),
    ActionSpec("cancel", "c", "Cancel the selected service's build", label="Cancel"),
    ActionSpec("cancel-all", "C", "Cancel every running build", False),
    ActionSpec("watch", "w", "Toggle watch mode (mark services stale on change)", label="Watch"),
    ActionSpec("auto-rebuild", "a", "Toggle auto-rebuild of stale services in watch mode", False),
    ActionSpec("search", "slash", "Search the log (n / N: next / previous match)", label="Search"),
    ActionSpec("search-next", "n", "Next search match", False),
    ActionSpec("search-prev", "N", "Previous search match", False),
    ActionSpec("filter", "f", "Filter the log to matching lines", False),
    ActionSpec("follow", "F", "Toggle log follow mode", False),
    ActionSpec("clear-log", "x", "Clear the log pane", False),
    ActionSpec("save-log", "s", "Save the log pane to a file", False),
    ActionSpec("log-scope", "t", "Log: selected step/service or everything", False),
    ActionSpec("help", "question_mark", "Show every key", label="Help"),
    ActionSpec("quit", "q", "Quit (asks while builds run, then cancels them)", label="Quit"),
)
ACTION_IDS = frozenset(a.id for a in ACTIONS)

_KEY_RE = re.compile(r"^[A-Za-z0-9_+\-]+(,[A-Za-z0-9_+\-]+)*$")


@dataclass(frozen=True)
class ConsoleConfig:
    """Everything configurable, with defaults that suit a 2-core laptop."""

    keys: Mapping[str, str] = field(default_factory=lambda: {a.id: a.key for a in ACTIONS})
    log_lines: int = 100_000
    parallel_builds: int = 2
    after_refresh: str = "restart"
    watch: bool = False
    auto_rebuild: bool = False
    debounce_ms: int = 200
    theme: str | None = None
    sources: tuple[Path, ...] = ()

    def key_for(self, action_id: str) -> str:
        """The key (Textual key name, comma-separated alternatives) bound to ``action_id``."""
        return self.keys[action_id]


def _line_of(text: str, needle: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if re.match(rf"^\s*\"?{re.escape(needle)}\"?\s*=", line) or line.strip() == f"[{needle}]":
            return number
    return None


def _parse_error_position(exc: tomllib.TOMLDecodeError) -> tuple[int | None, int | None]:
    lineno = getattr(exc, "lineno", None)
    colno = getattr(exc, "colno", None)
    if lineno is None:
        m = re.search(r"at line (\d+), column (\d+)", str(exc))
        if m:
            lineno, colno = int(m.group(1)), int(m.group(2))
    return lineno, colno


def _expect(cond: bool, message: str, path: Path, text: str, key: str) -> None:
    if not cond:
        raise InputError(message, path, _line_of(text, key))


def _apply(config: ConsoleConfig, data: Mapping[str, Any], path: Path, text: str) -> ConsoleConfig:
    known = {"keys", "limits", "packs", "watch", "ui"}
    for section in data:
        _expect(
            section in known,
            f"unknown section [{section}] (expected one of: {', '.join(sorted(known))})",
            path,
            text,
            section,
        )
    changes: dict[str, Any] = {}

    keys = dict(config.keys)
    for action, key in dict(data.get("keys", {})).items():
        _expect(
            action in ACTION_IDS,
            f"unknown action '{action}' in [keys] (known: {', '.join(sorted(ACTION_IDS))})",
            path,
            text,
            action,
        )
        _expect(
            isinstance(key, str) and bool(_KEY_RE.match(key)),
            f'key for \'{action}\' must be a Textual key name such as "b", "ctrl+b" or "f5,b"',
            path,
            text,
            action,
        )
        keys[action] = key
    changes["keys"] = keys

    def integer(section: str, name: str, low: int, high: int) -> None:
        value = data.get(section, {}).get(name)
        if value is None:
            return
        _expect(
            isinstance(value, int) and not isinstance(value, bool) and low <= value <= high,
            f"[{section}] {name} must be an integer from {low} to {high}",
            path,
            text,
            name,
        )
        changes[name] = value

    def boolean(section: str, name: str, attr: str) -> None:
        value = data.get(section, {}).get(name)
        if value is None:
            return
        _expect(isinstance(value, bool), f"[{section}] {name} must be true or false", path, text, name)
        changes[attr] = value

    for section, allowed in (
        ("limits", {"log_lines", "parallel_builds"}),
        ("packs", {"after_refresh"}),
        ("watch", {"enabled", "auto_rebuild", "debounce_ms"}),
        ("ui", {"theme"}),
    ):
        for name in dict(data.get(section, {})):
            _expect(
                name in allowed,
                f"unknown setting '{name}' in [{section}] (known: {', '.join(sorted(allowed))})",
                path,
                text,
                name,
            )
    integer("limits", "log_lines", 1_000, 10_000_000)
    integer("limits", "parallel_builds", 1, 64)
    integer("watch", "debounce_ms", 10, 10_000)
    boolean("watch", "enabled", "watch")
    boolean("watch", "auto_rebuild", "auto_rebuild")
    after = data.get("packs", {}).get("after_refresh")
    if after is not None:
        _expect(
            after in AFTER_REFRESH_CHOICES,
            f"[packs] after_refresh must be one of {', '.join(AFTER_REFRESH_CHOICES)}",
            path,
            text,
            "after_refresh",
        )
        changes["after_refresh"] = after
    theme = data.get("ui", {}).get("theme")
    if theme is not None:
        _expect(isinstance(theme, str), "[ui] theme must be a string", path, text, "theme")
        changes["theme"] = theme
    changes["sources"] = (*config.sources, path)
    return replace(config, **changes)


def load_file(config: ConsoleConfig, path: Path) -> ConsoleConfig:
    """``config`` overridden by the TOML file at ``path`` (unchanged when it does not exist)."""
    if not path.is_file():
        return config
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read config: {exc}", path) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, col = _parse_error_position(exc)
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise InputError(message, path, line, col) from exc
    return _apply(config, data, path, text)


def user_config_path() -> Path:
    """``~/.config/attune-console/config.toml`` (or the platform's equivalent)."""
    import platformdirs

    return Path(platformdirs.user_config_dir("attune-console")) / USER_CONFIG_NAME


def load_config(workspace: Path | None = None, user_path: Path | None = None) -> ConsoleConfig:
    """Defaults, then the user's file, then the workspace's file."""
    config = load_file(ConsoleConfig(), user_path if user_path is not None else user_config_path())
    if workspace is not None:
        config = load_file(config, workspace / WORKSPACE_CONFIG_NAME)
    duplicates = _duplicate_keys(config.keys)
    if duplicates:
        where = config.sources[-1] if config.sources else None
        raise InputError(f"key '{duplicates[0]}' is bound to more than one action: {duplicates[1]}", where)
    return config


def _duplicate_keys(keys: Mapping[str, str]) -> tuple[str, str] | None:
    seen: dict[str, str] = {}
    for action, spec in keys.items():
        for key in spec.split(","):
            if key in seen:
                return key, f"{seen[key]} and {action}"
            seen[key] = action
    return None
