"""The engine never solves no-cache and cached builds at once (Docker 20.10's BuildKit panics on it)."""

from __future__ import annotations

import asyncio

from attune_console.core.engine import CacheModeGate


async def _worker(gate: CacheModeGate, no_cache: bool, log: list[tuple[str, bool]], hold: float) -> None:
    async with gate.hold(no_cache):
        log.append(("start", no_cache))
        await asyncio.sleep(hold)
        log.append(("end", no_cache))


def _max_mixed(log: list[tuple[str, bool]]) -> bool:
    running: list[bool] = []
    for event, mode in log:
        if event == "start":
            running.append(mode)
            if len(set(running)) > 1:
                return True
        else:
            running.remove(mode)
    return False


async def test_same_mode_runs_together() -> None:
    gate = CacheModeGate()
    log: list[tuple[str, bool]] = []
    await asyncio.gather(*(_worker(gate, False, log, 0.05) for _ in range(3)))
    assert [e for e, _ in log[:3]] == ["start"] * 3  # all three overlapped


async def test_modes_never_overlap() -> None:
    gate = CacheModeGate()
    log: list[tuple[str, bool]] = []
    modes = [False, True, False, True, True, False]
    await asyncio.gather(*(_worker(gate, m, log, 0.02) for m in modes))
    assert len(log) == 2 * len(modes)
    assert not _max_mixed(log)
    assert gate.active == 0


async def test_cancelled_waiter_releases_nothing_it_did_not_take() -> None:
    gate = CacheModeGate()
    log: list[tuple[str, bool]] = []
    first = asyncio.create_task(_worker(gate, False, log, 0.1))
    await asyncio.sleep(0.01)
    waiter = asyncio.create_task(_worker(gate, True, log, 0.0))
    await asyncio.sleep(0.01)
    waiter.cancel()
    await asyncio.gather(first, waiter, return_exceptions=True)
    assert ("start", True) not in log
    assert gate.active == 0
    # the gate still works afterwards
    await _worker(gate, True, log, 0.0)
    assert log[-1] == ("end", True)
