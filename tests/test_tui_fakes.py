"""A scripted fake backend for the UI tests (rendering and dispatch only; no Docker).

The real backend is exercised by the end-to-end test; here every build is a script
of steps so a test can hold a build mid-way, fail it, or cancel it deterministically.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from attune_console.core.errors import AttuneError, DockerUnavailable
from attune_console.core.progress import BuildRun, RunState
from attune_console.core.session import (
    PACK_BINARIES,
    ContainerStatus,
    Impact,
    PacksStatus,
    ServiceImpact,
)

T0 = 1_700_000_000.0  # fixed clock for stable snapshots


@dataclass
class Step:
    name: str
    state: str  # cached | done | error | hold (stays running until released)
    seconds: float = 1.0
    log: tuple[str, ...] = ()


def api_steps(first_miss: str = "done", error: bool = False) -> list[Step]:
    steps = [
        Step("[internal] load build definition from Dockerfile.optimized", "done", 0.1),
        Step("[planner 1/6] FROM docker.io/library/rust:1.83-bookworm", "done", 0.0),
        Step("[planner 2/6] WORKDIR /build", "cached"),
        Step("[planner 3/6] COPY Cargo.toml Cargo.lock ./", "cached"),
        Step("[planner 4/6] COPY crates/common/Cargo.toml ./crates/common/Cargo.toml", "cached"),
        Step("[planner 5/6] RUN mkdir -p crates/common/src", "cached"),
        Step("[planner 6/6] RUN cargo build --release --bin attune-api", "cached"),
        Step("[builder 2/4] COPY crates/common/ ./crates/common/", "cached"),
        Step("[builder 3/4] COPY crates/api/ ./crates/api/", first_miss, 0.2, ("copying",)),
    ]
    if error:
        steps.append(
            Step(
                "[builder 4/4] RUN cargo build --release --bin attune-api",
                "error",
                3.5,
                (
                    "   Compiling attune-api v0.1.0 (/build/crates/api)",
                    "\x1b[1m\x1b[31merror[E0425]\x1b[0m: cannot find value `x` in this scope",
                    "error: could not compile `attune-api` due to previous error",
                ),
            )
        )
    else:
        steps.append(
            Step(
                "[builder 4/4] RUN cargo build --release --bin attune-api",
                "done",
                12.3,
                ("   Compiling attune-api v0.1.0 (/build/crates/api)", "    Finished release [optimized]"),
            )
        )
        steps.append(Step("[runtime 2/3] COPY --from=builder /build/attune-api /usr/local/bin/", "done", 0.3))
        steps.append(Step("exporting to image", "done", 0.4))
    return steps


@dataclass
class FakeBackend:
    """Scripted stand-in for the Docker backend; records every call."""

    service_names: list[str] = field(
        default_factory=lambda: ["init-packs", "api", "executor", "worker-shell", "sensor", "notifier"]
    )
    scripts: dict[str, list[Step]] = field(default_factory=dict)
    daemon_up: bool = True
    calls: list[tuple[str, ...]] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    step_delay: float = 0.0
    fixed_clock: bool = True
    impact_result: Impact = field(default_factory=Impact)
    fail_restart: str | None = None
    logs: list[tuple[str, str]] = field(default_factory=list)
    status: dict[str, ContainerStatus] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)

    def recent_durations(self, target: str) -> list[float]:
        return list(self.history.get(target, []))

    def targets(self) -> list[str]:
        return [s for s in self.service_names if s != "init-packs"]

    def services(self) -> list[str]:
        return list(self.service_names)

    async def ping(self) -> None:
        if not self.daemon_up:
            raise DockerUnavailable("Cannot connect to the Docker daemon at unix:///var/run/docker.sock")

    async def container_status(self) -> dict[str, ContainerStatus]:
        return dict(self.status)

    async def build(self, target: str, *, no_cache: bool, on_run: Callable[[BuildRun], None]) -> BuildRun:
        self.calls.append(("build", target, "no-cache" if no_cache else ""))
        if not self.daemon_up:
            raise DockerUnavailable("Docker daemon not reachable")
        run = BuildRun(target, image=f"demo-{target}")
        on_run(run)
        run.start()
        if self.fixed_clock:
            run.started = T0
        clock = T0
        script = self.scripts.get(target) or api_steps()
        for i, step in enumerate(script):
            digest = f"sha256:{target}-{i:02d}"
            start = clock
            if step.state == "hold":
                run.apply_vertex(digest, step.name, started=start, completed=None, cached=False)
                for line in step.log:
                    run.apply_log(digest, 1, line + "\n")
                run.flush()
                await self.released.wait()
                run.apply_vertex(
                    digest, step.name, started=start, completed=start + step.seconds, cached=False
                )
                run.flush()
                clock += step.seconds
                continue
            end = start + step.seconds
            run.apply_vertex(digest, step.name, started=start, completed=None, cached=False)
            for line in step.log:
                run.apply_log(digest, 2 if step.state == "error" else 1, line + "\n")
            run.apply_vertex(
                digest,
                step.name,
                started=start,
                completed=end,
                cached=step.state == "cached",
                error="process did not complete successfully: exit code: 101"
                if step.state == "error"
                else "",
            )
            run.flush()
            clock = end
            if self.step_delay:
                await asyncio.sleep(self.step_delay)
            if step.state == "error":
                run.finish(RunState.ERROR, error="build failed")
                if self.fixed_clock:
                    run.finished = clock
                return run
        run.finish(RunState.DONE, image_id="sha256:feedface")
        if self.fixed_clock:
            run.finished = clock
        return run

    async def impact(self, paths: Sequence[str]) -> Impact:
        self.calls.append(("impact", *paths))
        return self.impact_result

    async def packs_status(self) -> PacksStatus:
        return PacksStatus(volume_exists=True, changed=0)

    async def refresh_packs(self, after: str) -> str:
        self.calls.append(("refresh-packs", after))
        return f"1 file changed, {after} api"

    async def install_pack_binaries(self, run: BuildRun) -> str:
        self.calls.append(("install-pack-binaries",))
        return "attune-core-timer-sensor installed"

    async def restart(self, service: str) -> None:
        self.calls.append(("restart", service))
        if service == self.fail_restart:
            raise AttuneError(f"no container for service {service}")

    async def recreate(self, service: str) -> None:
        self.calls.append(("recreate", service))

    async def up(self) -> None:
        self.calls.append(("up",))

    async def follow_logs(self, services: Sequence[str], sink: Callable[[str, str], None]) -> None:
        for svc, line in self.logs:
            sink(svc, line)
        await asyncio.Event().wait()


def stale_api() -> Impact:
    return Impact(
        services={
            "api": ServiceImpact(
                "builder", "COPY crates/api/ ./crates/api/", "crates/api/src/main.rs changed"
            )
        }
    )


WORKSPACE = Path("/work/demo")
__all__ = ["PACK_BINARIES", "WORKSPACE", "FakeBackend", "Step", "api_steps", "stale_api"]
