"""Unit tests of service state: inspect parsing, staleness, event filtering, compose argv."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker.errors
import pytest

from attune_console.core.compose import ComposeProject, ComposeService
from attune_console.core.services import (
    ContainerState,
    ServiceError,
    ServiceMonitor,
    ServiceState,
    _with_dependencies,
    compose_argv,
    up_stack,
)

INSPECT = {
    "Id": "abc123",
    "Name": "/demo_api_1",
    "Image": "sha256:old",
    "RestartCount": 2,
    "State": {
        "Status": "running",
        "StartedAt": "2026-12-04T15:50:01.123456789Z",
        "Health": {"Status": "healthy"},
        "ExitCode": 0,
    },
}


def test_container_state_from_inspect() -> None:
    c = ContainerState.from_inspect(INSPECT)
    assert c == ContainerState(
        "abc123", "demo_api_1", "running", "healthy", INSPECT["State"]["StartedAt"], 2, "sha256:old", None
    )
    never = ContainerState.from_inspect(
        {
            "Id": "x",
            "Name": "/n",
            "State": {"Status": "exited", "StartedAt": "0001-01-01T00:00:00Z", "ExitCode": 3},
        }
    )
    assert never.started_at is None and never.exit_code == 3 and never.health is None


def test_stale_when_running_image_is_not_the_newest_built() -> None:
    running = ContainerState.from_inspect(INSPECT)
    s = ServiceState("api", "demo_api", (running,), built_image_id="sha256:new")
    assert s.stale and "newer image" in (s.stale_reason or "")
    assert not ServiceState("api", "demo_api", (running,), built_image_id="sha256:old").stale
    exited = ContainerState.from_inspect({**INSPECT, "State": {**INSPECT["State"], "Status": "exited"}})
    assert not ServiceState("api", "demo_api", (exited,), built_image_id="sha256:new").stale
    src = ServiceState("api", "demo_api", (running,), built_image_id="sha256:old", source_newer=True)
    assert src.stale and "source changed" in (src.stale_reason or "")
    assert ServiceState("api", "demo_api").state == "absent"


def project(tmp_path: Path) -> ComposeProject:
    def svc(name: str, deps: dict[str, str] | None = None) -> ComposeService:
        return ComposeService(name, f"demo_{name}", None, (), deps or {}, (), None, 1)

    return ComposeProject(
        "demo",
        tmp_path / "docker-compose.yaml",
        tmp_path,
        {
            "init-packs": svc("init-packs"),
            "api": svc("api", {"init-packs": "service_completed_successfully"}),
            "worker": svc("worker", {"api": "service_started"}),
        },
        {"packs_data": "demo_packs_data"},
        {},
        1,
    )


class FakeContainers:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def list(self, all: bool = False, filters: dict[str, Any] | None = None) -> list[Any]:
        self.calls.append(filters)
        return [SimpleNamespace(attrs=INSPECT, labels={})]


class FakeAPI:
    def __init__(self, images: dict[str, dict[str, str]]) -> None:
        self.images = images

    def inspect_image(self, name: str) -> dict[str, str]:
        if name not in self.images:
            raise docker.errors.ImageNotFound("no such image")
        return self.images[name]


def test_monitor_reacts_to_its_project_only_and_ignores_exec_noise(tmp_path: Path) -> None:
    client = SimpleNamespace(containers=FakeContainers(), api=FakeAPI({"demo_api": {"Id": "sha256:new"}}))
    changes: list[ServiceState] = []
    m = ServiceMonitor(client, project(tmp_path), changes.append)
    attrs = {"com.docker.compose.project": "demo", "com.docker.compose.service": "api"}
    m.handle_event({"Type": "container", "Action": "exec_start: sh", "Actor": {"Attributes": attrs}})
    other = {**attrs, "com.docker.compose.project": "other"}
    m.handle_event({"Type": "container", "Action": "start", "Actor": {"Attributes": other}})
    assert changes == []
    m.handle_event({"Type": "container", "Action": "start", "Actor": {"Attributes": attrs}})
    assert [c.name for c in changes] == ["api"]
    assert changes[0].stale  # running sha256:old, newest built sha256:new
    m.handle_event({"Type": "container", "Action": "start", "Actor": {"Attributes": attrs}})
    assert len(changes) == 1  # same state: no change reported
    client.api.images["demo_api"] = {"Id": "sha256:old"}
    m.handle_event({"Type": "image", "Action": "tag", "Actor": {"Attributes": {"name": "demo_api:latest"}}})
    assert len(changes) == 2 and not changes[-1].stale


def test_dependencies_come_first(tmp_path: Path) -> None:
    assert _with_dependencies(project(tmp_path), ["worker"]) == ["init-packs", "api", "worker"]


def test_compose_argv_names_file_directory_and_project(tmp_path: Path) -> None:
    p = project(tmp_path)
    assert compose_argv(p, ("docker-compose",)) == [
        "docker-compose",
        "--project-directory",
        str(tmp_path),
        "-f",
        str(tmp_path / "docker-compose.yaml"),
        "-p",
        "demo",
    ]


async def test_up_refuses_without_built_images_and_says_which(tmp_path: Path) -> None:
    client = SimpleNamespace(api=FakeAPI({"demo_init-packs": {"Id": "x"}}))
    with pytest.raises(ServiceError, match=r"image not built for api \(demo_api\)"):
        await up_stack(client, project(tmp_path), ["api"])


def test_fingerprint_source_check_sees_content_changes_not_touches(demo_copy: Path) -> None:
    from attune_console.core.compose import load_compose
    from attune_console.core.fingerprint import fingerprint
    from attune_console.core.model import Workspace
    from attune_console.core.services import fingerprint_source_check

    project = load_compose(demo_copy)
    recorded = {
        name: fingerprint(Workspace.load(demo_copy), name).to_json() for name in ("api", "worker-shell")
    }

    class History:
        def last_success(self, service: str, workspace: str | None = None) -> Any:
            assert workspace == str(demo_copy)
            return SimpleNamespace(fingerprint=recorded.get(service))

    main = demo_copy / "crates" / "api" / "src" / "main.rs"
    main.touch()
    check = fingerprint_source_check(demo_copy, History())
    assert not check(project.services["api"])  # mtime only: BuildKit would hit the cache
    main.write_text(main.read_text() + "\n// edited\n")
    check = fingerprint_source_check(demo_copy, History())
    assert check(project.services["api"])
    assert not check(project.services["worker-shell"])  # another service's crate
    assert not check(project.services["init-packs"])  # no build section


def test_monitor_ends_quietly_when_the_event_stream_breaks(tmp_path: Path) -> None:
    class Broken:
        def __iter__(self) -> Any:
            yield {"Type": "container", "Action": "start", "Actor": {"Attributes": {}}}
            raise ConnectionError("daemon went away")

        def close(self) -> None:
            pass

    client = SimpleNamespace(containers=FakeContainers(), api=FakeAPI({}), events=lambda **_kw: Broken())
    m = ServiceMonitor(client, project(tmp_path))
    m.start()
    assert m._thread is not None
    m._thread.join(5)
    assert not m.alive
    assert isinstance(m.error, ConnectionError)
