"""Progress of a running backup or restore, redrawn from a Tally a few times a second (the
operation's events arrive on its worker threads; the Tally is the thread-safe meeting
point, so the loop never handles an event per chunk)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.timer import Timer
from textual.widgets import ProgressBar, Static

from snapfs import Tally
from snapfs.progress import TallyView
from tui.units import clock, size

REFRESH_SECONDS = 0.25


def describe_progress(view: TallyView) -> str:
    files = f"{view.files:,}" + (f" / {view.total_files:,}" if view.total_files else "")
    done = size(view.bytes) + (f" / {size(view.total_bytes)}" if view.total_bytes else "")
    parts = [f"{files} files", done, f"{size(view.rate)}/s", f"ETA {clock(view.eta)}"]
    if view.warnings:
        parts.append(f"{view.warnings} warnings")
    return " · ".join(parts)


class TaskProgress(Vertical):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._tally: Tally | None = None
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield ProgressBar(total=100, show_eta=False, id="bar")
        yield Static("not started", id="progress-line")

    def start(self, tally: Tally) -> None:
        self._tally = tally
        bar = self.query_one(ProgressBar)
        bar.update(total=None, progress=0)
        self.query_one("#progress-line", Static).update("starting…")
        self._timer = self.set_interval(REFRESH_SECONDS, self.redraw)

    def stop(self, message: str) -> None:
        """Stop polling; show the final counts and ``message``."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.redraw()
        if self._tally is not None:
            view = self._tally.view()
            bar = self.query_one(ProgressBar)
            bar.update(total=max(view.bytes, 1), progress=max(view.bytes, 1))
        self.query_one("#progress-line", Static).update(message)

    def redraw(self) -> None:
        if self._tally is None:
            return
        view = self._tally.view()
        bar = self.query_one(ProgressBar)
        if view.total_bytes:
            bar.update(total=view.total_bytes, progress=min(view.bytes, view.total_bytes))
        self.query_one("#progress-line", Static).update(describe_progress(view))
