"""Tests of the workspace watcher: real file events on a tmp dir, no UI."""

from __future__ import annotations

import asyncio
from pathlib import Path

from attune_console.core.watcher import ChangeBatch, PathFilter, WorkspaceWatcher


def _tree(root: Path) -> None:
    (root / "crates" / "api" / "src").mkdir(parents=True)
    (root / "target" / "debug").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "packs" / "core").mkdir(parents=True)
    (root / ".dockerignore").write_text("# comment\n**/*.md\npacks\n")


def test_filter_excludes_target_git_dockerignored_but_keeps_packs(tmp_path: Path) -> None:
    _tree(tmp_path)
    f = PathFilter(tmp_path)
    assert f(tmp_path / "crates/api/src/main.rs")
    assert not f(tmp_path / "target/debug/attune-api")
    assert not f(tmp_path / "crates/api/target/x.o")
    assert not f(tmp_path / ".git/index")
    assert not f(tmp_path / "crates/api/README.md")  # dockerignored
    assert f(tmp_path / "packs/core/pack.yaml")  # dockerignored, but packs matter to the volume
    assert f(tmp_path / ".dockerignore")
    assert not f(tmp_path / "crates/api/src/.main.rs.swp")
    assert not f(Path("/elsewhere/file.rs"))
    (tmp_path / ".dockerignore").write_text("crates/api\n")
    f.reload()
    assert not f(tmp_path / "crates/api/src/main.rs")
    assert not f(tmp_path / "crates/api/README.md")  # inside an excluded directory
    assert f(tmp_path / "crates/common/README.md")  # *.md no longer excluded


def test_change_batch_relative_paths(tmp_path: Path) -> None:
    batch = ChangeBatch(frozenset({tmp_path / "b.rs", tmp_path / "a/c.rs", Path("/other/x")}))
    assert batch.relative(tmp_path) == ["a/c.rs", "b.rs"]


async def _first_batch(watcher: WorkspaceWatcher, action, timeout: float = 10.0) -> tuple[ChangeBatch, list]:  # type: ignore[no-untyped-def]
    batches: list[ChangeBatch] = []

    async def consume() -> None:
        async for batch in watcher.batches():
            batches.append(batch)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.4)  # let the OS watch be installed
    action()
    deadline = asyncio.get_running_loop().time() + timeout
    while not batches and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(watcher.debounce * 3)  # would a second batch follow?
    watcher.stop()
    await asyncio.wait_for(task, 5)
    assert batches, "no change batch arrived"
    return batches[0], batches


async def test_save_storm_is_one_batch_and_ignored_paths_are_absent(tmp_path: Path) -> None:
    _tree(tmp_path)
    watcher = WorkspaceWatcher(tmp_path, debounce_ms=300)

    def storm() -> None:
        for i in range(1000):
            (tmp_path / "crates" / "api" / "src" / f"m{i}.rs").write_text("fn x() {}\n")
        (tmp_path / "target" / "debug" / "junk").write_text("x")
        (tmp_path / ".git" / "HEAD").write_text("ref")
        (tmp_path / "crates" / "api" / "NOTES.md").write_text("x")
        (tmp_path / "packs" / "core" / "pack.yaml").write_text("name: core\n")

    batch, batches = await _first_batch(watcher, storm)
    rel = batch.relative(tmp_path)
    assert len(batches) == 1, [len(b.paths) for b in batches]
    assert len([p for p in rel if p.startswith("crates/api/src/m")]) == 1000
    assert "packs/core/pack.yaml" in rel
    assert not [p for p in rel if p.startswith(("target/", ".git/")) or p.endswith(".md")]


async def test_batches_stop_cleanly_without_changes(tmp_path: Path) -> None:
    watcher = WorkspaceWatcher(tmp_path, debounce_ms=50)

    async def consume() -> list[ChangeBatch]:
        return [b async for b in watcher.batches()]

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    watcher.stop()
    assert await asyncio.wait_for(task, 5) == []
