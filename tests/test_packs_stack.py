"""Packs, services and logs against the demo stack running from a private copy of demo-workspace.

One stack per module (building the api image takes a while on two cores): the copy has a
unique directory name, hence a unique compose project, volume and image names; the api is
published on a free loopback port. The finaliser always runs ``down -v --rmi local``.
Only ``init-packs`` and ``api`` run: they are what the packs promise is about.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from attune_console import cli
from attune_console.core import compose_cli
from attune_console.core.compose import ComposeProject, load_compose
from attune_console.core.logs import LogFollower, LogLine, LogNotice
from attune_console.core.packs import HELPER_LABEL
from attune_console.core.services import (
    ServiceMonitor,
    ServiceState,
    recreate_service,
    restart_service,
    service_state,
    stop_service,
    up_stack,
)

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "demo-workspace"


@dataclass
class Stack:
    root: Path
    project: ComposeProject
    port: int
    client: Any

    def get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            data: dict[str, Any] = json.loads(r.read())
            return data

    def project_images(self) -> set[tuple[str, str]]:
        """(tag, id) of every image named after the project (other engineers build concurrently)."""
        prefixes = (f"{self.project.name}_", f"{self.project.name}-")
        return {
            (tag, img["Id"])
            for img in self.client.api.images()
            for tag in img.get("RepoTags") or []
            if tag.startswith(prefixes)
        }

    def api(self) -> Any:
        (c,) = self.client.containers.list(
            filters={
                "label": [f"com.docker.compose.project={self.project.name}", "com.docker.compose.service=api"]
            }
        )
        return c


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _compose(root: Path, name: str, port: int, *args: str, timeout: float = 900) -> str:
    found = compose_cli.detect()
    assert found is not None, "no compose CLI (docker compose v2 or docker-compose v1)"
    env = {
        **os.environ,
        "COMPOSE_DOCKER_CLI_BUILD": "1",
        "DOCKER_BUILDKIT": "1",
        "ATTUNE_API_HOST_PORT": str(port),
        # compose v1 builds through the docker CLI: use the one with BuildKit built in.
        "PATH": "/usr/bin:" + os.environ.get("PATH", ""),
    }
    argv = [*found.argv, "--project-directory", str(root), "-p", name, *args]
    proc = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def fnv1a(data: bytes) -> str:
    """The demo's per-file checksum (crates/common/src/packs.rs)."""
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack") / f"attune-demo-{uuid.uuid4().hex[:8]}"
    shutil.copytree(DEMO, root, symlinks=True, ignore=shutil.ignore_patterns("target", ".git", "__pycache__"))
    binary = root / "packs" / "core" / "sensors" / "attune-core-timer-sensor"
    binary.unlink(missing_ok=True)  # build-binaries must produce it, not a stale local copy
    project = load_compose(root)
    port = _free_port()
    try:
        _compose(root, project.name, port, "build", "api")
        _compose(root, project.name, port, "up", "-d", "api")
        st = Stack(root, project, port, docker_client)
        deadline = time.monotonic() + 90
        while True:
            try:
                st.get("/health")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield st
    finally:
        _compose(root, project.name, port, "down", "-v", "--rmi", "local", "--remove-orphans")
        with contextlib.suppress(Exception):  # the pack builder image build-binaries tagged
            docker_client.images.remove(f"{project.name}-pack-builder", noprune=False)
        for c in docker_client.containers.list(all=True, filters={"label": HELPER_LABEL}):
            if c.labels.get(HELPER_LABEL, "").startswith(project.name + "_"):
                c.remove(force=True)


@pytest.fixture(autouse=True)
def _state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recorded volume hashes go to a private state dir, not the user's."""
    monkeypatch.setenv("ATTUNE_CONSOLE_STATE_DIR", str(tmp_path_factory.mktemp("state")))


