"""Live state of a compose project's services, and the actions on one service.

Why events and not polling: lazydocker polls every container and burns idle CPU; here
one ``docker events`` stream (a thread) reports every container change of the daemon,
and only the container an event names is inspected again, so a state change shows
within a second and an idle stack costs nothing.

State comes from the compose labels on containers (``com.docker.compose.project`` /
``com.docker.compose.service``), the same way compose finds its own containers.
Actions use the docker SDK (restart, stop, signal); creating or recreating containers
has no SDK equivalent that keeps compose's configuration, so ``up`` goes through the
compose CLI (v2 ``docker compose`` when present, else v1 ``docker-compose``), always
with ``--no-build``: building is the build engine's job, with its progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from attune_console.core.compose import ComposeProject, ComposeService
from attune_console.core.errors import AttuneError

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"


class ServiceError(AttuneError):
    """A service action failed; the message says which and why."""


@dataclass(frozen=True)
class ContainerState:
    """One container of a service, as ``docker inspect`` reports it."""

    id: str
    name: str
    state: str  # created, running, restarting, exited, paused, dead
    health: str | None  # healthy, unhealthy, starting, or None without a healthcheck
    started_at: str | None
    restart_count: int
    image_id: str
    exit_code: int | None

    @classmethod
    def from_inspect(cls, attrs: dict[str, Any]) -> ContainerState:
        st = attrs.get("State", {})
        health = (st.get("Health") or {}).get("Status")
        started = st.get("StartedAt")
        if started and started.startswith("0001-"):
            started = None
        return cls(
            id=attrs["Id"],
            name=attrs.get("Name", "").lstrip("/"),
            state=st.get("Status", "unknown"),
            health=health,
            started_at=started,
            restart_count=int(attrs.get("RestartCount", 0)),
            image_id=attrs.get("Image", ""),
            exit_code=st.get("ExitCode") if st.get("Status") in {"exited", "dead"} else None,
        )


@dataclass(frozen=True)
class ServiceState:
    """A compose service: its containers, the image compose would run now, and staleness."""

    name: str
    image: str
    containers: tuple[ContainerState, ...] = ()
    built_image_id: str | None = None
    built_at: str | None = None
    source_newer: bool = False

    @property
    def state(self) -> str:
        """``running``, ``exited``, ``absent`` ... or ``mixed`` when containers disagree."""
        states = {c.state for c in self.containers}
        if not states:
            return "absent"
        return states.pop() if len(states) == 1 else "mixed"

    @property
    def stale(self) -> bool:
        """True when a running container's image is not the newest built one, or the source is newer."""
        running = [c for c in self.containers if c.state in {"running", "restarting"}]
        if not running:
            return False
        if self.built_image_id and any(c.image_id != self.built_image_id for c in running):
            return True
        return self.source_newer

    @property
    def stale_reason(self) -> str | None:
        running = [c for c in self.containers if c.state in {"running", "restarting"}]
        if not running:
            return None
        if self.built_image_id and any(c.image_id != self.built_image_id for c in running):
            return "a newer image was built: recreate to run it"
        if self.source_newer:
            return "source changed after the image was built: build, then recreate"
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "image": self.image,
            "state": self.state,
            "stale": self.stale,
            "stale_reason": self.stale_reason,
            "built_image_id": self.built_image_id,
            "containers": [c.__dict__ for c in self.containers],
        }


# --- reading ----------------------------------------------------------------------------------


def project_containers(client: Any, project: str, service: str | None = None) -> list[Any]:
    """Containers compose made for ``project`` (and ``service``), one-off ``run`` containers excluded."""
    labels = [f"{PROJECT_LABEL}={project}"]
    if service is not None:
        labels.append(f"{SERVICE_LABEL}={service}")
    found = client.containers.list(all=True, filters={"label": labels})
    return [c for c in found if c.labels.get(ONEOFF_LABEL, "False") != "True"]


def _image_info(client: Any, image: str) -> tuple[str | None, str | None]:
    import docker.errors

    try:
        attrs = client.api.inspect_image(image)
    except docker.errors.ImageNotFound:
        return None, None
    except docker.errors.APIError:
        return None, None
    return attrs.get("Id"), attrs.get("Created")


SourceCheck = Callable[[ComposeService], bool]
"""True when a service's sources changed since the build of its newest image."""


