"""The Jobs screen against a real config file, history and repository: "run now" runs the
real ``snapfs jobs run`` in a child process, and the screen shows what it did; the
repository's summaries show other machines' jobs too."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from snapfs.jobs.records import RunRecord
from snapfs.jobs.summary import write_summary
from tests.conftest import PASSWORD
from tests.tui.conftest import open_repo, run, wait_for
from tests.tui.test_flows import opened
from tui.app import SnapfsApp
from tui.screens.jobs import JobsScreen
from tui.units import local_time

FAR_RUN = RunRecord("lake", "failure", 1_714_600_000.0, 1_714_600_060.0, step="backup",
                    error="src: No such file or directory")  # fmt: skip
FAR_GOOD = RunRecord("lake", "success", 1_714_500_000.0, 1_714_500_030.0, snapshot="ab" * 32)


def write_config(tmp_path: Path, repo_path: Path, source: Path) -> Path:
    (tmp_path / "pass").write_text(PASSWORD + "\n")
    conf = tmp_path / "snapfs.toml"
    conf.write_text(
        f'[repositories.main]\nurl = "{repo_path}"\npassword-file = "pass"\n'
        '[jobs.broken]\nrepository = "main"\npaths = ["src"]\n'
        'before = ["sh", "-c", "echo no lake today >&2; exit 3"]\n'
        f'[jobs.lake]\nrepository = "main"\npaths = ["{source}"]\nevery = "1h"\n'
        '[daemon]\nstate-dir = "state"\n'
    )
    return conf


def rows(screen: JobsScreen, table_id: str) -> list[list[str]]:
    table = screen.query_one(f"#{table_id}", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def status(screen: JobsScreen) -> str:
    return str(screen.query_one("#jobs-status", Static).render())


async def jobs_screen(pilot: Pilot[Any]) -> JobsScreen:
    """``j`` pressed, and the screen's first reading done."""
    await pilot.press("j")
    screen = pilot.app.screen
    assert isinstance(screen, JobsScreen)
    await wait_for(pilot, lambda: screen.view is not None)
    return screen


def test_run_now_runs_the_job_and_shows_its_history(
    repo_path: Path, lake_tree: Path, tmp_path: Path
) -> None:
    conf = write_config(tmp_path, repo_path, lake_tree)
    with open_repo(repo_path) as repo:  # another machine's job, seen only in the repository
        write_summary(repo, "far-host", FAR_RUN, FAR_GOOD)

    async def flow() -> None:
        app = SnapfsApp(str(repo_path), PASSWORD, config_file=str(conf))
        async with opened(app) as pilot:
            screen = await jobs_screen(pilot)
            assert status(screen) == f"{conf} · 2 jobs"
            assert [r[:5] for r in rows(screen, "jobs")] == [
                ["broken", "main", "manual", "-", "never run"],
                ["lake", "main", "every 1h", "-", "never run"],
            ]
            assert rows(screen, "summaries") == [
                ["far-host", "lake", local_time(FAR_RUN.started), "failure",
                 local_time(FAR_GOOD.finished), "abababab"],
            ]  # fmt: skip

            await pilot.press("down", "n")
            assert rows(screen, "jobs")[1][4] == "running"
            await wait_for(pilot, lambda: not screen.running, timeout=120)
            await wait_for(pilot, lambda: len(rows(screen, "history")) == 1)
            await wait_for(pilot, lambda: app.home.table.row_count == 1)
            (snap,) = app.home.table.snapshots
            assert str(screen.query_one("#history-title", Static).render()) == "History of lake"
            ((started, _took, result, short, _added, step, error),) = rows(screen, "history")
            assert (result, short, step, error) == ("success", snap.id[:8], "", "")
            lake_row = rows(screen, "jobs")[1]
            assert (lake_row[3], lake_row[4]) == (started, "success")
            host, job, last, result, _good, short = rows(screen, "summaries")[1]
            assert (host, job, last, result, short) == (
                os.uname().nodename,
                "lake",
                started,
                "success",
                snap.id[:8],
            )

            await pilot.press("up", "n")
            await wait_for(pilot, lambda: not screen.running, timeout=120)
            await wait_for(pilot, lambda: len(rows(screen, "history")) == 1)
            ((_s, _t, result, short, _a, step, error),) = rows(screen, "history")
            assert (result, short, step) == ("failure", "-", "before")
            assert (
                error == "sh -c echo no lake today >&2; exit 3 exited with status 3: no lake today"
            )

    run(flow())


def test_without_a_config_file_the_screen_says_why_and_still_shows_summaries(
    repo_path: Path, tmp_path: Path
) -> None:
    with open_repo(repo_path) as repo:
        write_summary(repo, "far-host", FAR_GOOD, None)
    missing = tmp_path / "none.toml"

    async def flow() -> None:
        app = SnapfsApp(str(repo_path), PASSWORD, config_file=str(missing))
        async with opened(app) as pilot:
            screen = await jobs_screen(pilot)
            assert status(screen) == f"{missing}: cannot read: No such file or directory"
            assert rows(screen, "jobs") == []
            assert [r[:4] for r in rows(screen, "summaries")] == [
                ["far-host", "lake", local_time(FAR_GOOD.started), "success"]
            ]
            await pilot.press("n")
            assert not screen.running

    run(flow())
