"""The Textual application (placeholder screen until the console lands)."""

from __future__ import annotations

from pathlib import Path

from textual.app import App, ComposeResult
from textual.widgets import Footer, Header, Static


class AttuneConsoleApp(App[None]):
    """attune-console's main application."""

    CSS_PATH = Path(__file__).resolve().parent.parent / "styles" / "app.tcss"
    TITLE = "attune-console"
    BINDINGS = [("q", "quit", "Quit")]

    def __init__(self, workspace: Path) -> None:
        super().__init__()
        self.workspace = workspace

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(
            f"Workspace: {self.workspace}\n\n"
            "This is a placeholder screen: the build console is not built yet.\n"
            "Press q to quit.",
            id="placeholder",
        )
        yield Footer()
