"""Unit tests of the packs diff: local scan, refusals, plan, helper output parsing, staging tar."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from attune_console.core.errors import InputError
from attune_console.core.packs import (
    Entry,
    HashCache,
    ManifestStore,
    _limit,
    build_tar,
    diff,
    make_plan,
    normalise_paths,
    parse_status_output,
    scan_local,
    scan_paths,
    subset,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    packs = tmp_path / "packs"
    (packs / "core" / "actions").mkdir(parents=True)
    (packs / "core" / "sensors").mkdir()
    (packs / "core" / "actions" / "echo.yaml").write_bytes(b"name: echo\n")
    sensor = packs / "core" / "sensors" / "bin"
    sensor.write_bytes(b"\x7fELF")
    sensor.chmod(0o755)
    os.symlink("actions/echo.yaml", packs / "core" / "alias.yaml")
    return packs


def test_scan_records_kind_mode_size_and_hash(tree: Path) -> None:
    entries = scan_local(tree)
    mode = (tree / "core/actions/echo.yaml").stat().st_mode & 0o7777
    assert entries["core/actions/echo.yaml"] == Entry(
        "core/actions/echo.yaml", "f", mode, 11, sha(b"name: echo\n")
    )
    assert entries["core/sensors/bin"].mode == 0o755
    assert entries["core/alias.yaml"].kind == "l"
    assert entries["core/alias.yaml"].digest == sha(b"actions/echo.yaml")
    assert entries["core"].kind == "d"


def test_hash_cache_skips_unchanged_files_and_sees_changes(tree: Path) -> None:
    cache = HashCache()
    first = scan_local(tree, cache)
    f = tree / "core" / "actions" / "echo.yaml"
    f.write_bytes(b"name: echo2\n")
    second = scan_local(tree, cache)
    assert first["core/actions/echo.yaml"].digest != second["core/actions/echo.yaml"].digest
    assert second["core/actions/echo.yaml"].digest == sha(b"name: echo2\n")


def test_symlink_escaping_packs_is_refused_with_its_path(tree: Path) -> None:
    os.symlink("../../outside.txt", tree / "core" / "escape")
    with pytest.raises(InputError) as err:
        scan_local(tree)
    assert err.value.file == tree / "core" / "escape"
    assert "points outside ./packs" in str(err.value)


def test_absolute_symlink_is_refused(tree: Path) -> None:
    os.symlink("/etc/passwd", tree / "core" / "abs")
    with pytest.raises(InputError, match=r"outside \./packs"):
        scan_local(tree)


def test_name_with_newline_is_not_valid_in_the_volume(tree: Path) -> None:
    (tree / "core" / "bad\nname.yaml").write_text("x")
    with pytest.raises(InputError, match="not valid in the packs volume"):
        scan_local(tree)


def test_reserved_staging_name_is_refused(tree: Path) -> None:
    (tree / ".attune-txn-x").mkdir()
    with pytest.raises(InputError, match="reserved"):
        scan_local(tree)


def test_missing_packs_dir_names_it(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        scan_local(tmp_path / "packs")
    assert err.value.file == tmp_path / "packs"


def E(path: str, kind: str = "f", mode: int = 0o644, data: bytes = b"") -> Entry:
    if kind == "d":
        return Entry(path, "d", mode, 0, "")
    return Entry(path, kind, mode, len(data), sha(data))


def test_diff_per_pack_added_changed_removed_unchanged() -> None:
    local = {
        e.path: e
        for e in [E("core", "d"), E("core/a", data=b"1"), E("core/b", data=b"new"), E("core/n", data=b"n")]
    }
    remote = {
        e.path: e for e in [E("core", "d"), E("core/a", data=b"1"), E("core/b", data=b"old"), E("core/gone")]
    }
    (core,) = diff(local, remote)
    assert (core.added, core.changed, core.removed, core.unchanged) == (
        ["core/n"],
        ["core/b"],
        ["core/gone"],
        1,
    )
    assert core.state == "changed"


def test_mode_change_alone_is_a_change() -> None:
    local = {"p": E("p", "d"), "p/x": E("p/x", mode=0o755, data=b"x")}
    remote = {"p": E("p", "d"), "p/x": E("p/x", mode=0o644, data=b"x")}
    assert diff(local, remote)[0].changed == ["p/x"]
    assert make_plan(local, remote).put == ["p/x"]


def test_plan_swaps_whole_new_and_removed_packs() -> None:
    local = {e.path: e for e in [E("new", "d"), E("new/x", data=b"x"), E("keep", "d")]}
    remote = {e.path: e for e in [E("old", "d"), E("old/y", data=b"y"), E("keep", "d")]}
    plan = make_plan(local, remote)
    assert plan.new_packs == ["new"]
    assert plan.old_packs == ["old"]
    assert plan.put == [] and plan.remove == []
    states = {d.pack: d.state for d in diff(local, remote)}
    assert states == {"keep": "unchanged", "new": "new", "old": "removed"}


def test_plan_orders_directories_and_handles_type_changes() -> None:
    local = {
        e.path: e
        for e in [E("p", "d"), E("p/a", data=b"file now"), E("p/b", "d"), E("p/b/c", "d"), E("p/b/c/f")]
    }
    remote = {e.path: e for e in [E("p", "d"), E("p/a", "d"), E("p/a/x"), E("p/a/y", "d"), E("p/b")]}
    plan = make_plan(local, remote)
    assert plan.remove == ["p/a/x", "p/b"]  # the file b goes before directory b is made
    assert plan.rmdirs == ["p/a/y", "p/a"]  # deepest first
    assert plan.mkdirs == ["p/b", "p/b/c"]  # parents first
    assert plan.put == ["p/a", "p/b/c/f"]


def test_parse_status_output_reads_entries_and_signature() -> None:
    listing = b"d 755 4096 1.0 11\0core\0\0f 755 4 2.0 12\0core/bin\0\0l 777 7 3.0 13\0core/ln\0bin\0"
    hashes = sha(b"\x7fELF").encode() + b"  ./core/bin\0"
    entries, signature = parse_status_output(listing + b"END\0" + hashes)
    assert entries["core"].kind == "d"
    assert entries["core/bin"] == Entry("core/bin", "f", 0o755, 4, sha(b"\x7fELF"))
    assert entries["core/ln"].digest == sha(b"bin")
    assert signature == hashlib.sha256(listing).hexdigest()


def test_parse_status_output_refuses_a_cut_listing() -> None:
    from attune_console.core.packs import PacksError

    with pytest.raises(PacksError, match="cut short"):
        parse_status_output(b"f 644 1 1.0 1\0a\0\0")


def test_local_scan_and_remote_listing_agree_on_the_same_tree(tree: Path) -> None:
    """The parser applied to what GNU find prints for ``tree`` yields the scan's entries."""
    local = scan_local(tree)
    listing = b""
    hashes = b""
    for path, e in sorted(local.items()):
        link = os.readlink(tree / path).encode() if e.kind == "l" else b""
        listing += (
            f"{e.kind} {e.mode:o} {e.size} 0.0 1".encode() + b"\0" + path.encode() + b"\0" + link + b"\0"
        )
        if e.kind == "f":
            hashes += e.digest.encode() + b"  ./" + path.encode() + b"\0"
    remote, _ = parse_status_output(listing + b"END\0" + hashes)
    assert all(d.state == "unchanged" for d in diff(local, remote))
    assert make_plan(local, remote).empty


