"""The build context tar: GNU format, deterministic, .dockerignore applied, streamed in bounded chunks."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from attune_console.core.context import CHUNK, context_paths, iter_context_tar


def _tree(root: Path) -> None:
    (root / "crates/api/src").mkdir(parents=True)
    (root / "crates/api/src/main.rs").write_text("fn main() {}\n")
    (root / "crates/api/README.md").write_text("# api\n")
    (root / "target/release").mkdir(parents=True)
    (root / "target/release/big").write_bytes(b"x" * 100)
    (root / "docker").mkdir()
    (root / "docker/Dockerfile.optimized").write_text("FROM scratch\n")
    (root / "Cargo.toml").write_text("[workspace]\n")
    (root / "keep.md").write_text("kept by an exception\n")
    deep = root / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    (deep / "long-name-file.txt").write_text("long\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "run.sh", 0o755)
    os.symlink("crates/api/src/main.rs", root / "link.rs")
    (root / ".dockerignore").write_text(
        "# comment\n\ntarget\n**/*.md\n!keep.md\ndocker/Dockerfile.optimized\n.dockerignore\n"
    )


def _tar_bytes(root: Path, dockerfile: str = "docker/Dockerfile.optimized") -> bytes:
    return b"".join(iter_context_tar(root, dockerfile))


def test_dockerignore_applied_and_dockerfile_always_sent(tmp_path: Path) -> None:
    _tree(tmp_path)
    paths = context_paths(tmp_path, "docker/Dockerfile.optimized")
    assert "crates/api/src/main.rs" in paths
    assert "crates/api/README.md" not in paths
    assert not any(p.startswith("target") for p in paths)
    assert "keep.md" in paths
    assert "docker/Dockerfile.optimized" in paths  # excluded by .dockerignore, sent anyway
    assert ".dockerignore" in paths
    assert paths == sorted(paths)


def test_tar_is_gnu_format_readable_and_faithful(tmp_path: Path) -> None:
    _tree(tmp_path)
    data = _tar_bytes(tmp_path)
    assert len(data) % tarfile.RECORDSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = {m.name: m for m in tf.getmembers()}
        for m in members.values():
            assert m.pax_headers == {}
            assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")
        main = members["crates/api/src/main.rs"]
        f = tf.extractfile(main)
        assert f is not None and f.read() == b"fn main() {}\n"
        assert members["run.sh"].mode == 0o755
        assert members["link.rs"].issym() and members["link.rs"].linkname == "crates/api/src/main.rs"
        long_name = "d" * 60 + "/" + "e" * 60 + "/long-name-file.txt"
        assert long_name in members
        assert int(main.mtime) == int((tmp_path / "crates/api/src/main.rs").stat().st_mtime)
    # GNU long names are 'L' records; a PAX archive would contain 'x' headers instead.
    typeflags = {
        data[i + 156 : i + 157] for i in range(0, len(data) - 512, 512) if data[i + 257 : i + 262] == b"ustar"
    }
    assert b"L" in typeflags and b"x" not in typeflags and b"g" not in typeflags


def test_unchanged_tree_gives_identical_bytes_in_sorted_order(tmp_path: Path) -> None:
    _tree(tmp_path)
    first = _tar_bytes(tmp_path)
    assert _tar_bytes(tmp_path) == first
    # Creation order does not matter: a second tree built in another order is identical member-wise.
    other = tmp_path.parent / (tmp_path.name + "-b")
    other.mkdir()
    (other / "b.txt").write_text("b")
    (other / "a.txt").write_text("a")
    with tarfile.open(fileobj=io.BytesIO(_tar_bytes(other, "Dockerfile"))) as tf:
        names = [m.name for m in tf.getmembers()]
    assert names == ["a.txt", "b.txt"]


def test_big_file_streams_in_bounded_chunks(tmp_path: Path) -> None:
    big = tmp_path / "blob.bin"
    with open(big, "wb") as fh:
        fh.truncate(5 * CHUNK + 123)  # sparse: cheap to create
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    sizes = []
    total = 0
    for chunk in iter_context_tar(tmp_path):
        sizes.append(len(chunk))
        total += len(chunk)
    assert max(sizes) <= CHUNK
    assert total >= 5 * CHUNK + 123
    assert total % 512 == 0


def test_fifo_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    os.mkfifo(tmp_path / "pipe")
    with tarfile.open(fileobj=io.BytesIO(_tar_bytes(tmp_path, "Dockerfile"))) as tf:
        assert [m.name for m in tf.getmembers()] == ["Dockerfile"]


def test_extra_files_are_added_after_the_context(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("a")
    outside = tmp_path / "elsewhere.Dockerfile"
    outside.write_text("FROM scratch\n")
    data = b"".join(iter_context_tar(ctx, ".attune-dockerfile-x", {".attune-dockerfile-x": outside}))
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert tf.getnames() == ["a.txt", ".attune-dockerfile-x"]
        f = tf.extractfile(".attune-dockerfile-x")
        assert f is not None and f.read() == b"FROM scratch\n"
