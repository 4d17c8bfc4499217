"""Each job's last run, summarised inside its repository (``jobs/<id>``, docs/FORMAT.md), so
another machine, or the TUI, can see when the job last made a good backup without this
machine's history file."""

from __future__ import annotations

import msgspec

from snapfs.jobs.records import RunRecord
from snapfs.repository import Repository

SUMMARY_VERSION = 1


class LastGood(msgspec.Struct, frozen=True):
    started: float
    finished: float
    snapshot: str | None


class JobSummary(msgspec.Struct, frozen=True, kw_only=True):
    version: int = SUMMARY_VERSION
    job: str
    host: str
    status: str  # of the last run: "success" or "failure"
    started: float
    finished: float
    snapshot: str | None = None
    step: str | None = None  # the failing step
    error: str | None = None
    last_success: LastGood | None = None


def write_summary(
    repo: Repository, host: str, run: RunRecord, last_success: RunRecord | None
) -> None:
    """Replace the summary of (host, job) with ``run``'s; ``last_success`` is the newest
    successful run, ``run`` itself when it succeeded."""
    good = last_success if run.status != "success" else run
    summary = JobSummary(
        job=run.job, host=host, status=run.status, started=run.started, finished=run.finished,
        snapshot=run.snapshot, step=run.step, error=run.error,
        last_success=LastGood(good.started, good.finished, good.snapshot) if good else None,
    )  # fmt: skip
    repo.save_job_summary(repo.job_summary_id(host, run.job), msgspec.json.encode(summary))


def read_summaries(repo: Repository) -> list[JobSummary]:
    """The summaries stored, by host and job; one of a newer version than this snapfs knows
    is left out rather than misread."""
    out = []
    for plain in repo.job_summaries():
        try:
            summary = msgspec.json.decode(plain, type=JobSummary)
        except msgspec.ValidationError:
            continue
        if summary.version <= SUMMARY_VERSION:
            out.append(summary)
    return sorted(out, key=lambda s: (s.host, s.job))
