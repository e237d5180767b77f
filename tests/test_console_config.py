"""Unit tests of the console's config file loading (keys, limits, after-refresh)."""

from __future__ import annotations

from pathlib import Path

import pytest

from attune_console.core.console_config import ACTIONS, ConsoleConfig, load_config
from attune_console.core.errors import InputError


def test_defaults_when_no_files(tmp_path: Path) -> None:
    cfg = load_config(tmp_path, user_path=tmp_path / "missing.toml")
    assert cfg == ConsoleConfig()
    assert cfg.key_for("build") == "b"
    assert cfg.after_refresh == "restart"
    assert len({a.id for a in ACTIONS}) == len(ACTIONS)


def test_workspace_file_overrides_user_file(tmp_path: Path) -> None:
    user = tmp_path / "user.toml"
    user.write_text('[keys]\nbuild = "f5"\n[limits]\nparallel_builds = 3\n[ui]\ntheme = "nord"\n')
    (tmp_path / "attune-console.toml").write_text(
        '[limits]\nparallel_builds = 4\nlog_lines = 5000\n[packs]\nafter_refresh = "hup"\n'
        "[watch]\nenabled = true\nauto_rebuild = true\ndebounce_ms = 300\n"
    )
    cfg = load_config(tmp_path, user_path=user)
    assert cfg.key_for("build") == "f5"
    assert cfg.parallel_builds == 4
    assert cfg.log_lines == 5000
    assert cfg.after_refresh == "hup"
    assert cfg.watch and cfg.auto_rebuild and cfg.debounce_ms == 300
    assert cfg.theme == "nord"
    assert cfg.sources == (user, tmp_path / "attune-console.toml")


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ('[keys]\nbuild = "b"\nbiuld = "x"\n', 3, "unknown action 'biuld'"),
        ("[limits]\nparallel_builds = 0\n", 2, "parallel_builds must be an integer"),
        ('[packs]\nafter_refresh = "reboot"\n', 2, "after_refresh must be one of"),
        ("[colours]\n", 1, "unknown section [colours]"),
        ('[watch]\nenabled = "yes"\n', 2, "enabled must be true or false"),
        ('[keys]\nbuild = "b b"\n', 2, "must be a Textual key name"),
    ],
)
def test_bad_values_name_file_and_line(tmp_path: Path, body: str, line: int, words: str) -> None:
    path = tmp_path / "attune-console.toml"
    path.write_text(body)
    with pytest.raises(InputError) as info:
        load_config(tmp_path, user_path=tmp_path / "none.toml")
    assert info.value.file == path
    assert info.value.line == line
    assert words in str(info.value)


def test_malformed_toml_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "attune-console.toml"
    path.write_text("[limits]\nlog_lines = \n")
    with pytest.raises(InputError) as info:
        load_config(tmp_path, user_path=tmp_path / "none.toml")
    assert (info.value.file, info.value.line) == (path, 2)
    assert info.value.col is not None
    assert str(info.value).startswith(f"{path}:2:")


def test_duplicate_binding_is_refused(tmp_path: Path) -> None:
    (tmp_path / "attune-console.toml").write_text('[keys]\nrestart = "b"\n')
    with pytest.raises(InputError, match="bound to more than one action"):
        load_config(tmp_path, user_path=tmp_path / "none.toml")
