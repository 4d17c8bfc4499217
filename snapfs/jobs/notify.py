"""Telling someone how a job went: which event a run is (failure, recovery, success), when a
job has gone too long without a success (missed), and sending a notice to a webhook (a JSON
POST) and a command (the same fields in environment variables).

A notice that cannot be sent is one line through ``log`` and nothing more: a broken webhook
never fails the run it reports on, nor stops the daemon.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from snapfs.jobs.config import NotifyConfig
from snapfs.jobs.records import RunRecord

WEBHOOK_TIMEOUT = 10.0  # seconds: a webhook that hangs must not hold the next run back
COMMAND_TIMEOUT = 60.0


@dataclass(frozen=True)
class Notice:
    """What a notice says. For ``missed``: ``status`` is that of the job's last run (None:
    it never ran), the times and snapshot are those of its last success (None: none yet),
    and ``error`` says how long it has been."""

    job: str
    event: str  # failure, recovery, success or missed
    status: str | None
    step: str | None = None
    error: str | None = None
    snapshot: str | None = None
    started: float | None = None
    finished: float | None = None
    bytes_added: int | None = None

    @classmethod
    def of_run(cls, run: RunRecord, event: str) -> Notice:
        return cls(run.job, event, run.status, run.step, run.error, run.snapshot,
                   run.started, run.finished, run.bytes_added)  # fmt: skip

    def fields(self) -> dict[str, object]:
        """The webhook's JSON object: times both as ISO-8601 UTC and as Unix seconds."""
        return {
            "job": self.job,
            "event": self.event,
            "status": self.status,
            "step": self.step,
            "error": self.error,
            "snapshot": self.snapshot,
            "bytes_added": self.bytes_added,
            "started": iso_utc(self.started),
            "finished": iso_utc(self.finished),
            "started_unix": self.started,
            "finished_unix": self.finished,
        }

    def environment(self) -> dict[str, str]:
        """The command's variables: SNAPFS_JOB, SNAPFS_EVENT, ... ("" for a missing value)."""
        return {
            f"SNAPFS_{name.upper()}": "" if value is None else str(value)
            for name, value in self.fields().items()
        }


def iso_utc(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def should_notify(on: frozenset[str], run: RunRecord, previous: RunRecord | None) -> str | None:
    """The event ``run`` is, if ``on`` asks for it: "failure"; "recovery" (a success after a
    failed ``previous`` run); "success" (any other success, or a recovery when only
    successes are asked for); else None."""
    if run.status == "failure":
        return "failure" if "failure" in on else None
    if previous is not None and previous.status == "failure" and "recovery" in on:
        return "recovery"
    return "success" if "success" in on else None


def missed_due(
    alert_after: float, last_success: float | None, last_alert: float | None,
    watching_since: float, now: float,
) -> bool:  # fmt: skip
    """Whether to send a "missed" notice now: no success for ``alert_after`` seconds since
    the last success (never: since ``watching_since``, when the daemon started), counted
    again from the last such notice, so a long outage gets one notice per period, not one
    per tick."""
    base = max(last_success if last_success is not None else watching_since, last_alert or 0.0)
    return now - base >= alert_after


def missed_notice(
    job: str, alert_after: float, last_run: RunRecord | None, last_success: RunRecord | None
) -> Notice:
    since = f"since {iso_utc(last_success.finished)}" if last_success else "ever"
    error = f"no successful run for {_span(alert_after)} ({since})"
    if last_success is None:
        return Notice(job, "missed", last_run.status if last_run else None, error=error)
    return Notice(job, "missed", last_run.status if last_run else None, error=error,
                  snapshot=last_success.snapshot, started=last_success.started,
                  finished=last_success.finished)  # fmt: skip


def send(notify: NotifyConfig, notice: Notice, log: Callable[[str], None]) -> bool:
    """Send ``notice`` to the webhook and the command ``notify`` names. True when every one
    took it; each that did not is one line through ``log``. Never raises."""
    ok = True
    if notify.webhook:
        ok &= _attempt(f"webhook {notify.webhook}", lambda: _post(notify.webhook, notice), log)
    if notify.command:
        ok &= _attempt(f"command {notify.command[0]}", lambda: _run(notify.command, notice), log)
    return ok


def _attempt(what: str, action: Callable[[], None], log: Callable[[str], None]) -> bool:
    try:
        action()
    except Exception as e:  # any failure is one line: the run it reports on stands
        log(f"notify: {what}: {_reason(e)}")
        return False
    return True


def _post(url: str | None, notice: Notice) -> None:
    assert url is not None
    body = json.dumps(notice.fields()).encode()
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "snapfs"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:
        response.read()  # a 2xx; urlopen raises HTTPError for the rest


def _run(command: tuple[str, ...], notice: Notice) -> None:
    done = subprocess.run(
        command, env={**os.environ, **notice.environment()}, stdin=subprocess.DEVNULL,
        capture_output=True, timeout=COMMAND_TIMEOUT, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        last = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"exit {done.returncode}" + (f": {last[0]}" if last else ""))


def _reason(e: Exception) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    if isinstance(e, subprocess.TimeoutExpired):
        return f"no answer in {e.timeout:g} s"
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e) or type(e).__name__


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