def fingerprint_source_check(root: Path, history: Any | None = None) -> SourceCheck:
    """A :data:`SourceCheck` from build fingerprints (content, not mtimes).

    The build engine records, with each successful build, the fingerprint of what entered each
    step (``core/fingerprint.py``); the source is newer than the image when the fingerprint of
    the workspace as it is now differs from that record. Unknown (no recorded build, no
    fingerprint, unreadable workspace) counts as not changed: staleness is a hint, not a guess.
    """
    from attune_console.core.fingerprint import ServiceFingerprint, fingerprint
    from attune_console.core.history import History
    from attune_console.core.model import Workspace

    hist = history if history is not None else History()
    ws = Workspace.load(root)

    def check(svc: ComposeService) -> bool:
        if svc.build is None:
            return False
        try:
            rec = hist.last_success(svc.name, workspace=str(svc.build.context))
            if rec is None or not rec.fingerprint:
                return False
            old = ServiceFingerprint.from_json(rec.fingerprint)
            now = fingerprint(ws, svc.name)
        except Exception:
            return False
        return bool(old.steps and now.steps and old.steps[-1].key != now.steps[-1].key)

    return check


def service_state(
    client: Any, project: ComposeProject, svc: ComposeService, source_check: SourceCheck | None = None
) -> ServiceState:
    """Inspect one service now (its containers and the image compose would run)."""
    conts = [ContainerState.from_inspect(c.attrs) for c in project_containers(client, project.name, svc.name)]
    image_id, created = _image_info(client, svc.image)
    source_newer = bool(source_check is not None and image_id is not None and source_check(svc))
    conts.sort(key=lambda c: c.name)
    return ServiceState(svc.name, svc.image, tuple(conts), image_id, created, source_newer)


def snapshot(
    client: Any, project: ComposeProject, source_check: SourceCheck | None = None
) -> dict[str, ServiceState]:
    """Every service of the project, inspected now."""
    return {name: service_state(client, project, svc, source_check) for name, svc in project.services.items()}


# --- following events -------------------------------------------------------------------------