def files_of(payload: dict[str, Any], pack: str = "core") -> dict[str, dict[str, Any]]:
    (p,) = [p for p in payload["packs"] if p["name"] == pack]
    return {f["path"]: f for f in p["files_list"]}


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_refresh_reaches_the_running_api_without_rebuild_or_recreate(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    api = stack.api()
    started = api.attrs["State"]["StartedAt"]
    image = api.attrs["Image"]
    images_before = stack.project_images()
    before = files_of(stack.get("/live"))
    assert "actions/sleep.yaml" in before

    actions = stack.root / "packs" / "core" / "actions"
    new_echo = (actions / "echo.yaml").read_bytes() + b"# refreshed\n"
    (actions / "echo.yaml").write_bytes(new_echo)
    (actions / "added.yaml").write_text("name: added\n")
    (actions / "sleep.yaml").unlink()

    code, out, err = _cli(capsys, "packs", "refresh", "-w", str(stack.root), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["put"] == ["core/actions/added.yaml", "core/actions/echo.yaml"]
    assert result["removed"] == ["core/actions/sleep.yaml"]

    live = files_of(stack.get("/live"))
    assert live["actions/echo.yaml"]["checksum"] == fnv1a(new_echo)
    assert live["actions/added.yaml"]["size"] == len("name: added\n")
    assert "actions/sleep.yaml" not in live

    api = stack.api()
    assert api.attrs["State"]["StartedAt"] == started, "the api container was restarted"
    assert api.attrs["Image"] == image
    assert stack.project_images() == images_before, "an image of the project was built or retagged"
    code, _, _ = _cli(capsys, "packs", "status", "-w", str(stack.root))
    assert code == 0


def test_refresh_with_hup_reloads_the_api_and_leaves_init_packs_alone(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    loads = stack.get("/")["loads"]
    (stack.root / "packs" / "core" / "actions" / "hup.yaml").write_text("name: hup\n")
    code, out, err = _cli(capsys, "packs", "refresh", "-w", str(stack.root), "--hup")
    assert code == 0, err
    assert "api: sent SIGHUP to 1 container(s)" in out
    assert "init-packs" not in out
    deadline = time.monotonic() + 10
    while stack.get("/")["loads"] == loads and time.monotonic() < deadline:
        time.sleep(0.2)
    loaded = stack.get("/")
    assert loaded["loads"] == loads + 1
    assert "actions/hup.yaml" in files_of(loaded)


def test_monitor_sees_a_restart_within_a_second_and_logs_follow_across_it(stack: Stack) -> None:
    states: list[tuple[float, ServiceState]] = []
    monitor = ServiceMonitor(stack.client, stack.project, lambda s: states.append((time.monotonic(), s)))
    initial = monitor.start()
    try:
        assert initial["api"].state == "running"
        assert initial["init-packs"].state == "exited"
        old_start = initial["api"].containers[0].started_at
        marker_before = f"/before-{uuid.uuid4().hex[:8]}"
        marker_after = f"/after-{uuid.uuid4().hex[:8]}"
        items: list[LogLine | LogNotice] = []

        async def follow() -> None:
            async with LogFollower(stack.client, stack.project.name, ["api", "init-packs"], tail=5) as logs:

                async def until(pred: Any, timeout: float) -> None:
                    end = time.monotonic() + timeout
                    while not any(pred(i) for i in items):
                        left = end - time.monotonic()
                        assert left > 0, f"timed out; got {items[-10:]}"
                        with contextlib.suppress(asyncio.TimeoutError):
                            items.extend(await asyncio.wait_for(logs.queue.get_batch(), left))

                def has(text: str) -> Any:
                    return lambda i: isinstance(i, LogLine) and text in i.text

                await until(lambda i: isinstance(i, LogNotice) and i.kind == "attached", 10)
                await asyncio.to_thread(_get_404, stack, marker_before)
                await until(has(marker_before), 10)
                starts_before = sum(has("starting attune-api")(i) for i in items)
                await asyncio.to_thread(restart_service, stack.client, stack.project.name, "api", 2)
                restarted = time.monotonic()
                await asyncio.to_thread(_wait_health, stack)
                await asyncio.to_thread(_get_404, stack, marker_after)
                await until(has(marker_after), 20)
                await until(lambda _i: sum(has("starting attune-api")(i) for i in items) > starts_before, 10)
                changed = [
                    t for t, s in states if s.name == "api" and s.containers[0].started_at != old_start
                ]
                assert changed, "the monitor never saw the restart"
                assert changed[0] <= restarted + 1.0, "the restart showed more than a second late"

        asyncio.run(follow())
    finally:
        monitor.stop()

    lines = [i for i in items if isinstance(i, LogLine)]
    attached = [i for i in items if isinstance(i, LogNotice) and i.kind == "attached" and i.service == "api"]
    assert len(attached) >= 2, items
    assert sum(marker_before in ln.text for ln in lines) == 1, "a line was repeated after reattaching"
    assert all(ln.timestamp and ln.stream in {"stdout", "stderr"} for ln in lines)
    # several services at once: the exited init-packs is backfilled next to the live api
    assert any(ln.service == "init-packs" and "copied" in ln.text for ln in lines)
    api_lines = [ln for ln in lines if ln.service == "api"]
    assert api_lines and all("api" in ln.container for ln in api_lines)  # v1 _api_1, v2 -api-1
    final = monitor.states()["api"]
    assert final.state == "running" and final.containers[0].started_at != old_start


def _get_404(stack: Stack, path: str) -> None:
    try:
        stack.get(path)
    except urllib.error.HTTPError as exc:
        assert exc.code == 404


def _wait_health(stack: Stack) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            stack.get("/health")
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_build_binaries_ships_an_executable_sensor_and_leaves_no_container(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = stack.root / "packs" / "core" / "sensors" / "attune-core-timer-sensor"
    assert not binary.exists()
    code, out, err = _cli(capsys, "packs", "build-binaries", "-w", str(stack.root))
    assert code == 0, err
    assert "wrote packs/core/sensors/attune-core-timer-sensor" in out
    assert stat.S_IMODE(binary.stat().st_mode) == 0o755
    assert binary.read_bytes()[:4] == b"\x7fELF"
    live = files_of(stack.get("/live"))
    entry = live["sensors/attune-core-timer-sensor"]
    assert entry["executable"] is True
    assert entry["size"] == binary.stat().st_size
    assert stack.client.containers.list(all=True, filters={"label": "io.attune-console.pack-binaries"}) == []
    assert "pack-binaries: built" in out, "the build engine's progress was not shown"
    assert " CACHED" in out or " DONE" in out


async def test_recreate_runs_a_newer_image_and_up_brings_a_stopped_service_back(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # compose interpolates the published port from the environment, as for the user's own shell
    monkeypatch.setenv("ATTUNE_API_HOST_PORT", str(stack.port))
    svc = stack.project.services["api"]
    api = stack.api()
    built = api.attrs["Image"]
    # A "newly built" image without a rebuild: the running container committed under the service's tag.
    repo, _, tag = svc.image.partition(":")
    newer = await asyncio.to_thread(api.commit, repository=repo, tag=tag or "latest")
    try:
        before = service_state(stack.client, stack.project, svc)
        assert before.stale and before.built_image_id == newer.id
        await recreate_service(stack.client, stack.project, "api")
        after = service_state(stack.client, stack.project, svc)
        assert after.state == "running" and not after.stale
        assert after.containers[0].id != api.id and after.containers[0].image_id == newer.id
        _wait_health(stack)
        assert "core" in {p["name"] for p in stack.get("/live")["packs"]}  # the volume is mounted again

        assert stop_service(stack.client, stack.project.name, "api") == "stopped 1 container(s)"
        assert service_state(stack.client, stack.project, svc).state == "exited"
        await up_stack(stack.client, stack.project, ["api"])
        assert service_state(stack.client, stack.project, svc).state == "running"
        _wait_health(stack)
    finally:
        with contextlib.suppress(Exception):  # the image the stack was built with, now untagged
            stack.client.images.remove(built)


def test_refresh_with_restart_restarts_the_mounting_services_in_place(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    api = stack.api()
    started = api.attrs["State"]["StartedAt"]
    (stack.root / "packs" / "core" / "actions" / "restart.yaml").write_text("name: restart\n")
    code, out, err = _cli(capsys, "packs", "refresh", "-w", str(stack.root), "--restart")
    assert code == 0, err
    assert "api: restarted 1 container(s)" in out
    after = stack.api()
    assert after.id == api.id, "restart must not recreate the container"
    assert after.attrs["State"]["StartedAt"] != started
    _wait_health(stack)
    assert "actions/restart.yaml" in files_of(stack.get("/"))  # loaded at start
