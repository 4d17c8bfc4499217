"""``snapfs daemon``: the config's jobs on their schedules, in the foreground, until stopped.

- **One run at a time.** Jobs that fall due together run one after another, the one due
  first first (ties by name): a daemon never competes with itself for the disk, the network
  or the two cores a run's threads already use. A long run delays the others; none is lost,
  each runs once when its turn comes.
- **Never the same job twice at once**, here or in another process (another daemon, a
  `snapfs jobs run`): the runner's flock on state_dir/locks/<job>.lock. A job found running
  elsewhere is skipped to its next slot, and the skip logged.
- **Catch-up once.** When a job is due is counted from its last run's start in the
  history, so after downtime an overdue job runs once, not once per missed slot; a run
  killed before it finished left no record, so the next start runs that job again, once.
- **Stopping.** SIGTERM or SIGINT: the step running finishes (steps are not interruptible),
  the steps after it are not started (the run is recorded as a failure at the first of
  them, and the after hook runs; no notice goes out for it, and the next run's failure or
  recovery is counted against the run before it), then the daemon exits 0. A second signal
  exits at once (130), as a kill would: the repositories stay consistent, the run is simply
  not recorded.
- After each run: the history (the runner adds it), the metrics (textfile written, HTTP
  figures updated), notifications. Each tick, jobs with alert-after are watched for a
  "missed" notice (no success for that long), sent once per period.

The runs happen on the main thread; the signal handlers only set a flag the runner asks
between steps, and wake the sleep.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from snapfs.errors import SnapfsError
from snapfs.humanize import local_time
from snapfs.jobs.config import Config, JobConfig
from snapfs.jobs.history import History
from snapfs.jobs.metrics import JobFigures, JobMetrics, RepositoryFigures
from snapfs.jobs.notify import Notice, missed_due, missed_notice, send, should_notify
from snapfs.jobs.records import RunRecord, StepResult
from snapfs.jobs.runner import STOPPED, JobRunning, open_repository, run_job

MAX_SLEEP = 60.0  # wake at least this often: a changed clock, a missed-notice check


def log_line(text: str) -> None:
    """One line on stderr, with the local time; characters that could drive a terminal
    (an error may quote a file name) escaped."""
    print(_stamped(text), file=sys.stderr, flush=True)


def _stamped(text: str) -> str:
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return f"{local_time(time.time())} {text}"


@dataclass
class Daemon:
    config: Config
    log: Callable[[str], None] = log_line
    clock: Callable[[], float] = time.time
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.history = History(self.config.daemon.state_dir)
        self.metrics = JobMetrics()
        self.started = self.clock()
        self._skip_until: dict[str, float] = {}  # found running elsewhere: its next slot
        self._last_alert: dict[str, float] = {}  # when each job's last missed notice went

    # -- the loop ---------------------------------------------------------------------------

    def serve(self) -> None:
        """Run until ``stopping`` is set (the signal handlers set it)."""
        scheduled = {n: j for n, j in self.config.jobs.items() if j.schedule is not None}
        self.log(
            f"daemon: {len(scheduled)} scheduled jobs from {self.config.path}"
            + (f" ({', '.join(sorted(scheduled))})" if scheduled else "")
        )
        self._start_metrics()
        while not self.stopping.is_set():
            for name in self.due_now():
                if self.stopping.is_set():
                    break
                self.run_one(name)
            self.watch_missed()
            if not self.stopping.is_set():
                self.stopping.wait(self.sleep_for())
        self.log("daemon: stopped")

    def next_time(self, job: JobConfig, now: float) -> float:
        """When ``job`` is due: ``now`` if it never ran, else its schedule's next time after
        its last run's start (or after a skip, that skip's slot)."""
        assert job.schedule is not None
        last = self.history.last(job.name)
        due = now if last is None else job.schedule.next_after(last.started)
        return max(due, self._skip_until.get(job.name, due))

    def due_now(self) -> list[str]:
        """The jobs due now, the one due first first (then by name)."""
        now = self.clock()
        times = {n: self.next_time(j, now) for n, j in self.config.jobs.items() if j.schedule}
        return sorted((n for n, t in times.items() if t <= now), key=lambda n: (times[n], n))

    def sleep_for(self) -> float:
        now = self.clock()
        wakes = [self.next_time(j, now) for j in self.config.jobs.values() if j.schedule]
        wakes += [t for t in (self._missed_at(j) for j in self.config.jobs.values()) if t]
        return max(0.0, min([now + MAX_SLEEP, *wakes]) - now)

    # -- one run ----------------------------------------------------------------------------

    def run_one(self, name: str) -> RunRecord | None:
        job = self.config.jobs[name]
        previous = self._last_finished(name)
        self.log(f"{name}: started")
        try:
            run = run_job(self.config, name, on_step=lambda s: self._step_done(name, s),
                          should_stop=self.stopping.is_set)  # fmt: skip
        except JobRunning as e:
            assert job.schedule is not None
            self._skip_until[name] = job.schedule.next_after(self.clock())
            self.log(f"{name}: skipped: {e}; next run {local_time(self._skip_until[name])}")
            return None
        self._skip_until.pop(name, None)
        if run.status == "success":
            self.log(f"{name}: finished: success in {run.duration:.1f} s")
        else:
            self.log(f"{name}: finished: failure at {run.step}: {run.error}")
        self._update_metrics(job, run)
        self._notify(job, run, previous)
        if job.schedule is not None and not self.stopping.is_set():
            self.log(f"{name}: next run {local_time(self.next_time(job, self.clock()))}")
        return run

    def _step_done(self, name: str, step: StepResult) -> None:
        took = f"{step.finished - step.started:.1f} s"
        if step.ok:
            detail = f": {step.detail}" if step.detail else ""
            self.log(f"{name}: {step.step} done in {took}{detail}")
        else:
            self.log(f"{name}: {step.step} failed after {took}: {step.error}")

    # -- metrics and notices ----------------------------------------------------------------

    def _start_metrics(self) -> None:
        for name, job in self.config.jobs.items():
            figures = JobFigures(job.repository, self.history.last(name),
                                 self.history.last_success(name))  # fmt: skip
            self.metrics.set_job(name, figures)
        listen = self.config.daemon.metrics_listen
        if listen:
            try:
                self.metrics.serve(listen)
            except OSError as e:
                raise SnapfsError(f"metrics-listen {listen}: {e.strerror or e}") from None
            self.log(f"daemon: metrics on http://{listen}/metrics")
        self._write_metrics()

    def _update_metrics(self, job: JobConfig, run: RunRecord) -> None:
        self.metrics.set_job(job.name, JobFigures(job.repository, run,
                                                  self.history.last_success(job.name)))  # fmt: skip
        for name in (job.repository, *job.copy_to):
            try:
                with open_repository(self.config.repositories[name], self.config.path.parent) as r:
                    figures = RepositoryFigures(len(r.snapshots()), sum(r.list_packs().values()))
            except (SnapfsError, OSError) as e:
                self.log(f"metrics: repository {name}: {e}")
                continue
            self.metrics.set_repository(name, figures)
        self._write_metrics()

    def _write_metrics(self) -> None:
        path = self.config.daemon.metrics_file
        if path is None:
            return
        try:
            self.metrics.write(path)
        except OSError as e:
            self.log(f"metrics: {path}: {e.strerror or e}")

    def _last_finished(self, name: str) -> RunRecord | None:
        """The job's last run that was not stopped by a daemon's stop: what a failure or a
        recovery is counted against."""
        return next((r for r in self.history.runs(name, limit=20) if r.error != STOPPED), None)

    def _notify(self, job: JobConfig, run: RunRecord, previous: RunRecord | None) -> None:
        if job.notify is None or run.error == STOPPED:
            return  # stopped on purpose: no one is told of a stop they made
        event = should_notify(job.notify.on, run, previous)
        if event is not None:
            self.log(f"{job.name}: notifying {event}")
            send(job.notify, Notice.of_run(run, event), self.log)

    def _missed_at(self, job: JobConfig) -> float | None:
        """When a missed notice would fall due for ``job`` (None: it is not watched)."""
        if job.alert_after is None or job.notify is None or "missed" not in job.notify.on:
            return None
        last = self.history.last_success(job.name)
        base = max(last.finished if last else self.started, self._last_alert.get(job.name, 0.0))
        return base + job.alert_after

    def watch_missed(self) -> None:
        now = self.clock()
        for name, job in sorted(self.config.jobs.items()):
            if self._missed_at(job) is None:
                continue
            assert job.alert_after is not None and job.notify is not None
            last_ok = self.history.last_success(name)
            finished = last_ok.finished if last_ok else None
            if missed_due(job.alert_after, finished, self._last_alert.get(name), self.started, now):
                self._last_alert[name] = now
                notice = missed_notice(name, job.alert_after, self.history.last(name), last_ok)
                self.log(f"{name}: notifying missed: {notice.error}")
                send(job.notify, notice, self.log)


def run_daemon(config: Config) -> None:
    """The daemon in this process, its signal handlers installed: returns once a SIGTERM or
    SIGINT has stopped it; a second one raises KeyboardInterrupt at once."""
    daemon = Daemon(config)

    def stop(signum: int, _frame: FrameType | None) -> None:
        if daemon.stopping.is_set():
            raise KeyboardInterrupt
        daemon.stopping.set()
        # os.write, not the log: a print here could re-enter one the main thread is in.
        line = _stamped(f"daemon: {signal.Signals(signum).name}: stopping after the current step")
        os.write(2, f"{line}\n".encode())

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    daemon.serve()


def systemd_unit(snapfs: str, config: str) -> str:
    """A unit file running ``snapfs daemon`` on ``config`` (both absolute paths)."""
    return f"""\
[Unit]
Description=snapfs backup jobs ({config})
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart={snapfs} daemon --config {config}
Restart=on-failure
RestartSec=30
# SIGTERM: the step running finishes, then the daemon exits. Past TimeoutStopSec systemd
# kills it, which leaves the repositories consistent; the next start runs the job again.
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=15min

[Install]
WantedBy=multi-user.target
"""
