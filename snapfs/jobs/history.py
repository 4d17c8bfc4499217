"""The runs of every job, in SQLite (state_dir/history.sqlite).

WAL mode and a busy timeout let two processes (a daemon and a `snapfs jobs run`, two
daemons) add and read at once. A connection is opened per call: nothing is held between
runs, and the object is safe to share between threads.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from snapfs.errors import SnapfsError
from snapfs.jobs.records import RunRecord, StepResult

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    status TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL NOT NULL,
    snapshot TEXT,
    bytes_added INTEGER NOT NULL,
    step TEXT,
    error TEXT,
    steps TEXT NOT NULL  -- JSON: the StepResults, in order
);
CREATE INDEX IF NOT EXISTS runs_job ON runs (job, started);
CREATE TABLE IF NOT EXISTS steps (
    run INTEGER NOT NULL REFERENCES runs (id),
    job TEXT NOT NULL,
    step TEXT NOT NULL,
    ok INTEGER NOT NULL,
    started REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS steps_job ON steps (job, step, ok, started);
"""
_COLUMNS = "job, status, started, finished, snapshot, bytes_added, step, error, steps"


class History:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "history.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                from snapfs.errors import UnsupportedFormat

                raise UnsupportedFormat(
                    f"{self.path}: history version {version} is newer than this snapfs knows"
                )
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(sqlite3.connect(self.path, timeout=30)) as db:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = NORMAL")  # WAL: a crash loses no committed run
                with db:  # one transaction: committed on leaving, rolled back on an error
                    yield db
        except sqlite3.Error as e:  # unwritable, not a database, locked past the timeout
            raise SnapfsError(f"history {self.path}: {e}") from None

    def add(self, run: RunRecord) -> None:
        steps = json.dumps([_step_json(s) for s in run.steps])
        with self._db() as db:
            cur = db.execute(
                f"INSERT INTO runs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run.job, run.status, run.started, run.finished, run.snapshot, run.bytes_added,
                 run.step, run.error, steps),
            )  # fmt: skip
            db.executemany(
                "INSERT INTO steps (run, job, step, ok, started) VALUES (?, ?, ?, ?, ?)",
                [(cur.lastrowid, run.job, s.step, int(s.ok), s.started) for s in run.steps],
            )

    def runs(self, job: str | None = None, limit: int | None = None) -> list[RunRecord]:
        """The runs of ``job`` (of every job when None), newest first."""
        where, args = ("WHERE job = ?", [job]) if job is not None else ("", [])
        sql = f"SELECT {_COLUMNS} FROM runs {where} ORDER BY started DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._db() as db:
            return [_record(row) for row in db.execute(sql, args)]

    def last(self, job: str) -> RunRecord | None:
        runs = self.runs(job, limit=1)
        return runs[0] if runs else None

    def last_success(self, job: str) -> RunRecord | None:
        sql = (
            f"SELECT {_COLUMNS} FROM runs WHERE job = ? AND status = 'success' "
            "ORDER BY started DESC, id DESC LIMIT 1"
        )
        with self._db() as db:
            row = db.execute(sql, (job,)).fetchone()
        return _record(row) if row else None

    def last_step(self, job: str, step: str) -> float | None:
        """When ``step`` of ``job`` last started a run that it passed (None: never)."""
        sql = "SELECT max(started) FROM steps WHERE job = ? AND step = ? AND ok = 1"
        with self._db() as db:
            value = db.execute(sql, (job, step)).fetchone()[0]
        return float(value) if value is not None else None


def _step_json(s: StepResult) -> dict[str, object]:
    return {"step": s.step, "ok": s.ok, "started": s.started, "finished": s.finished,
            "error": s.error, "detail": s.detail}  # fmt: skip


def _record(row: tuple[object, ...]) -> RunRecord:
    job, status, started, finished, snapshot, bytes_added, step, error, steps = row
    return RunRecord(
        job=str(job),
        status="success" if status == "success" else "failure",
        started=float(started),  # type: ignore[arg-type]
        finished=float(finished),  # type: ignore[arg-type]
        snapshot=snapshot if isinstance(snapshot, str) else None,
        bytes_added=int(bytes_added),  # type: ignore[call-overload]
        step=step if isinstance(step, str) else None,
        error=error if isinstance(error, str) else None,
        steps=tuple(StepResult(**s) for s in json.loads(str(steps))),
    )
