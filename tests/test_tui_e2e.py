"""End to end on the real daemon: the console in tmux, driven by keys, read with capture-pane.

Builds ``api`` of a private demo copy with ``b``; turns watch mode on, edits api's source, sees the row
turn stale, rebuilds and reads CACHED/DONE steps, the totals and the first miss with its reason off the
screen; then runs api (``u``), refreshes packs with ``p`` (after-refresh: SIGHUP), edits a pack file,
presses ``p`` again and sees, in the console's own container log pane, api report the new file count.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

TMUX = shutil.which("tmux")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Screen:
    def __init__(self, name: str) -> None:
        self.name = name

    def text(self) -> str:
        out = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True, check=False
        )
        return out.stdout

    def press(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def wait_for(self, cond: Callable[[str], bool], timeout: float, what: str) -> str:
        end = time.monotonic() + timeout
        text = ""
        while time.monotonic() < end:
            text = self.text()
            if cond(text):
                return text
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; screen:\n{text}")


@pytest.fixture
def console(docker_client, demo_copy: Path) -> Iterator[tuple[Screen, Path]]:  # type: ignore[no-untyped-def]
    if TMUX is None:
        pytest.fail("tmux is required for the end-to-end console test (apt-get install tmux)")
    from attune_console.core.compose import load_compose

    (demo_copy / "attune-console.toml").write_text('[packs]\nafter_refresh = "hup"\n')
    port = _free_port()
    env = {**os.environ, "ATTUNE_API_HOST_PORT": str(port)}
    project = load_compose(demo_copy, environ=env)
    name = f"attune-e2e-{uuid.uuid4().hex[:6]}"
    cmd = f"ATTUNE_API_HOST_PORT={port} attune-console {demo_copy}; sleep 30"
    subprocess.run(["tmux", "new", "-d", "-s", name, "-x", "160", "-y", "50", cmd], check=True, env=env)
    screen = Screen(name)
    try:
        yield screen, demo_copy
    finally:
        screen.press("q")  # quit cleanly (no build runs: no question)
        time.sleep(2)
        subprocess.run(["tmux", "kill-session", "-t", name], check=False)
        label = f"com.docker.compose.project={project.name}"
        for c in docker_client.containers.list(all=True, filters={"label": label}):
            c.remove(force=True)
        for vol in docker_client.volumes.list(filters={"label": label}):
            vol.remove(force=True)
        for real in project.volumes.values():
            # Containers of this project's volume only (the packs helper has no compose label).
            for c in docker_client.containers.list(all=True, filters={"volume": real}):
                c.remove(force=True)
            with contextlib.suppress(Exception):
                docker_client.volumes.get(real).remove(force=True)
        for svc in project.services.values():
            if svc.build is not None:
                with contextlib.suppress(Exception):
                    docker_client.images.remove(svc.image, noprune=False)


def test_build_api_then_refresh_packs_and_see_the_container_change(console) -> None:  # type: ignore[no-untyped-def]
    screen, root = console
    screen.wait_for(lambda t: "packs volume" in t and "api" in t, 60, "the main screen")
    screen.press("b")  # the cursor starts on the first buildable service: api
    text = screen.wait_for(
        lambda t: re.search(r"│ api\s+(up to date|failed)", t) is not None, 900, "the first api build to end"
    )
    assert re.search(r"api\s+done\s+cached (\d+)/(\d+) · [\d.]+ s", text), text

    # Watch mode on, edit api's source: the row turns stale with the predicted miss; rebuild.
    screen.press("w")
    time.sleep(1)
    main_rs = root / "crates" / "api" / "src" / "main.rs"
    # Unique content: BuildKit keys COPY by content, and an edit seen before would be a cache hit.
    main_rs.write_text(main_rs.read_text() + f"\n// edited by the console e2e test {uuid.uuid4().hex}\n")
    text = screen.wait_for(lambda t: re.search(r"│ api\s+stale", t) is not None, 60, "api to turn stale")
    assert "COPY crates/api/" in text, text
    screen.press("b")
    text = screen.wait_for(
        lambda t: re.search(r"│ api\s+(up to date|failed)", t) is not None, 900, "the second api build to end"
    )
    totals = re.search(r"api\s+done\s+cached (\d+)/(\d+) · [\d.]+ s", text)
    assert totals, text
    cached, total = int(totals.group(1)), int(totals.group(2))
    assert 0 < cached < total, text  # planner steps reused, the builder's COPY and cargo build ran
    assert "CACHED" in text and "DONE" in text, text
    assert re.search(r"first miss \[builder \d+/\d+\] COPY crates/api/", text), text
    assert "crates/api/src/main.rs" in text, text  # the reason, from the impact analysis
    assert re.search(r"api\s+up to date\s+\d+/\d+", text), text

    screen.press("u")  # recreate api with its new image (creates the packs volume, empty)
    screen.wait_for(lambda t: re.search(r"api\s+up to date.*running", t) is not None, 180, "api running")
    screen.press("l")  # focus the log pane ...
    time.sleep(1)
    screen.press("l")  # ... and again: the Containers tab
    screen.wait_for(lambda t: "all services" in t, 30, "the Containers tab")
    screen.press("p")  # refresh packs, then SIGHUP api
    pack_files = sum(1 for p in (root / "packs" / "core").rglob("*") if p.is_file())
    screen.wait_for(lambda t: f"pack core: {pack_files} files" in t, 180, f"api to see {pack_files} files")

    (root / "packs" / "core" / "actions" / "e2e_added.yaml").write_text("name: e2e_added\nrunner: shell\n")
    screen.press("p")
    text = screen.wait_for(
        lambda t: f"pack core: {pack_files + 1} files" in t, 180, f"api to see {pack_files + 1} files"
    )
    assert "api |" in text or "api" in text
