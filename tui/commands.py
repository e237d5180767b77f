"""Command palette provider: every console action by name (Ctrl+P)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from attune_console.core.console_config import ACTIONS

if TYPE_CHECKING:
    from attune_console.tui.app import AttuneConsoleApp


def action_name(action_id: str) -> str:
    """The Textual action method suffix for a config action id (``build-stale`` -> ``build_stale``)."""
    return action_id.replace("-", "_")


class ActionsProvider(Provider):
    """Lists :data:`ACTIONS` with their current keys; runs the chosen one."""

    def _entries(self) -> list[tuple[str, str, str]]:
        app = cast("AttuneConsoleApp", self.app)
        from attune_console.tui.screens import display_key

        out = []
        for action in ACTIONS:
            key = display_key(app.config.keys.get(action.id, action.key))
            out.append((f"{action.description}", f"key {key} · {action.id}", action.id))
        return out

    async def _run(self, action_id: str) -> None:
        await self.app.run_action(action_name(action_id))

    async def discover(self) -> Hits:
        for title, help_text, action_id in self._entries():
            yield DiscoveryHit(title, partial(self._run, action_id), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, action_id in self._entries():
            score = max(matcher.match(title), matcher.match(action_id))
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self._run, action_id), help=help_text)
