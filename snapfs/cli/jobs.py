"""``snapfs jobs``: the config file's jobs: list them, run one now, show their history."""

from __future__ import annotations

import time
from datetime import datetime

import click
from rich.table import Table

from snapfs.cli.main import EXIT_ERROR, EXIT_OK, Context, pass_ctx
from snapfs.cli.render import cell, emit_json, say, stdout
from snapfs.jobs.config import Config, load_config
from snapfs.jobs.history import History
from snapfs.jobs.records import RunRecord, StepResult
from snapfs.jobs.schedule import next_run


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
    """


def _config(ctx: Context) -> Config:
    return load_config(ctx.config_file)


def when(t: float | None) -> str | None:
    """A Unix time as ISO 8601 in local time, to the second (JSON)."""
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds") if t else None


def _shown(t: float | None) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else "-"


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
    history = History(config.daemon.state_dir)
    now = time.time()
    rows = []
    for name, job in sorted(config.jobs.items()):
        last = history.last(name)
        started = last.started if last else None
        upcoming = next_run(job.schedule, started, now) if job.schedule else None
        rows.append({
            "job": name, "repository": job.repository,
            "schedule": str(job.schedule) if job.schedule else None,
            "last_run": started, "result": last.status if last else None, "next_run": upcoming,
        })  # fmt: skip
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
            _shown(r["last_run"]), str(r["result"] or "-"),  # type: ignore[arg-type]
            _shown(r["next_run"]) if r["schedule"] else "-",  # type: ignore[arg-type]
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
            cell(r.job), _shown(r.started), f"{r.duration:.1f}s", r.status,
            (r.snapshot or "-")[:8], str(r.bytes_added), r.step or "", cell(r.error or ""),
        )  # fmt: skip
    stdout().print(table)
