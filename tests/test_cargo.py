"""Cargo workspace loading: members globs, exclude, bins, libs, path deps and workspace inheritance."""

from __future__ import annotations

from pathlib import Path

import pytest

from attune_console.core.cargo import load_cargo
from attune_console.core.errors import InputError


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_members_exclude_bins_deps(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "Cargo.toml": (
                '[workspace]\nmembers = ["crates/*", "tools/cli"]\nexclude = ["crates/old"]\n'
                'default-members = ["crates/a"]\n'
                '[workspace.dependencies]\nlib-b = { path = "crates/b" }\nserde = "1"\n'
            ),
            "Cargo.lock": "version = 4\n",
            "crates/a/Cargo.toml": (
                '[package]\nname = "a"\nversion = "0.1.0"\nautobins = true\n'
                '[[bin]]\nname = "a-main"\npath = "src/main.rs"\n'
                "[dependencies]\nlib-b = { workspace = true }\nserde = { workspace = true }\n"
                "[target.'cfg(unix)'.dependencies]\nc = { path = \"../c\" }\n"
                '[dev-dependencies]\ntools = { path = "../../tools/cli", package = "cli" }\n'
            ),
            "crates/a/src/main.rs": "",
            "crates/a/src/bin/extra.rs": "",
            "crates/a/src/bin/multi/main.rs": "",
            "crates/b/Cargo.toml": '[package]\nname = "lib-b"\nversion = "0.1.0"\n[lib]\npath = "src/b.rs"\n',
            "crates/c/Cargo.toml": '[package]\nname = "c"\nversion = "0.1.0"\n',
            "crates/c/src/lib.rs": "",
            "crates/old/Cargo.toml": "this is not toml",
            "tools/cli/Cargo.toml": '[package]\nname = "cli"\nversion = "0.1.0"\nautobins = false\n',
            "tools/cli/src/main.rs": "",
        },
    )
    ws = load_cargo(root)
    assert list(ws.members) == ["crates/a", "crates/b", "crates/c", "tools/cli"]
    a = ws.members["crates/a"]
    assert a.bins == ("a-main", "extra", "multi")
    assert a.target_files == ("src/main.rs", "src/bin/extra.rs", "src/bin/multi/main.rs")
    assert a.path_deps == ("crates/b", "crates/c")
    assert a.dev_path_deps == ("tools/cli",)
    assert ws.members["crates/b"].has_lib and ws.members["crates/b"].target_files == ("src/b.rs",)
    assert ws.members["tools/cli"].bins == ()
    assert ws.bin_owner("extra") is a
    assert ws.lock_version == 4
    assert ws.default_members == ("crates/a",)
    assert ws.closure("crates/a") == ["crates/a", "crates/b", "crates/c"]
    assert ws.problems == []


def test_member_without_manifest_is_a_problem(tmp_path: Path) -> None:
    root = _write(tmp_path, {"Cargo.toml": '[workspace]\nmembers = [\n  "crates/gone",\n]\n'})
    (root / "crates/gone").mkdir(parents=True)
    ws = load_cargo(root)
    assert [(p.kind, p.line) for p in ws.problems] == [("member-missing-manifest", 3)]


def test_not_a_workspace(tmp_path: Path) -> None:
    root = _write(tmp_path, {"Cargo.toml": '[package]\nname = "x"\n'})
    with pytest.raises(InputError, match=r"\[workspace\]"):
        load_cargo(root)


def test_malformed_member_toml(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {"Cargo.toml": '[workspace]\nmembers = ["a"]\n', "a/Cargo.toml": '[package]\nname = "a"\nx = [1,\n'},
    )
    with pytest.raises(InputError) as info:
        load_cargo(root)
    assert info.value.file == root / "a" / "Cargo.toml"
    assert info.value.line is not None and info.value.col is not None


def test_reuse_previous_members(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "Cargo.toml": '[workspace]\nmembers = ["a", "b"]\n',
            "a/Cargo.toml": '[package]\nname = "a"\n',
            "b/Cargo.toml": '[package]\nname = "b"\n',
        },
    )
    first = load_cargo(root)
    (root / "b/Cargo.toml").write_text('[package]\nname = "b2"\n')
    second = load_cargo(root, previous=first)
    assert second.members["a"] is first.members["a"]
    assert second.members["b"].name == "b2"


@pytest.mark.parametrize("members", ['"crates/*"', "[1]"])
def test_members_must_be_a_list_of_paths(tmp_path: Path, members: str) -> None:
    root = _write(tmp_path, {"Cargo.toml": f"[workspace]\nmembers = {members}\n"})
    with pytest.raises(InputError) as info:
        load_cargo(root)
    assert info.value.line == 2 and "list of paths" in info.value.message
