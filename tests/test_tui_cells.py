"""Cell texts of the services table for the packs rows (pure functions of core state)."""

from __future__ import annotations

from attune_console.core.session import PACKS, PacksStatus, ServiceState
from attune_console.tui.panes import build_cell


def _packs_row(exists: bool, changed: int, state: str) -> ServiceState:
    return ServiceState("packs", kind=PACKS, build_state=state, packs=PacksStatus(exists, changed))


def test_packs_row_counts_changes_of_an_existing_volume() -> None:
    assert build_cell(_packs_row(True, 3, "stale")).plain == "3 changed"
    assert build_cell(_packs_row(True, 0, "in sync")).plain == "in sync"


def test_missing_volume_is_not_called_changed() -> None:
    assert build_cell(_packs_row(False, 5, "no volume")).plain == "no volume · 5 to copy"
