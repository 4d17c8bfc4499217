"""Runs of a job started from the TUI. Each is ``snapfs jobs run NAME --json`` in a child
process of its own session: a job's hooks and backup must not write over the screen, and
quitting the TUI must not cut a run short (the run goes on, and lands in the history)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from snapfs import SnapfsError
from tui.children import failure_reason


class RunFailed(SnapfsError):
    """The run did not happen: the job runs already, the config broke, snapfs failed."""


@dataclass(frozen=True)
class RunOutcome:
    job: str
    status: str  # "success" or "failure"
    snapshot: str | None
    step: str | None  # the failing step
    error: str | None

    def describe(self) -> str:
        if self.status == "success":
            made = f": snapshot {self.snapshot[:8]}" if self.snapshot else ""
            return f"{self.job}: success{made}"
        return f"{self.job}: failed at {self.step}: {self.error}"


def run_now(command: Sequence[str], config: Path, job: str) -> RunOutcome:
    """Run ``job`` of ``config`` once, now, and wait for it (call from a worker thread)."""
    done = subprocess.run(
        [*command, "--config", str(config.absolute()), "jobs", "run", job, "--json"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,
    )
    try:
        record = json.loads(done.stdout)
    except ValueError:
        raise RunFailed(failure_reason(done)) from None
    return RunOutcome(job, record["status"], record["snapshot"], record["step"], record["error"])
