""".dockerignore through the docker SDK's matcher: our per-path answers agree with its own walk."""

from __future__ import annotations

from pathlib import Path

from docker.utils.build import exclude_paths

from attune_console.core.dockerignore import DockerIgnore, read_patterns

PATTERNS = "# comment\n\ntarget/\n**/*.md\n!crates/keep/README.md\npacks\n*.tmp\n"
TREE = [
    "Cargo.toml",
    "README.md",
    "notes.tmp",
    "target/release/app",
    "crates/api/src/main.rs",
    "crates/api/README.md",
    "crates/api/target/x",
    "crates/keep/README.md",
    "packs/core/pack.yaml",
    "sub/notes.tmp",
]


def _tree(tmp_path: Path) -> Path:
    for rel in TREE:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    (tmp_path / ".dockerignore").write_text(PATTERNS)
    return tmp_path


def test_read_patterns_drops_comments_and_blanks(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    assert read_patterns(root) == ["target/", "**/*.md", "!crates/keep/README.md", "packs", "*.tmp"]
    assert read_patterns(tmp_path / "none") == []


def test_excluded_agrees_with_docker_sdk_walk(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    ig = DockerIgnore.load(root)
    # the SDK's own walk (the Dockerfile re-include it adds is irrelevant: no file of that name)
    included = exclude_paths(str(root), read_patterns(root), dockerfile="no-such-Dockerfile")
    for rel in TREE:
        assert ig.excluded(rel) == (rel not in included), rel
    assert ig.excluded("README.md")
    assert ig.excluded("crates/api/README.md")
    assert not ig.excluded("crates/keep/README.md")
    assert ig.excluded("packs/core/pack.yaml")
    assert not ig.excluded("crates/api/src/main.rs")
    assert ig.excluded("notes.tmp") and not ig.excluded("sub/notes.tmp")


def test_pruning_respects_negations(tmp_path: Path) -> None:
    ig = DockerIgnore(tmp_path, ["crates", "!crates/keep"])
    assert ig.may_include_below("crates")
    ig2 = DockerIgnore(tmp_path, ["target"])
    assert not ig2.may_include_below("target")
    assert ig2.may_include_below("src")


def test_no_file_excludes_nothing(tmp_path: Path) -> None:
    ig = DockerIgnore.load(tmp_path)
    assert not ig.excluded("anything/at/all.md")
