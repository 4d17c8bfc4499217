"""``snapfs jobs``: the config file's jobs: list them, run one now, show their history."""

from __future__ import annotations

import time
from datetime import datetime

import click
from rich.table import Table

from snapfs.cli.main import EXIT_ERROR, EXIT_OK, Context, pass_ctx
from snapfs.cli.render import cell, emit_json, say, stdout
from snapfs.humanize import local_time
from snapfs.jobs.config import Config, load_config
from snapfs.jobs.history import History
from snapfs.jobs.records import RunRecord, StepResult
from snapfs.jobs.status import job_statuses
from snapfs.jobs.summary import JobSummary, read_summaries


@click.group("jobs")
def group() -> None:
    """The jobs of the config file (--config FILE, else $SNAPFS_CONFIG, else
    ~/.config/snapfs/snapfs.toml, else /etc/snapfs/snapfs.toml): each backs up its paths
    into its repository, forgets by its keep rules, copies to its replicas, and prunes,
    checks and drills a restore when those fall due. A bad config file: exit 2.

    \b
    Examples:
      snapfs jobs list
      snapfs --config /etc/snapfs/lake.toml jobs run lake
      snapfs jobs history lake --json
      snapfs -r /backups/lake jobs summaries
    """


def _config(ctx: Context) -> Config:
    return load_config(ctx.config_file)


def when(t: float | None) -> str | None:
    """A Unix time as ISO 8601 in local time, to the second (JSON)."""
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds") if t else None


def run_json(run: RunRecord) -> dict[str, object]:
    return {
        "job": run.job, "status": run.status, "started": when(run.started),
        "finished": when(run.finished), "snapshot": run.snapshot, "bytes_added": run.bytes_added,
        "step": run.step, "error": run.error,
        "steps": [{"step": s.step, "ok": s.ok, "started": when(s.started),
                   "finished": when(s.finished), "error": s.error, "detail": s.detail}
                  for s in run.steps],
    }  # fmt: skip


@group.command("list", short_help="Each job: its schedule, last run and result, next run.")
@click.option("--json", "as_json", is_flag=True, help="The jobs as a JSON list.")
@pass_ctx
def list_command(ctx: Context, as_json: bool) -> None:
    """Each job: its schedule, its last run and result, its next run."""
    config = _config(ctx)
    rows = [
        {"job": s.job, "repository": s.repository,
         "schedule": str(s.schedule) if s.schedule else None,
         "last_run": s.last_run, "result": s.result, "next_run": s.next_run}
        for s in job_statuses(config, History(config.daemon.state_dir), time.time())
    ]  # fmt: skip
    if as_json:
        emit_json([{**r, "last_run": when(r["last_run"]), "next_run": when(r["next_run"])}  # type: ignore[arg-type]
                   for r in rows])  # fmt: skip
        return
    table = Table(box=None, header_style="bold")
    for col in ("Job", "Schedule", "Last run", "Result", "Next run"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            cell(str(r["job"])), cell(str(r["schedule"] or "manual")),
            local_time(r["last_run"]), str(r["result"] or "-"),  # type: ignore[arg-type]
            local_time(r["next_run"]) if r["schedule"] else "-",  # type: ignore[arg-type]
        )  # fmt: skip
    stdout().print(table)


@group.command("run", short_help="Run job NAME once, now; exit 0 only if every step passed.")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="The run as one JSON object.")
@pass_ctx
def run_command(ctx: Context, name: str, as_json: bool) -> int:
    """Run job NAME once, now: before hook, backup, forget, prune (when due), copy to each
    replica, check and drill (when due), after hook. A line per step on stderr; exit 0
    only if every step passed, else 1."""
    from snapfs.jobs.runner import run_job

    config = _config(ctx)

    def on_step(s: StepResult) -> None:
        if ctx.quiet and s.ok:
            return
        took = f"{s.finished - s.started:.1f}s"
        say(f"{name}: {s.step} ok ({took}){': ' + s.detail if s.detail else ''}"
            if s.ok else f"{name}: {s.step} failed ({took}): {s.error}")  # fmt: skip

    run = run_job(config, name, on_step=on_step)
    if as_json:
        emit_json(run_json(run))
    elif run.status == "success":
        if not ctx.quiet:
            say(f"{name}: success in {run.duration:.1f}s")
    else:
        say(f"{name}: failed at {run.step}: {run.error}")
    return EXIT_OK if run.status == "success" else EXIT_ERROR


@group.command("history", short_help="The runs of job NAME (or of every job), newest first.")
@click.argument("name", required=False)
@click.option("-n", "--limit", type=click.IntRange(min=1), help="Only the newest N runs.")
@click.option("--json", "as_json", is_flag=True, help="The runs as a JSON list.")
@pass_ctx
def history_command(ctx: Context, name: str | None, limit: int | None, as_json: bool) -> None:
    """The runs of job NAME (of every job when none is named), newest first."""
    config = _config(ctx)
    if name is not None and name not in config.jobs:
        raise click.UsageError(f"no job {name!r} in {config.path}")
    runs = History(config.daemon.state_dir).runs(name, limit)
    if as_json:
        emit_json([run_json(r) for r in runs])
        return
    table = Table(box=None, header_style="bold")
    for col in ("Job", "Started", "Took", "Status", "Snapshot", "Added", "Failed step", "Error"):
        table.add_column(col)
    for r in runs:
        table.add_row(
            cell(r.job), local_time(r.started), f"{r.duration:.1f}s", r.status,
            (r.snapshot or "-")[:8], str(r.bytes_added), r.step or "", cell(r.error or ""),
        )  # fmt: skip
    stdout().print(table)


@group.command("summaries", short_help="What every machine's jobs last did in the repository.")
@click.option("--json", "as_json", is_flag=True, help="The summaries as a JSON list.")
@pass_ctx
def summaries_command(ctx: Context, as_json: bool) -> None:
    """What every machine's jobs last did in the repository (-r): each job's last run and
    result, and its last good backup. Runs summarise themselves there, so this needs no
    config file and answers for jobs that run on other machines.

    \b
    Example:
      snapfs -r s3://backups/lake jobs summaries
    """
    with ctx.open() as repo:
        summaries = read_summaries(repo)
    if as_json:
        emit_json([summary_json(s) for s in summaries])
        return
    table = Table(box=None, header_style="bold")
    for col in ("Host", "Job", "Last run", "Result", "Failed step", "Last good backup", "Snapshot"):
        table.add_column(col)
    for s in summaries:
        good = s.last_success
        good_time = local_time(good.finished) if good else "never"
        good_snapshot = (good.snapshot or "-")[:8] if good else "-"
        table.add_row(cell(s.host), cell(s.job), local_time(s.started), s.status, s.step or "",
                      good_time, good_snapshot)  # fmt: skip
    stdout().print(table)


def summary_json(s: JobSummary) -> dict[str, object]:
    good = s.last_success
    return {
        "host": s.host, "job": s.job, "status": s.status, "started": when(s.started),
        "finished": when(s.finished), "snapshot": s.snapshot, "step": s.step, "error": s.error,
        "last_success": {"started": when(good.started), "finished": when(good.finished),
                         "snapshot": good.snapshot} if good else None,
    }  # fmt: skip
