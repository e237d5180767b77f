"""Modal screens: the help screen (every key) and a yes/no confirmation."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from attune_console.core.console_config import ACTIONS


def display_key(key: str) -> str:
    """A Textual key spec as a user reads it (``question_mark`` -> ``?``, ``ctrl+b`` -> ``Ctrl+B``)."""
    names = {"question_mark": "?", "slash": "/", "escape": "Esc", "enter": "Enter", "space": "Space"}
    out = []
    for k in key.split(","):
        if k.startswith("ctrl+"):
            out.append("Ctrl+" + k[5:].upper())
        else:
            out.append(names.get(k, k))
    return " / ".join(out)


class HelpScreen(ModalScreen[None]):
    """Every action with its current key (after rebinds), plus navigation keys."""

    BINDINGS = [
        Binding("escape,q,question_mark", "dismiss", "Close", show=True),
    ]

    def __init__(self, keys: dict[str, str]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=True, header_style="bold", expand=True, pad_edge=False)
        table.add_column("Key", style="bold cyan", no_wrap=True)
        table.add_column("Action")
        self.rows = [(display_key(self.keys.get(a.id, a.key)), a.description) for a in ACTIONS]
        for key, description in self.rows:
            table.add_row(key, description)
        table.add_row("", "")
        for key, words in (
            ("↑ ↓ / Tab", "Move in a table / next pane"),
            ("Enter", "Select a step: show its log"),
            ("Ctrl+P", "Command palette: every action by name"),
            ("Esc", "Close a dialog, leave search"),
        ):
            table.add_row(key, words)
        with Vertical(id="help-box"):
            yield Static(Text("attune-console keys", style="bold"), id="help-title")
            with VerticalScroll():
                yield Static(table, id="help-table")
            yield Static(
                Text(
                    "Rebind keys in ~/.config/attune-console/config.toml or <workspace>/attune-console.toml, "
                    'e.g. [keys] build = "f5".'
                ),
                id="help-hint",
            )

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)


class ConfirmScreen(ModalScreen[bool]):
    """A question with Yes / No; ``y`` / ``n`` answer too."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self.question, id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")
