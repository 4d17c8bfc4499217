"""The Jobs screen: every job of the config file with its schedule, last result and next
run; the highlighted job's history; what every machine's jobs last did in the open
repository (their summaries in it); and "run now"."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from snapfs.jobs.config import Config, load_config
from snapfs.jobs.history import History
from snapfs.jobs.records import RunRecord
from snapfs.jobs.status import JobStatus, job_statuses
from snapfs.jobs.summary import JobSummary, read_summaries
from tui.jobruns import RunOutcome, run_now
from tui.messages import SnapshotsChanged, WorkFailed
from tui.session import Session
from tui.units import describe, local_time, size

HISTORY_ROWS = 200  # per job: older runs stay in `snapfs jobs history`
_RESULT_STYLES = {"success": "green", "failure": "bold red", "running": "yellow"}


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def result(status: str | None) -> Text:
    return Text(status or "never run", style=_RESULT_STYLES.get(status or "", "dim"))


@dataclass(frozen=True)
class JobsView:
    """What the screen shows, read on a worker thread."""

    config: Config | None
    problem: str | None  # why there are no jobs: no config file, a bad one
    statuses: list[JobStatus]
    runs: dict[str, list[RunRecord]]  # job -> its runs, newest first
    summaries: list[JobSummary]


def read_view(config_file: str | None, session: Session | None, now: float) -> JobsView:
    """The config's jobs with their history, and the summaries in the open repository; a
    config that cannot be read is the view's problem, not an error (summaries still show)."""
    summaries = read_summaries(session.repository) if session else []
    try:
        config = load_config(config_file)
    except Exception as e:  # no config file, a bad one: say so on the screen
        return JobsView(None, describe(e), [], {}, summaries)
    history = History(config.daemon.state_dir)
    runs = {name: history.runs(name, HISTORY_ROWS) for name in config.jobs}
    return JobsView(config, None, job_statuses(config, history, now), runs, summaries)


