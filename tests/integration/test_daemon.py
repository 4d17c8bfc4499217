"""``snapfs daemon`` as systemd runs it: a real daemon process over a config file with
second-scale schedules. It runs a job again and again (keep.last kept, the replica filled,
metrics and history written), posts a failure and then a recovery to a real webhook on
loopback, survives kill -9 mid-copy with both repositories passing check and catches up
exactly once, never runs one job twice at once beside another daemon, and stops on SIGTERM
after the step running."""

from __future__ import annotations

import http.server
import itertools
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from snapfs.jobs.history import History
from snapfs.jobs.records import RunRecord
from snapfs.repository import Repository
from snapfs.store.url import open_backend
from tests.conftest import CHEAP_KDF, PASSWORD, SNAPFS, reopened

WAIT = 60.0  # seconds a condition may take before the test gives up (a failure, not a pass)


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path
        src = tmp_path / "src"
        src.mkdir()
        for i in range(3):
            (src / f"f{i}.txt").write_text(f"file {i}\n" * (i + 1))
        (tmp_path / "pass").write_text(PASSWORD + "\n")
        self.repo, self.replica = tmp_path / "repo", tmp_path / "replica"
        for location in (self.repo, self.replica):
            Repository.init(open_backend(str(location)), PASSWORD, kdf=CHEAP_KDF).close()
        self.conf = tmp_path / "snapfs.toml"
        self.state = tmp_path / "state"

    def write(self, jobs: str, daemon: str = "") -> None:
        self.conf.write_text(
            '[repositories.main]\nurl = "repo"\npassword-file = "pass"\n'
            '[repositories.offsite]\nurl = "replica"\npassword-file = "pass"\n'
            + jobs + '[daemon]\nstate-dir = "state"\n' + daemon
        )  # fmt: skip

    def history(self, job: str = "lake") -> list[RunRecord]:
        return History(self.state).runs(job)

    def check(self, location: Path) -> None:
        done = subprocess.run([*SNAPFS, "-r", str(location), "check", "--read-data"],
                              env={**_env(), "SNAPFS_PASSWORD": PASSWORD},
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr


def _env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SNAPFS_")}, **extra}


class Daemon:
    """``snapfs daemon`` in a subprocess; its stderr lines (the time stamp cut) gathered."""

    def __init__(self, setup: Setup, **env: str) -> None:
        self.proc = subprocess.Popen(
            [*SNAPFS, "daemon", "--config", str(setup.conf)], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(**env),
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n")[20:])  # "YYYY-MM-DD HH:MM:SS " first

    def wait_for(self, what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT
        while not ready():
            if self.proc.poll() is not None:
                self._reader.join(5)
                raise AssertionError(f"daemon exited {self.proc.returncode} before {what}: "
                                     + "\n".join(self.lines))  # fmt: skip
            if time.monotonic() > deadline:
                raise AssertionError(f"never {what}: " + "\n".join(self.lines))
            time.sleep(0.05)

    def terminate(self) -> float:
        """SIGTERM; how long it took to exit (status 0)."""
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        took = time.monotonic() - sent
        self._finish()
        assert self.proc.returncode == 0, "\n".join(self.lines)
        return took

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self._finish()

    def _finish(self) -> None:
        self._reader.join(5)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Every daemon a test starts is gone after it, whatever happened."""
    started: list[Daemon] = []
    yield started
    for d in started:
        d.kill()


def _successes(setup: Setup, n: int) -> Callable[[], bool]:
    return lambda: sum(r.status == "success" for r in setup.history()) >= n


def test_runs_on_schedule_keeps_last_fills_replica_writes_metrics(
    setup: Setup, daemons: list[Daemon]
) -> None:
    setup.write(
        '[jobs.lake]\nrepository = "main"\npaths = ["src"]\nevery = "2s"\n'
        'keep = { last = 2 }\ncopy-to = ["offsite"]\n',
        'metrics-file = "metrics/snapfs.prom"\n',
    )
    d = Daemon(setup)
    daemons.append(d)
    # Stopped while it sleeps (after its third run's "next run" line), so no run is cut short.
    d.wait_for("three runs", lambda: sum(x.startswith("lake: next run ") for x in d.lines) >= 3)
    took = d.terminate()
    assert took < 10
    runs = setup.history()[::-1]  # oldest first
    assert [r.status for r in runs] == ["success"] * len(runs) and len(runs) >= 3
    for a, b in itertools.pairwise(runs):
        assert b.started - a.started >= 2.0  # never before its slot
        assert b.started >= a.finished  # one at a time
    with reopened(str(setup.repo)) as repo:
        kept = sorted(repo.snapshots(), key=lambda s: s.time)
    assert [s.id for s in kept] == [r.snapshot for r in runs[-2:]]  # keep.last = 2
    with reopened(str(setup.replica)) as replica:
        copies = sorted(replica.snapshots(), key=lambda s: s.time)
    assert [s.original for s in copies] == [r.snapshot for r in runs[-2:]]

    last = runs[-1]
    text = (setup.root / "metrics" / "snapfs.prom").read_text()
    samples = {
        name: float(value)
        for name, value in (line.rsplit(" ", 1) for line in text.splitlines())
        if not name.startswith("#")
    }
    labels = '{job="lake",repository="main"}'
    assert samples == {
        f"snapfs_job_last_success_timestamp_seconds{labels}": last.finished,
        f"snapfs_job_last_run_timestamp_seconds{labels}": last.finished,
        f"snapfs_job_last_run_success{labels}": 1.0,
        f"snapfs_job_duration_seconds{labels}": last.duration,
        f"snapfs_job_bytes_added{labels}": last.bytes_added,
        'snapfs_repository_snapshots{repository="main"}': 2.0,
        'snapfs_repository_snapshots{repository="offsite"}': 2.0,
        'snapfs_repository_stored_bytes{repository="main"}': samples[
            'snapfs_repository_stored_bytes{repository="main"}'],
        'snapfs_repository_stored_bytes{repository="offsite"}': samples[
            'snapfs_repository_stored_bytes{repository="offsite"}'],
    }  # fmt: skip
    stored = sum(p.stat().st_size for p in (setup.repo / "data").rglob("*") if p.is_file())
    assert samples['snapfs_repository_stored_bytes{repository="main"}'] == stored

    lines = d.lines
    assert lines[0] == f"daemon: 1 scheduled jobs from {setup.conf} (lake)"
    assert lines[1:4] == ["lake: started", lines[2], lines[3]]
    assert lines[2].startswith("lake: backup done in ") and ": snapshot " in lines[2]
    assert lines[3].startswith("lake: forget done in ")
    assert lines[-2:] == ["daemon: SIGTERM: stopping after the current step", "daemon: stopped"]
    assert sum(line == "lake: started" for line in lines) == len(runs)
    assert sum(line.startswith("lake: next run ") for line in lines) >= len(runs) - 1


class _Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.received.append((time.monotonic(), body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[tuple[float, dict[str, object]]]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    received: list[tuple[float, dict[str, object]]] = []
    server.received = received  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts", received
    server.shutdown()
    server.server_close()
    thread.join()


def test_failure_then_recovery_post_to_a_webhook_and_missed_once_per_period(
    setup: Setup, daemons: list[Daemon],
    webhook: tuple[str, list[tuple[float, dict[str, object]]]],
) -> None:  # fmt: skip
    url, received = webhook
    (setup.root / "broken").touch()
    hook = "test ! -e broken || { echo disk full >&2; exit 1; }"
    setup.write(
        f'[jobs.lake]\nrepository = "main"\npaths = ["src"]\nevery = "2s"\n'
        f"before = ['sh', '-c', '{hook}']\nnotify = {{ webhook = '{url}' }}\n"
        f'[jobs.stale]\nrepository = "main"\npaths = ["src"]\nevery = "1h"\n'
        f"before = ['false']\nalert-after = '3s'\n"
        f"notify = {{ webhook = '{url}', on = ['missed'] }}\n"
    )
    d = Daemon(setup)
    daemons.append(d)

    def lake() -> list[dict[str, object]]:
        return [b for _t, b in received if b["job"] == "lake"]

    d.wait_for("a failure notice", lambda: len(lake()) >= 1)
    (setup.root / "broken").unlink()
    d.wait_for("a recovery notice", lambda: any(b["event"] == "recovery" for b in lake()))
    d.wait_for("two missed notices", lambda: sum(b["job"] == "stale" for _t, b in received) >= 2)
    d.terminate()

    failed = lake()[0]
    run = setup.history()[-1]  # the oldest: the failed one
    assert failed == {
        "job": "lake", "event": "failure", "status": "failure", "step": "before",
        "error": f"sh -c {hook} exited with status 1: disk full", "snapshot": None,
        "bytes_added": 0, "started": failed["started"], "finished": failed["finished"],
        "started_unix": run.started, "finished_unix": run.finished,
    }  # fmt: skip
    assert isinstance(failed["started"], str) and failed["started"].endswith("Z")
    events = [b["event"] for b in lake()]
    recovered = events.index("recovery")
    assert set(events[:recovered]) == {"failure"}  # each failed run, then one recovery
    assert events[recovered + 1 :] == []  # successes are not asked for
    ok = next(r for r in setup.history()[::-1] if r.status == "success")  # the first
    assert next(b for b in lake() if b["event"] == "recovery")["snapshot"] == ok.snapshot

    missed = [(t, b) for t, b in received if b["job"] == "stale"]
    assert [b["event"] for _t, b in missed][:2] == ["missed", "missed"]
    assert missed[0][1]["error"] == "no successful run for 3s (ever)"
    assert missed[0][1]["status"] == "failure"  # its one run failed, and was not notified
    assert missed[1][0] - missed[0][0] >= 2.5  # once per period, never once per tick
    assert len(setup.history("stale")) == 1


def test_kill_9_mid_copy_leaves_both_repositories_checked_and_catches_up_once(
    setup: Setup, daemons: list[Daemon]
) -> None:
    setup.write(
        '[jobs.lake]\nrepository = "main"\npaths = ["src"]\nevery = "1h"\ncopy-to = ["offsite"]\n'
    )
    # The last run was three slots ago: the daemon was down for three hours.
    long_ago = time.time() - 3 * 3600
    History(setup.state).add(RunRecord("lake", "success", long_ago, long_ago + 1))
    flag = setup.root / "held"
    # before-snapshot: the backup's is the first; the second is the copy's, with the
    # replica's packs and index written and its snapshot not yet.
    first = Daemon(setup, SNAPFS_FAULT="before-snapshot:2", SNAPFS_FAULT_HOLD=str(flag))
    daemons.append(first)
    first.wait_for("the copy reached its snapshot", flag.exists)
    assert int(flag.read_text()) == first.proc.pid
    assert first.lines[2].startswith("lake: backup done in ")
    first.kill()
    assert first.proc.returncode == -signal.SIGKILL
    assert len(setup.history()) == 1  # the killed run left no record
    flag.unlink()
    for location in (setup.repo, setup.replica):
        setup.check(location)

    second = Daemon(setup)
    daemons.append(second)
    second.wait_for("the catch-up run's next time", lambda: any(
        line.startswith("lake: next run ") for line in second.lines))  # fmt: skip
    time.sleep(1.0)  # a daemon that ran it again would have started by now
    second.terminate()
    runs = setup.history()
    assert [r.status for r in runs] == ["success", "success"]  # exactly one catch-up
    assert sum(line == "lake: started" for line in second.lines) == 1
    with reopened(str(setup.replica)) as replica:
        copies = replica.snapshots()
    assert runs[0].snapshot in [c.original for c in copies]
    for location in (setup.repo, setup.replica):
        setup.check(location)


def test_two_daemons_never_run_one_job_at_once(setup: Setup, daemons: list[Daemon]) -> None:
    setup.write(
        '[jobs.lake]\nrepository = "main"\npaths = ["src"]\nevery = "1s"\n'
        "before = ['sleep', '1']\n"
    )
    a, b = Daemon(setup), Daemon(setup)
    daemons += [a, b]
    a.wait_for("four runs", _successes(setup, 4))
    a.wait_for("both daemons tried", lambda: all("lake: started" in d.lines for d in (a, b)))
    a.terminate()
    b.terminate()
    runs = sorted(setup.history(), key=lambda r: r.started)
    for x, y in itertools.pairwise(runs):
        assert y.started >= x.finished, (x, y)  # never overlapping
    skipped = [x for d in (a, b) for x in d.lines if x.startswith("lake: skipped: ")]
    assert skipped, a.lines + b.lines  # they did meet at the lock
    assert skipped[0].startswith("lake: skipped: job lake is already running (pid ")


def test_sigterm_mid_run_finishes_the_step_and_records_the_rest_not_run(
    setup: Setup, daemons: list[Daemon],
    webhook: tuple[str, list[tuple[float, dict[str, object]]]],
) -> None:  # fmt: skip
    url, received = webhook
    setup.write(
        '[jobs.lake]\nrepository = "main"\npaths = ["src"]\nevery = "1h"\n'
        "before = ['sh', '-c', 'touch started; sleep 2']\ncopy-to = ['offsite']\n"
        f"notify = {{ webhook = '{url}', on = ['failure', 'success'] }}\n"
    )
    d = Daemon(setup)
    daemons.append(d)
    d.wait_for("the before hook", (setup.root / "started").exists)
    took = d.terminate()
    assert took < 10
    (run,) = setup.history()
    assert (run.status, run.step, run.error) == ("failure", "backup", "not run: snapfs is stopping")
    assert [(s.step, s.ok) for s in run.steps] == [("before", True), ("backup", False)]
    with reopened(str(setup.repo)) as repo:
        assert repo.snapshots() == []
    assert d.lines[-2:] == [
        "lake: finished: failure at backup: not run: snapfs is stopping",
        "daemon: stopped",
    ]
    assert received == []  # a stop its operator asked for is no failure to be told of
    asked = d.lines.index("daemon: SIGTERM: stopping after the current step")
    assert d.lines[asked + 1].startswith("lake: before done in ")  # the step it was in


def test_print_systemd_unit(setup: Setup) -> None:
    setup.write('[jobs.lake]\nrepository = "main"\npaths = ["src"]\nevery = "6h"\n')
    done = subprocess.run([*SNAPFS, "daemon", "--config", str(setup.conf),
                           "--print-systemd-unit"], capture_output=True, text=True,
                          env=_env(), timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    unit = done.stdout.splitlines()
    exec_start = next(line for line in unit if line.startswith("ExecStart="))
    program, *args = exec_start.removeprefix("ExecStart=").split(" ")
    assert os.path.isabs(program) and args[-3:] == ["daemon", "--config", str(setup.conf)]
    for line in ("Type=simple", "Restart=on-failure", "KillSignal=SIGTERM",
                 "TimeoutStopSec=15min", "[Install]"):  # fmt: skip
        assert line in unit
    assert not setup.state.exists()  # printing runs nothing


def test_a_broken_config_is_one_line_exit_2(setup: Setup) -> None:
    setup.write('[jobs.lake]\nrepository = "main"\npaths = ["src"]\nevery = "soon"\n')
    done = subprocess.run([*SNAPFS, "daemon", "--config", str(setup.conf)],
                          capture_output=True, text=True, env=_env(), timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == (
        f"snapfs: {setup.conf}: jobs.lake.every: cannot parse duration 'soon': "
        "use e.g. 30s, 15m, 6h, 1d, 1h30m\n"
    )
