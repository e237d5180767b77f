"""Bench: the console under a log flood. Prints measured figures; not a test.

A headless console (Textual's ``run_test``) on a backend that builds nothing; a producer thread
appends 100,000 log lines (~60 characters) to the session's container-log buffer in bursts
(default 10 bursts of 10,000 lines, one burst per second: 10k lines/s). Meanwhile a key press
(``down`` / ``up`` on the services table) is posted every 50 ms and its latency measured from
posting the key to the table's row-highlight handler having run and the screen being refreshed.

Printed:
- lines/s rendered: lines that reached the log widget divided by the time from the first line
  produced to the last line shown; ratio against a bare ``Log.write_lines`` app fed the same
  lines in the same bursts (the baseline, measured in the same run);
- key-to-render latency during the flood (median, p95, worst) and the same while idle;
- peak RSS of the process (``ru_maxrss``; includes the baseline app run first).

Usage: python bench/bench_tui.py [--lines 100000] [--bursts 10] [--interval 1.0]
Targets (issue 6): worst key latency under 100 ms, peak memory under 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from textual import events
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Log

from attune_console.core.console_config import ConsoleConfig
from attune_console.core.errors import AttuneError
from attune_console.core.progress import BuildRun
from attune_console.core.session import ConsoleSession, ContainerStatus, Impact, PacksStatus
from attune_console.tui.app import AttuneConsoleApp
from attune_console.tui.logview import LogView

SERVICES = ["init-packs", "api", "executor", "worker-shell", "sensor", "notifier"]


class QuietBackend:
    """Daemon up, nothing running, no log follower: the bench feeds the buffer itself."""

    def targets(self) -> list[str]:
        return SERVICES[1:]

    def services(self) -> list[str]:
        return list(SERVICES)

    async def ping(self) -> None:
        return None

    async def container_status(self) -> dict[str, ContainerStatus]:
        return {s: ContainerStatus("running") for s in SERVICES[1:]}

    async def build(self, target: str, *, no_cache: bool, on_run: Callable[[BuildRun], None]) -> BuildRun:
        raise AttuneError("bench backend builds nothing")

    async def impact(self, paths: Sequence[str]) -> Impact:
        return Impact()

    async def packs_status(self) -> PacksStatus:
        return PacksStatus(True, 0)

    async def refresh_packs(self, after: str) -> str:
        return "nothing"

    async def install_pack_binaries(self, run: BuildRun) -> str:
        return "nothing"

    async def restart(self, service: str) -> None:
        return None

    async def recreate(self, service: str) -> None:
        return None

    async def up(self) -> None:
        return None

    async def follow_logs(self, services: Sequence[str], sink: Callable[[str, str], None]) -> None:
        await asyncio.Event().wait()


def make_lines(n: int) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        svc = SERVICES[1 + i % 5]
        out.append((svc, f"2026-12-04T16:00:{i % 60:02d}Z attune-{svc} INFO heartbeat seq={i:07d} ok"))
    return out


def produce(
    sink: Callable[[list[tuple[str, str]]], None], lines: list[tuple[str, str]], bursts: int, interval: float
) -> None:
    size = len(lines) // bursts
    start = time.perf_counter()
    for b in range(bursts):
        sink(lines[b * size : (b + 1) * size])
        next_at = start + (b + 1) * interval
        time.sleep(max(0.0, next_at - time.perf_counter()))


async def key_latencies(
    app: App[None], table: DataTable[object], stop: Callable[[], bool], period: float
) -> list[float]:
    """Post down/up keys every ``period`` s; latency = post -> highlight handled -> next refresh."""
    out: list[float] = []
    direction = "down"
    while not stop():
        seen = table.cursor_row
        t0 = time.perf_counter()
        app.post_message(events.Key(direction, None))
        while table.cursor_row == seen:
            await asyncio.sleep(0)
        # One more loop turn lets the compositor refresh the changed rows.
        await asyncio.sleep(0)
        out.append(time.perf_counter() - t0)
        direction = "up" if direction == "down" else "down"
        await asyncio.sleep(period)
    return out


async def bench_console(
    lines: list[tuple[str, str]], bursts: int, interval: float
) -> dict[str, float | list[float]]:
    config = ConsoleConfig(log_lines=max(100_000, len(lines)))
    session = ConsoleSession(Path("/bench"), QuietBackend(), config)
    app = AttuneConsoleApp(Path("/bench"), session=session, config=config)
    buffer = session.container_logs

    def sink(batch: list[tuple[str, str]]) -> None:
        # What the real follower does: one append per line, from a thread.
        for svc, text in batch:
            buffer.append(text, svc)

    async with app.run_test(size=(160, 50), headless=True) as pilot:
        await pilot.pause(0.3)
        tabs = app._main.query_one("#log-tabs")
        tabs.active = "tab-containers"  # type: ignore[attr-defined]
        view = app._main.query_one("#container-log", LogView)
        table = app.services_table
        table.focus()
        await pilot.pause(0.2)
        idle = await key_latencies(app, table, _after(1.0), 0.05)
        producer = threading.Thread(target=produce, args=(sink, lines, bursts, interval), daemon=True)
        t0 = time.perf_counter()
        producer.start()
        flood_done = threading.Event()

        def stop() -> bool:
            return flood_done.is_set()

        lat_task = asyncio.create_task(key_latencies(app, table, stop, 0.05))
        while view.line_count < len(lines):
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - t0
        flood_done.set()
        busy = await lat_task
        producer.join()
    return {"elapsed": elapsed, "idle": idle, "busy": busy, "dropped": float(buffer.dropped + view.missed)}


def _after(seconds: float) -> Callable[[], bool]:
    end = time.perf_counter() + seconds
    return lambda: time.perf_counter() >= end


class BareLogApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Log(max_lines=100_000)


async def bench_bare(lines: list[tuple[str, str]], bursts: int, interval: float) -> float:
    """Baseline: the same bursts written straight into a plain Log with one write_lines per burst."""
    app = BareLogApp()
    async with app.run_test(size=(160, 50), headless=True) as pilot:
        log = app.query_one(Log)
        await pilot.pause(0.2)
        size = len(lines) // bursts
        t0 = time.perf_counter()
        for b in range(bursts):
            log.write_lines([f"{svc:>12} | {text}" for svc, text in lines[b * size : (b + 1) * size]])
            await asyncio.sleep(
                max(0.0, t0 + (b + 1) * interval - time.perf_counter()) if b < bursts - 1 else 0
            )
        while log.line_count < len(lines):
            await asyncio.sleep(0.01)
        await pilot.pause()
        return time.perf_counter() - t0


def ms(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", type=int, default=100_000)
    p.add_argument("--bursts", type=int, default=10)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between bursts")
    args = p.parse_args(argv)
    lines = make_lines(args.lines)
    base = asyncio.run(bench_bare(lines, args.bursts, args.interval))
    result = asyncio.run(bench_console(lines, args.bursts, args.interval))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    elapsed = float(result["elapsed"])  # type: ignore[arg-type]
    idle = list(result["idle"])  # type: ignore[arg-type]
    busy = list(result["busy"])  # type: ignore[arg-type]
    rate = len(lines) / elapsed
    base_rate = len(lines) / base
    offered = len(lines) / (args.bursts * args.interval)
    print(
        f"lines: {len(lines):,} in {args.bursts} bursts every {args.interval:.2f} s "
        f"(offered {offered:,.0f} lines/s)"
    )
    print(f"console: all lines shown after {elapsed:.2f} s -> {rate:,.0f} lines/s rendered")
    print(
        f"bare Log.write_lines baseline: {base:.2f} s -> {base_rate:,.0f} lines/s "
        f"(console/bare time {elapsed / base:.2f}x)"
    )
    print(f"dropped lines: {int(float(result['dropped']))}")  # type: ignore[arg-type]
    print(
        f"key-to-render latency idle:  median {statistics.median(idle) * 1000:.1f} ms, "
        f"p95 {ms(idle, 0.95):.1f} ms, worst {max(idle) * 1000:.1f} ms ({len(idle)} keys)"
    )
    print(
        f"key-to-render latency flood: median {statistics.median(busy) * 1000:.1f} ms, "
        f"p95 {ms(busy, 0.95):.1f} ms, worst {max(busy) * 1000:.1f} ms ({len(busy)} keys) "
        f"[target < 100 ms: {'met' if max(busy) < 0.1 else 'NOT met'}]"
    )
    print(
        f"peak memory (RSS of the whole process): {rss_mb:.0f} MB "
        f"[target < 300 MB: {'met' if rss_mb < 300 else 'NOT met'}]"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
