"""Asks for the repository password (again, after a wrong one). Dismisses with the
password, or None when the user gives up (escape)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class PasswordScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "give_up", "Quit", id="password.quit")]

    def __init__(self, location: str, error: str | None = None) -> None:
        super().__init__()
        self.location = location
        self.error = error

    def compose(self) -> ComposeResult:
        with Vertical(id="password-box", classes="dialog"):
            yield Label(f"Password for [b]{self.location}[/b]", markup=True, id="password-title")
            yield Input(password=True, placeholder="repository password", id="password")
            yield Label(self.error or "", id="password-error", classes="error")
            yield Label("enter: unlock · escape: quit", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value:
            self.dismiss(event.value)

    def action_give_up(self) -> None:
        self.dismiss(None)