def test_staging_tar_keeps_modes_and_lists_operations(tree: Path) -> None:
    local = scan_local(tree)
    remote = {"core": local["core"], "core/actions": local["core/actions"], "core/gone": E("core/gone")}
    plan = make_plan(local, remote)
    buf = io.BytesIO()
    build_tar("t1", plan, tree, local, remote, buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        names = {m.name: m for m in tar.getmembers()}
        root = ".attune-txn-t1"
        assert names[f"{root}/new/core/sensors/bin"].mode == 0o755
        assert names[f"{root}/new/core/alias.yaml"].issym()
        assert names[f"{root}/new/core/alias.yaml"].linkname == "actions/echo.yaml"

        def read(name: str) -> bytes:
            f = tar.extractfile(f"{root}/lists/{name}")
            assert f is not None
            return f.read()

        # files renamed into place one directory at a time: dirs, then NUL-separated names per dir
        dirs = read("pdirs").decode().splitlines()
        put = [f"{d}/{n}" for i, d in enumerate(dirs, 1) for n in read(f"p.{i}").decode().split("\0") if n]
        assert put == plan.put
        assert read("remove0") == b"core/gone\0"
        assert read("bdirs") == b"core\n" and read("b.1") == b"gone\0"  # backed up before removal
        assert read("putnew0").decode().split("\0")[:-1] == plan.put  # none existed: rollback deletes them
        assert f"{root}/old/core" in names  # backup skeleton for the removed file


def test_scan_paths_takes_the_subtree_and_parents_only(tree: Path) -> None:
    (tree / "other").mkdir()
    (tree / "other" / "big").write_bytes(b"x" * 10)
    part = scan_paths(tree, ["core/actions/echo.yaml", "core/gone.yaml"])
    assert sorted(part) == ["core", "core/actions", "core/actions/echo.yaml"]
    assert part == {p: e for p, e in scan_local(tree).items() if p in part}
    assert sorted(scan_paths(tree, ["core/sensors"])) == ["core", "core/sensors", "core/sensors/bin"]


def test_paths_outside_packs_are_refused(tree: Path) -> None:
    assert normalise_paths(tree, [tree / "core" / "x", "core/actions/../sensors/bin"]) == [
        "core/sensors/bin",
        "core/x",
    ]
    with pytest.raises(InputError, match=r"inside \./packs"):
        normalise_paths(tree, [tree.parent / "elsewhere"])


def test_limited_plan_acts_only_at_or_under_the_paths() -> None:
    remote = {e.path: e for e in [E("core", "d"), E("core/a", "d"), E("core/a/f", data=b"1"), E("old", "d")]}
    local = {e.path: e for e in [E("core", "d")]}  # core/a/f and the dir core/a deleted locally
    view = subset(remote, ["core/a/f"])
    assert sorted(view) == ["core", "core/a", "core/a/f"]
    plan = _limit(make_plan(local, view), ["core/a/f"])
    assert plan.remove == ["core/a/f"]
    assert plan.rmdirs == [] and plan.old_packs == []  # core/a was only context


def test_manifest_store_round_trip_and_misses(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path / "m")
    entries = {"core": E("core", "d"), "core/a": E("core/a", data=b"a")}
    assert store.load("vol") is None
    store.save("vol", "sig1", entries)
    assert store.load("vol") == ("sig1", {"core/a": sha(b"a")})
    assert store.load("other") is None
    (next((tmp_path / "m").iterdir())).write_text("{not json")
    assert store.load("vol") is None


def test_status_output_without_hashes_takes_the_recorded_ones() -> None:
    listing = b"f 644 1 2.0 12\0core/a\0\0"
    entries, _ = parse_status_output(listing + b"END\0", {"core/a": sha(b"a")})
    assert entries["core/a"].digest == sha(b"a")


def test_helper_image_is_a_local_image_and_never_pulled(tmp_path: Path) -> None:
    from types import SimpleNamespace

    import docker.errors

    from attune_console.core.compose import ComposeProject, ComposeService, VolumeMount
    from attune_console.core.packs import PacksError, find_target, helper_image

    packs = tmp_path / "packs"
    packs.mkdir()
    init = ComposeService(
        "init-packs",
        "base:1",
        None,
        (
            VolumeMount("bind", str(packs), "/source/packs", True),
            VolumeMount("volume", "packs_data", "/p", False),
        ),
        {},
        (),
        None,
        3,
    )
    api = ComposeService(
        "api", "demo_api", None, (VolumeMount("volume", "packs_data", "/p", True),), {}, (), None, 9
    )
    project = ComposeProject(
        "demo",
        tmp_path / "docker-compose.yaml",
        tmp_path,
        {"init-packs": init, "api": api},
        {"packs_data": "demo_packs_data"},
        {"RUNTIME_IMAGE": "runtime:1"},
        1,
    )
    target = find_target(project)
    assert (target.logical, target.volume, target.mounting_services) == (
        "packs_data",
        "demo_packs_data",
        ["api"],
    )
    present: set[str] = {"demo_api"}
    asked: list[str] = []

    def get(name: str) -> object:
        asked.append(name)
        if name not in present:
            raise docker.errors.ImageNotFound(f"no {name}")
        return object()

    client = SimpleNamespace(images=SimpleNamespace(get=get))
    assert helper_image(client, project, target) == "demo_api"
    assert asked == ["runtime:1", "demo_api"]  # the runtime base first, then the services' images
    present.clear()
    with pytest.raises(PacksError, match="no local image to run the packs helper"):
        helper_image(client, project, target)