@dataclass
class ServiceMonitor:
    """Keeps :meth:`states` current from the daemon's event stream; calls ``on_change`` per change.

    ``on_change`` runs on the event thread: a UI posts a message from it (thread-safe).
    For asyncio code, :meth:`changes` yields the changed states on the event loop.
    """

    client: Any
    project: ComposeProject
    on_change: Callable[[ServiceState], None] | None = None
    source_check: SourceCheck | None = None
    _states: dict[str, ServiceState] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _events: Any = None
    _stopped: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None

    def start(self) -> dict[str, ServiceState]:
        """Take a snapshot, then follow events from that moment on (no change is missed between)."""
        since = datetime.now(timezone.utc)
        # The stream opens before the snapshot so a change during the snapshot still arrives.
        self._events = self.client.events(decode=True, since=since, filters={"type": ["container", "image"]})
        with self._lock:
            self._states = snapshot(self.client, self.project, self.source_check)
        self._thread = threading.Thread(target=self._run, name="attune-service-events", daemon=True)
        self._thread.start()
        return self.states()

    def states(self) -> dict[str, ServiceState]:
        with self._lock:
            return dict(self._states)

    def stop(self) -> None:
        self._stopped.set()
        if self._events is not None:
            with contextlib.suppress(Exception):
                self._events.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        # A broken stream (daemon restarted, connection lost) ends the thread quietly with the
        # reason in ``error``; ``alive`` turns False and the owner starts a new monitor.
        try:
            for ev in self._events:
                if self._stopped.is_set():
                    return
                self.handle_event(ev)
        except Exception as exc:
            if not self._stopped.is_set():
                self.error = exc

    @property
    def alive(self) -> bool:
        """True while the event thread follows the daemon."""
        return self._thread is not None and self._thread.is_alive()

    def handle_event(self, ev: dict[str, Any]) -> None:
        """Apply one decoded daemon event (public so tests can feed recorded events)."""
        action = str(ev.get("Action") or ev.get("status") or "")
        attrs = (ev.get("Actor") or {}).get("Attributes") or {}
        if ev.get("Type") == "image":
            name = attrs.get("name", "")
            for svc in self.project.services.values():
                candidates = {svc.image, svc.image + ":latest"}
                if name in candidates or (ev.get("id") or "") in candidates:
                    self._update(svc.name)
            return
        if action.startswith("exec_") or attrs.get(PROJECT_LABEL) != self.project.name:
            return
        service = attrs.get(SERVICE_LABEL)
        if service in self.project.services:
            self._update(service)

    def _update(self, service: str) -> None:
        svc = self.project.services[service]
        new = service_state(self.client, self.project, svc, self.source_check)
        with self._lock:
            old = self._states.get(service)
            if old == new:
                return
            self._states[service] = new
        if self.on_change is not None:
            self.on_change(new)

    async def changes(self) -> Any:
        """Async iterator of changed :class:`ServiceState` (starts the monitor if needed)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[ServiceState] = asyncio.Queue(maxsize=1000)

        def push(state: ServiceState) -> None:
            def put() -> None:
                if queue.full():  # a slow consumer only needs the latest state per service
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()
                queue.put_nowait(state)

            loop.call_soon_threadsafe(put)

        self.on_change = push
        if self._thread is None:
            await asyncio.to_thread(self.start)
        while not self._stopped.is_set():
            yield await queue.get()


# --- actions ----------------------------------------------------------------------------------


def restart_service(
    client: Any, project: str, service: str, timeout: int = 10, only_running: bool = True
) -> str:
    """``docker compose restart SERVICE`` through the SDK: stop then start each container.

    With ``only_running`` (the packs refresh case) stopped containers stay stopped, so a
    one-shot service is not re-run by accident.
    """
    done = 0
    for c in project_containers(client, project, service):
        if only_running and c.status not in {"running", "restarting"}:
            continue
        c.restart(timeout=timeout)
        done += 1
    return f"restarted {done} container(s)" if done else "no running container"


def signal_service(client: Any, project: str, service: str, signal: str = "SIGHUP") -> str:
    """Send ``signal`` to each running container of the service."""
    done = 0
    for c in project_containers(client, project, service):
        if c.status == "running":
            c.kill(signal=signal)
            done += 1
    return f"sent {signal} to {done} container(s)" if done else "no running container"


def stop_service(client: Any, project: str, service: str, timeout: int = 10) -> str:
    done = 0
    for c in project_containers(client, project, service):
        if c.status in {"running", "restarting", "paused"}:
            c.stop(timeout=timeout)
            done += 1
    return f"stopped {done} container(s)" if done else "no running container"


def compose_argv(project: ComposeProject, cli_argv: tuple[str, ...]) -> list[str]:
    """The compose command line for ``project`` (explicit file, directory and project name)."""
    return [
        *cli_argv,
        "--project-directory",
        str(project.root),
        "-f",
        str(project.file),
        "-p",
        project.name,
    ]


async def run_compose(project: ComposeProject, *args: str, timeout: float = 600) -> str:
    """Run one compose CLI command for the project; raise :class:`ServiceError` with its output on failure."""
    from attune_console.core import compose_cli

    cli = compose_cli.detect()
    if cli is None:
        raise ServiceError("neither 'docker compose' (v2) nor 'docker-compose' (v1) is installed")
    argv = [*compose_argv(project, cli.argv), *args]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=str(project.root),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise ServiceError(f"{' '.join(argv)} did not finish within {timeout:.0f}s") from None
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        tail = "\n".join(text.strip().splitlines()[-5:])
        raise ServiceError(f"{' '.join(args)} failed (exit {proc.returncode}): {tail}")
    return text


def _missing_images(client: Any, project: ComposeProject, services: Iterable[str]) -> list[str]:
    missing = []
    for name in services:
        svc = project.services[name]
        if _image_info(client, svc.image)[0] is None:
            missing.append(f"{name} ({svc.image})")
    return missing


def _with_dependencies(project: ComposeProject, names: Iterable[str]) -> list[str]:
    seen: list[str] = []

    def visit(n: str) -> None:
        if n in seen or n not in project.services:
            return
        for dep in project.services[n].depends_on:
            visit(dep)
        seen.append(n)

    for n in names:
        visit(n)
    return seen


async def recreate_service(client: Any, project: ComposeProject, service: str) -> str:
    """``up -d --no-deps --no-build SERVICE``: run the newest built image, dependencies untouched."""
    if service not in project.services:
        raise ServiceError(f"no service {service!r} in {project.file}")
    missing = _missing_images(client, project, [service])
    if missing:
        raise ServiceError(f"image not built for {', '.join(missing)}: build it first")
    return await run_compose(project, "up", "-d", "--no-deps", "--no-build", service)


async def up_stack(client: Any, project: ComposeProject, services: Iterable[str] = ()) -> str:
    """``up -d --no-build``: the whole stack (or ``services`` and their dependencies), init-packs first.

    Compose itself orders the start by ``depends_on`` (init-packs must complete before the
    services that wait on it); images are never built here.
    """
    names = list(services) or list(project.services)
    needed = _with_dependencies(project, names)
    missing = _missing_images(client, project, needed)
    if missing:
        raise ServiceError(f"image not built for {', '.join(missing)}: build first, then start the stack")
    return await run_compose(project, "up", "-d", "--no-build", *services)
