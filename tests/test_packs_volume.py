"""The packs refresh against a real volume on the daemon (no stack needed, so these stay fast).

Each test gets a throwaway workspace (unique compose project name, hence volume name) whose
compose file has the demo's init-packs service; volumes and helper containers are removed
in the fixture's finaliser whatever happens.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attune_console import cli
from attune_console.core.compose import ComposeProject, load_compose, read_dotenv
from attune_console.core.packs import HELPER_LABEL, PacksError, PacksSession

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "demo-workspace"

COMPOSE = """\
services:
  init-packs:
    image: ${RUNTIME_IMAGE}
    volumes:
      - ./packs:/source/packs:ro
      - packs_data:/opt/attune/packs
    command:
      - sh
      - -c
      - find /opt/attune/packs -mindepth 1 -delete && cp -a /source/packs/. /opt/attune/packs/
  api:
    image: ${RUNTIME_IMAGE}
    volumes:
      - packs_data:/opt/attune/packs:ro
volumes:
  packs_data:
"""


@pytest.fixture(autouse=True)
def _state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recorded volume hashes go to a private state dir, not the user's."""
    monkeypatch.setenv("ATTUNE_CONSOLE_STATE_DIR", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
def workspace(tmp_path: Path, docker_client: Any) -> Iterator[Path]:
    runtime = read_dotenv(DEMO / ".env").get("RUNTIME_IMAGE", "debian:bookworm-slim")
    docker_client.images.get(runtime)  # present locally, never pulled
    root = tmp_path / f"attune-pv-{uuid.uuid4().hex[:8]}"
    (root / "packs" / "core" / "actions").mkdir(parents=True)
    (root / "docker-compose.yaml").write_text(COMPOSE)
    (root / ".env").write_text(f"RUNTIME_IMAGE={runtime}\n")
    (root / "Cargo.toml").write_text("[workspace]\nmembers = []\n")
    (root / "packs" / "core" / "pack.yaml").write_text("name: core\nversion: 1\n")
    (root / "packs" / "core" / "actions" / "echo.yaml").write_text("name: echo\n")
    yield root
    project = load_compose(root)
    for c in docker_client.containers.list(
        all=True, filters={"label": f"{HELPER_LABEL}={project.volumes['packs_data']}"}
    ):
        c.remove(force=True)
    for v in docker_client.volumes.list(filters={"name": project.volumes["packs_data"]}):
        v.remove(force=True)


def volume_files(session: PacksSession) -> dict[str, tuple[str, int, int, str]]:
    """The volume's full listing from a fresh helper: path -> (kind, mode, size, digest)."""
    with PacksSession(session.client, session.project) as fresh:
        entries, _ = fresh.remote_entries()
    return {p: (e.kind, e.mode, e.size, e.digest) for p, e in entries.items()}


def cat(session: PacksSession, path: str) -> bytes:
    res = session._helper().exec_run(["cat", f"/v/{path}"])
    assert res.exit_code == 0, res.output
    out: bytes = res.output
    return out


def test_status_of_a_missing_volume_reports_it_and_creates_nothing(
    workspace: Path, docker_client: Any
) -> None:
    project = load_compose(workspace)
    with PacksSession(docker_client, project) as s:
        st = s.status()
    assert st.volume_exists is False
    assert [p.state for p in st.packs] == ["new"]
    assert docker_client.volumes.list(filters={"name": project.volumes["packs_data"]}) == []


def test_refresh_populates_then_applies_every_kind_of_change(workspace: Path, docker_client: Any) -> None:
    project: ComposeProject = load_compose(workspace)
    packs = workspace / "packs"
    sensor = packs / "core" / "sensors" / "timer"
    sensor.parent.mkdir()
    sensor.write_bytes(b"#!/bin/sh\necho tick\n")
    sensor.chmod(0o755)
    os.symlink("actions/echo.yaml", packs / "core" / "alias.yaml")
    (packs / "core" / "actions" / "gone").mkdir()
    (packs / "core" / "actions" / "gone" / "x.yaml").write_text("x")
    with PacksSession(docker_client, project) as s:
        res = s.refresh()
        assert res.created_volume and res.plan.new_packs == ["core"]
        vol = docker_client.volumes.get(project.volumes["packs_data"])
        assert vol.attrs["Labels"]["com.docker.compose.project"] == project.name
        assert s.status().in_sync
        files = volume_files(s)
        assert files["core/sensors/timer"][1] == 0o755
        assert files["core/alias.yaml"][0] == "l"

        # change, add, delete, a dir replaced by a file, a mode change, a new pack, a removed dir
        (packs / "core" / "actions" / "echo.yaml").write_text("name: echo\nchanged: true\n")
        (packs / "core" / "actions" / "new.yaml").write_text("name: new\n")
        (packs / "core" / "pack.yaml").unlink()
        shutil.rmtree(packs / "core" / "actions" / "gone")
        (packs / "core" / "actions" / "gone").write_text("now a file")
        (packs / "core" / "actions" / "new.yaml").chmod(0o600)
        (packs / "extra" / "deep").mkdir(parents=True)
        (packs / "extra" / "deep" / "f").write_text("f")
        res = s.refresh()
        assert res.plan.put == ["core/actions/echo.yaml", "core/actions/gone", "core/actions/new.yaml"]
        assert res.plan.remove == ["core/actions/gone/x.yaml", "core/pack.yaml"]
        assert res.plan.new_packs == ["extra"]
        assert s.status().in_sync
        assert cat(s, "core/actions/echo.yaml") == b"name: echo\nchanged: true\n"
        assert cat(s, "core/actions/gone") == b"now a file"
        assert volume_files(s)["core/actions/new.yaml"][1] == 0o600
        assert volume_files(s) == volume_files(s)  # nothing left behind changes between reads

        shutil.rmtree(packs / "extra")
        res = s.refresh()
        assert res.plan.old_packs == ["extra"]
        assert s.status().in_sync
        assert not any(p.startswith(".attune-") for p in volume_files(s))
    assert (
        docker_client.containers.list(all=True, filters={"label": HELPER_LABEL + "=" + s.target.volume}) == []
    )


def test_refresh_notices_a_volume_changed_behind_its_back(workspace: Path, docker_client: Any) -> None:
    project = load_compose(workspace)
    with PacksSession(docker_client, project) as s:
        s.refresh()
        s.flush()  # record the volume's hashes now (close() would)
        with PacksSession(docker_client, project) as fresh:
            assert fresh.status().in_sync
            assert fresh.used_manifest  # the commit's recorded hashes match the volume's listing
        # Someone else (init-packs, a person with docker exec) edits the volume meanwhile.
        s._helper().exec_run(["sh", "-c", "echo tampered > /v/core/actions/echo.yaml"])
        with PacksSession(docker_client, project) as fresh:
            st = fresh.status()
            assert not fresh.used_manifest  # listing changed: content hashed again
            assert st.packs[0].changed == ["core/actions/echo.yaml"]
        (workspace / "packs" / "core" / "actions" / "other.yaml").write_text("o")
        res = s.refresh()
        assert "core/actions/echo.yaml" in res.plan.put  # the signature check forced a re-read
        assert s.status().in_sync
        assert cat(s, "core/actions/echo.yaml") == b"name: echo\n"


@pytest.mark.parametrize(
    "midway",
    [
        pytest.param("ls /v/.attune-txn-*/COMMITTING", id="while-creating-directories"),
        pytest.param("test -e /v/core/bulk/d0400/b.yaml", id="while-renaming-files"),
    ],
)
def test_refresh_killed_midway_leaves_the_volume_exactly_as_before(
    workspace: Path, docker_client: Any, midway: str
) -> None:
    project = load_compose(workspace)
    packs = workspace / "packs"
    with PacksSession(docker_client, project) as s:
        s.refresh()
        before = volume_files(s)
        # The commit runs one process per directory: with enough directories it takes seconds,
        # so the kill lands inside it.
        for i in range(800):
            d = packs / "core" / "bulk" / f"d{i:04d}"
            d.mkdir(parents=True)
            (d / "a.yaml").write_text(f"n: {i}\n")
            (d / "b.yaml").write_text(f"m: {i}\n")
        (packs / "core" / "actions" / "echo.yaml").write_text("changed\n")
        (packs / "core" / "pack.yaml").unlink()

        killed = threading.Event()

        def progress(phase: str, data: Any) -> None:
            if phase == "commit":

                def kill() -> None:
                    # Midway = the commit has started renaming (COMMITTING written) and not finished.
                    helper = docker_client.containers.get(data["container"])
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline:
                        if helper.exec_run(["sh", "-c", midway]).exit_code == 0:
                            break
                        time.sleep(0.02)
                    helper.kill()
                    killed.set()

                threading.Thread(target=kill, daemon=True).start()

        s.progress = progress
        with pytest.raises(PacksError, match="rolled back"):
            s.refresh()
        assert killed.is_set()
        # The transaction had started committing (so the kill was midway) and was undone.
        assert s.recovered, "expected a rollback of a started commit"
        assert volume_files(s) == before
        st = s.status()
        assert not st.in_sync
        assert st.packs[0].changed == ["core/actions/echo.yaml"]

        s.progress = lambda _p, _d: None
        s.refresh()
        assert s.status().in_sync


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_status_refresh_and_refusals(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = str(workspace)
    code, out, _ = _cli(capsys, "packs", "status", "-w", ws)
    assert code == 1
    assert "does not exist yet" in out and "packs refresh" in out
    code, out, _ = _cli(capsys, "packs", "refresh", "-w", ws)
    assert code == 0 and "created volume" in out
    code, out, _ = _cli(capsys, "packs", "status", "-w", ws, "--json")
    assert code == 0 and '"in_sync": true' in out

    os.symlink("../../../etc/passwd", workspace / "packs" / "core" / "escape")
    code, out, err = _cli(capsys, "packs", "refresh", "-w", ws)
    assert code == 2
    assert "escape: symlink points outside ./packs" in err
    assert "Traceback" not in err


def test_refresh_limited_to_paths_touches_only_those(workspace: Path, docker_client: Any) -> None:
    project = load_compose(workspace)
    packs = workspace / "packs"
    with PacksSession(docker_client, project) as s:
        s.refresh()
        (packs / "core" / "actions" / "echo.yaml").write_text("name: echo\nv: 2\n")
        (packs / "core" / "pack.yaml").write_text("name: core\nversion: 2\n")  # changed, not named
        (packs / "core" / "new" / "deep").mkdir(parents=True)
        (packs / "core" / "new" / "deep" / "n.yaml").write_text("n")
        res = s.refresh(paths=["core/actions/echo.yaml", packs / "core" / "new"])
        assert res.plan.put == ["core/actions/echo.yaml", "core/new/deep/n.yaml"]
        assert res.plan.mkdirs == ["core/new", "core/new/deep"]
        st = s.status()
        assert st.packs[0].changed == ["core/pack.yaml"]  # left alone: it was not named
        assert cat(s, "core/new/deep/n.yaml") == b"n"
        (packs / "core" / "actions" / "echo.yaml").unlink()
        res = s.refresh(paths=["core/actions/echo.yaml"])
        assert res.plan.remove == ["core/actions/echo.yaml"]
        assert "core/actions/echo.yaml" not in volume_files(s)


def test_full_disk_fails_cleanly_and_changes_nothing(workspace: Path, docker_client: Any) -> None:
    project = load_compose(workspace)
    # The project's volume, made in advance on a 1 MB tmpfs (compose would adopt it by its labels).
    docker_client.volumes.create(
        project.volumes["packs_data"],
        driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"},
        labels={"com.docker.compose.project": project.name, "com.docker.compose.volume": "packs_data"},
    )
    # A tmpfs volume lives while mounted: a "service" keeps it mounted, as the stack would.
    runtime = read_dotenv(workspace / ".env")["RUNTIME_IMAGE"]
    keeper = docker_client.containers.run(
        runtime,
        ["sleep", "300"],
        detach=True,
        name=f"{project.name}-keeper",
        volumes={project.volumes["packs_data"]: {"bind": "/opt/attune/packs", "mode": "ro"}},
    )
    try:
        with PacksSession(docker_client, project) as s:
            s.refresh()
            before = volume_files(s)
            (workspace / "packs" / "core" / "actions" / "echo.yaml").write_text("changed\n")
            (workspace / "packs" / "core" / "big.bin").write_bytes(os.urandom(2 << 20))
            with pytest.raises(PacksError, match="full; nothing was changed"):
                s.refresh()
            assert volume_files(s) == before
            assert not any(p.startswith(".attune-") for p in volume_files(s))
            seen = keeper.exec_run(["cat", "/opt/attune/packs/core/actions/echo.yaml"]).output
            assert seen == b"name: echo\n"
    finally:
        keeper.remove(force=True)


async def test_async_session_serialises_calls_and_removes_its_helper(
    workspace: Path, docker_client: Any
) -> None:
    import asyncio

    from attune_console.core.packs import AsyncPacksSession

    project = load_compose(workspace)
    session = AsyncPacksSession(docker_client, project)
    try:
        await session.refresh()
        (workspace / "packs" / "core" / "actions" / "a.yaml").write_text("a")
        status, refreshed = await asyncio.gather(
            session.status(), session.refresh(paths=["core/actions/a.yaml"])
        )
        # one at a time, in call order: the status saw the new file, then the refresh sent it
        assert status.packs[0].added == ["core/actions/a.yaml"]
        assert refreshed.plan.put == ["core/actions/a.yaml"]
        assert (await session.status()).in_sync
    finally:
        await session.aclose()
    helpers = docker_client.containers.list(
        all=True, filters={"label": f"{HELPER_LABEL}={project.volumes['packs_data']}"}
    )
    assert helpers == []


def test_a_helper_gone_between_calls_is_replaced(workspace: Path, docker_client: Any) -> None:
    project = load_compose(workspace)
    with PacksSession(docker_client, project) as s:
        s.refresh()
        first = s.container.id
        docker_client.containers.get(first).remove(force=True)  # as after its idle timeout
        assert s.status().in_sync
        assert s.container.id != first


def test_recovery_leaves_a_transaction_of_another_live_helper_alone(
    workspace: Path, docker_client: Any
) -> None:
    project = load_compose(workspace)
    with PacksSession(docker_client, project) as a:
        a.refresh()
        owner = a.container.id[:12]
        # A commit of session a in progress (staging dir with COMMITTING), as another session sees it.
        a._helper().exec_run(
            [
                "sh",
                "-c",
                f"mkdir -p /v/.attune-txn-{owner}-x/lists && : > /v/.attune-txn-{owner}-x/COMMITTING",
            ]
        )
        with PacksSession(docker_client, project) as b:
            b.status()
            assert b.recovered == []
            assert a._helper().exec_run(["test", "-d", f"/v/.attune-txn-{owner}-x"]).exit_code == 0
    # a is gone now: the next session rolls the orphan back (an empty transaction: nothing to undo).
    with PacksSession(docker_client, project) as c:
        c.status()
        assert c.recovered == [f".attune-txn-{owner}-x"]


def test_a_second_session_does_not_commit_while_another_holds_the_lock(
    workspace: Path, docker_client: Any
) -> None:
    project = load_compose(workspace)
    with PacksSession(docker_client, project) as a, PacksSession(docker_client, project) as b:
        a.refresh()
        owner = a.container.id[:12]
        # Session a is mid-commit: it holds the volume's lock.
        a._helper().exec_run(["sh", "-c", f"mkdir /v/.attune-lock && printf {owner} > /v/.attune-lock/owner"])
        (workspace / "packs" / "core" / "actions" / "b.yaml").write_text("b")
        with pytest.raises(PacksError, match="another refresh of this volume is running"):
            b.refresh()
        assert "core/actions/b.yaml" not in volume_files(b)
    # Both gone: the lock is stale, and the next refresh takes it.
    with PacksSession(docker_client, project) as c:
        assert c.refresh().plan.put == ["core/actions/b.yaml"]
        assert c._helper().exec_run(["test", "-e", "/v/.attune-lock"]).exit_code != 0


def test_a_stale_lock_left_by_a_dead_helper_is_taken_over(workspace: Path, docker_client: Any) -> None:
    project = load_compose(workspace)
    with PacksSession(docker_client, project) as s:
        s.refresh()
        # A helper that died mid-commit after this session started left its lock behind.
        s._helper().exec_run(
            ["sh", "-c", "mkdir /v/.attune-lock && printf deadbeef0000 > /v/.attune-lock/owner"]
        )
        (workspace / "packs" / "core" / "actions" / "c.yaml").write_text("c")
        assert s.refresh().plan.put == ["core/actions/c.yaml"]
        assert s._helper().exec_run(["test", "-e", "/v/.attune-lock"]).exit_code != 0
        assert s.status().in_sync


def test_refresh_without_tar_in_the_helper_image_uploads_through_the_daemon(
    workspace: Path, docker_client: Any
) -> None:
    project = load_compose(workspace)
    with PacksSession(docker_client, project) as s:
        s.refresh()
        s._helper()
        s._has_tar = False  # as with a helper image that has no tar: put_archive, then the commit
        (workspace / "packs" / "core" / "actions" / "echo.yaml").write_text("via put_archive\n")
        res = s.refresh()
        assert res.plan.put == ["core/actions/echo.yaml"]
        assert cat(s, "core/actions/echo.yaml") == b"via put_archive\n"
        assert s.status().in_sync
