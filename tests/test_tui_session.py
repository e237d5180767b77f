"""The console core on the real workspace model (no Docker needed): impact marks rows stale quickly."""

from __future__ import annotations

import time
from pathlib import Path

from attune_console.core.console_config import ConsoleConfig
from attune_console.core.session import PACKS, ConsoleSession, DockerBackend


async def test_real_impact_marks_only_api_stale_with_the_missing_step(demo_copy: Path) -> None:
    backend = DockerBackend(demo_copy, ConsoleConfig())
    session = ConsoleSession(demo_copy, backend)
    assert "api" in session.rows and session.rows["api"].buildable
    assert not session.rows["init-packs"].buildable
    (demo_copy / "crates" / "api" / "src" / "main.rs").write_text(
        (demo_copy / "crates" / "api" / "src" / "main.rs").read_text() + "\n// edited\n"
    )
    t0 = time.perf_counter()
    impact = await session.on_changes(["crates/api/src/main.rs"])
    elapsed = time.perf_counter() - t0
    assert impact is not None
    assert elapsed < 0.2, f"impact took {elapsed * 1000:.0f} ms"
    api = session.rows["api"]
    assert api.build_state == "stale" and api.stale is not None
    assert api.stale.stage == "builder"
    assert api.stale.instruction is not None and "COPY crates/api/" in api.stale.instruction
    assert "crates/api/src/main.rs" in api.stale.reason
    assert [n for n, r in session.rows.items() if r.build_state == "stale"] == ["api"]


async def test_real_impact_of_a_pack_edit_marks_the_packs_row(demo_copy: Path) -> None:
    session = ConsoleSession(demo_copy, DockerBackend(demo_copy, ConsoleConfig()))
    action = next((demo_copy / "packs" / "core" / "actions").glob("*.yaml"))
    action.write_text(action.read_text() + "\n# edited\n")
    impact = await session.on_changes([str(action.relative_to(demo_copy))])
    assert impact is not None and impact.packs_refresh
    assert session.rows[PACKS].build_state == "stale"
    assert [n for n, r in session.rows.items() if r.kind == "service" and r.build_state == "stale"] == []
