"""The jobs' history: a run goes in and comes back whole, newest first; the last success and
when each step last passed, across two processes' connections."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from snapfs.errors import SnapfsError
from snapfs.jobs.history import History
from snapfs.jobs.records import RunRecord, StepResult


def _run(job: str, started: float, *, ok: bool = True, drill: bool = False) -> RunRecord:
    steps = [StepResult("backup", True, started, started + 1, detail="snapshot ab12")]
    if drill:
        steps.append(StepResult("drill", ok, started + 1, started + 2,
                                error=None if ok else "drill: /a: content differs"))  # fmt: skip
    return RunRecord(
        job=job,
        status="success" if ok else "failure",
        started=started,
        finished=started + 2,
        snapshot="ab12" * 16,
        bytes_added=1234,
        step=None if ok else "drill",
        error=None if ok else "drill: /a: content differs",
        steps=tuple(steps),
    )


def test_round_trip_newest_first(tmp_path: Path) -> None:
    h = History(tmp_path / "state")
    assert (h.runs(), h.last("lake"), h.last_success("lake")) == ([], None, None)
    first, second, other = (
        _run("lake", 100.0),
        _run("lake", 200.0, ok=False, drill=True),
        _run("db", 150.0),
    )
    for r in (first, second, other):
        h.add(r)
    assert h.runs("lake") == [second, first]  # every field, the steps too
    assert h.runs() == [second, other, first]
    assert h.runs(limit=1) == [second]
    assert h.last("lake") == second
    assert h.last_success("lake") == first
    assert (tmp_path / "state/history.sqlite").exists()


def test_last_step_is_when_it_last_passed(tmp_path: Path) -> None:
    h = History(tmp_path)
    assert h.last_step("lake", "drill") is None
    h.add(_run("lake", 100.0, drill=True))
    h.add(_run("lake", 200.0, ok=False, drill=True))  # a failed drill is no drill done
    h.add(_run("db", 300.0, drill=True))
    assert h.last_step("lake", "drill") == 101.0
    assert h.last_step("lake", "backup") == 200.0
    assert h.last_step("lake", "prune") is None


def test_another_process_sees_the_runs(tmp_path: Path) -> None:
    h = History(tmp_path)
    h.add(_run("lake", 100.0))
    code = (
        "import sys; from pathlib import Path; from snapfs.jobs.history import History; "
        "from snapfs.jobs.records import RunRecord; h = History(Path(sys.argv[1])); "
        "print(len(h.runs())); h.add(RunRecord('db', 'success', 5.0, 6.0))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert out.stdout == "1\n"
    assert [r.job for r in h.runs()] == ["lake", "db"]
    with sqlite3.connect(h.path) as db:  # WAL is the file's mode, not one connection's
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_history_that_is_not_a_database_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "history.sqlite").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(SnapfsError) as e:
        History(tmp_path)
    assert str(e.value) == f"history {tmp_path / 'history.sqlite'}: file is not a database"