class JobsScreen(Screen[None]):
    AUTO_FOCUS = "#jobs"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="jobs.back"),
        Binding("n", "run_now", "Run now", id="jobs.run"),
        Binding("ctrl+r", "reload", "Reload", id="jobs.reload"),
    ]

    class Loaded(Message):
        def __init__(self, view: JobsView) -> None:
            super().__init__()
            self.view = view

    class Ran(Message):
        """A run ended (``outcome``) or could not start (``error``)."""

        def __init__(self, job: str, outcome: RunOutcome | None, error: str | None) -> None:
            super().__init__()
            self.job = job
            self.outcome = outcome
            self.error = error

    def __init__(
        self,
        session: Session | None,
        config_file: str | None,
        command: Sequence[str],
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.session = session
        self.config_file = config_file
        self.command = tuple(command)
        self.now = now
        self.view: JobsView | None = None
        self.running: set[str] = set()
        self.sub_title = "jobs"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("reading the jobs…", id="jobs-status")
        yield DataTable[str | Text](id="jobs", cursor_type="row", zebra_stripes=True)
        yield Static("History", id="history-title", classes="section")
        yield DataTable[str | Text](id="history", cursor_type="row", zebra_stripes=True)
        yield Static("Recorded in this repository", id="summaries-title", classes="section")
        yield DataTable[str | Text](id="summaries", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        columns = {
            "jobs": ("Job", "Repository", "Schedule", "Last run", "Result", "Next run"),
            "history": ("Started", "Took", "Status", "Snapshot", "Added", "Failed step", "Error"),
            "summaries": ("Host", "Job", "Last run", "Result", "Last good backup", "Snapshot"),
        }
        for table_id, names in columns.items():
            table = self.query_one(f"#{table_id}", DataTable)
            for name in names:
                table.add_column(name, key=name.lower())
        self.action_reload()

    def action_reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="jobs", exit_on_error=False)
    def _load(self) -> None:
        try:
            view = read_view(self.config_file, self.session, self.now())
        except Exception as e:  # the repository's summaries cannot be listed
            self.post_message(WorkFailed("read the jobs", e))
            return
        self.post_message(self.Loaded(view))

    def on_jobs_screen_loaded(self, event: Loaded) -> None:
        self.view = view = event.view
        where = f"{view.config.path} · {count(len(view.statuses), 'job')}" if view.config else ""
        self.query_one("#jobs-status", Static).update(
            Text(view.problem, style="bold red") if view.problem else where
        )
        self._show_jobs(view.statuses)
        self._show_history()
        self._show_summaries(view.summaries)

    def _show_jobs(self, statuses: list[JobStatus]) -> None:
        table = self.query_one("#jobs", DataTable)
        row = table.cursor_row
        table.clear()
        for s in statuses:
            shown = "running" if s.job in self.running else s.result
            upcoming = local_time(s.next_run) if s.schedule else "-"
            table.add_row(s.job, s.repository, str(s.schedule or "manual"), local_time(s.last_run),
                          result(shown), upcoming, key=s.job)  # fmt: skip
        if statuses:
            table.move_cursor(row=min(row, len(statuses) - 1))

    def _show_history(self) -> None:
        table = self.query_one("#history", DataTable)
        table.clear()
        job = self.highlighted()
        self.query_one("#history-title", Static).update(f"History of {job}" if job else "History")
        for r in self.view.runs.get(job, []) if self.view and job else []:
            table.add_row(local_time(r.started), f"{r.duration:.1f}s", result(r.status),
                          (r.snapshot or "-")[:8], size(r.bytes_added), r.step or "",
                          r.error or "")  # fmt: skip

    def _show_summaries(self, summaries: list[JobSummary]) -> None:
        table = self.query_one("#summaries", DataTable)
        table.clear()
        for s in summaries:
            good = s.last_success
            table.add_row(s.host, s.job, local_time(s.started), result(s.status),
                          local_time(good.finished) if good else "never",
                          (good.snapshot or "-")[:8] if good else "-")  # fmt: skip
        if self.session is None:
            title = "Recorded in the repository: not open"
        else:
            title = (
                f"Recorded in {self.session.location}: {count(len(summaries), 'job')}, every host"
            )
        self.query_one("#summaries-title", Static).update(title)

    def highlighted(self) -> str | None:
        table = self.query_one("#jobs", DataTable)
        if not self.view or not self.view.statuses or table.cursor_row >= table.row_count:
            return None
        return self.view.statuses[table.cursor_row].job

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "jobs":
            self._show_history()

    # -- run now ----------------------------------------------------------------------
    def action_run_now(self) -> None:
        job = self.highlighted()
        if job is None or self.view is None or self.view.config is None:
            self.notify("no job highlighted", severity="warning")
            return
        if job in self.running:
            self.notify(f"{job} is running already", severity="warning")
            return
        self.running.add(job)
        self._show_jobs(self.view.statuses)
        self.notify(f"{job}: running…", title="run now")
        self._run(self.view.config, job)

    @work(thread=True, group="job-runs", exit_on_error=False)
    def _run(self, config: Config, job: str) -> None:
        try:
            self.post_message(self.Ran(job, run_now(self.command, config.path, job), None))
        except Exception as e:  # the job runs elsewhere, the config broke, snapfs failed
            self.post_message(self.Ran(job, None, f"cannot run {job}: {describe(e)}"))

    def on_jobs_screen_ran(self, event: Ran) -> None:
        self.running.discard(event.job)
        failed = event.outcome is None or event.outcome.status != "success"
        text = event.outcome.describe() if event.outcome else str(event.error)
        self.notify(text, title="run now", severity="error" if failed else "information",
                    timeout=30 if failed else 5)  # fmt: skip
        self.app.post_message(SnapshotsChanged())
        self.action_reload()

    def on_work_failed(self, event: WorkFailed) -> None:
        self.query_one("#jobs-status", Static).update(
            Text(f"cannot {event.action}: {describe(event.error)}", style="bold red")
        )
        self.notify(describe(event.error), title=f"cannot {event.action}", severity="error")
