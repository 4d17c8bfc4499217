"""Notifications: which event a run is, when "missed" fires (once per period), and what a real
webhook on loopback and a real command receive; a failing one is one logged line."""

from __future__ import annotations

import http.server
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapfs.jobs.config import NotifyConfig
from snapfs.jobs.notify import Notice, missed_due, missed_notice, send, should_notify
from snapfs.jobs.records import RunRecord

ALL = frozenset({"failure", "recovery", "success", "missed"})
DEFAULT = frozenset({"failure", "recovery", "missed"})


def _run(status: str, started: float = 1_700_000_000.0) -> RunRecord:
    failed = status == "failure"
    return RunRecord(
        job="lake", status="failure" if failed else "success", started=started,
        finished=started + 2.5, snapshot=None if failed else "ab" * 32,
        bytes_added=0 if failed else 4096, step="copy" if failed else None,
        error="copy to offsite: no repository at /x" if failed else None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("on", "status", "previous", "event"),
    [
        (DEFAULT, "failure", None, "failure"),
        (DEFAULT, "failure", "failure", "failure"),
        (DEFAULT, "success", "failure", "recovery"),
        (DEFAULT, "success", "success", None),
        (DEFAULT, "success", None, None),
        (ALL, "success", "success", "success"),
        (ALL, "success", None, "success"),
        (ALL, "success", "failure", "recovery"),
        (frozenset({"success"}), "success", "failure", "success"),
        (frozenset({"recovery"}), "failure", None, None),
        (frozenset({"missed"}), "success", "failure", None),
    ],
)
def test_should_notify(on: frozenset[str], status: str, previous: str | None,
                       event: str | None) -> None:  # fmt: skip
    prev = _run(previous, 1_699_000_000.0) if previous else None
    assert should_notify(on, _run(status), prev) == event


def test_missed_once_per_period() -> None:
    a = 100.0
    # A success 99 s ago: not yet; 100 s ago: now.
    assert not missed_due(a, 1000.0, None, 0.0, 1099.0)
    assert missed_due(a, 1000.0, None, 0.0, 1100.0)
    # Sent at 1100: the ticks after it stay quiet until another whole period has passed.
    assert not missed_due(a, 1000.0, 1100.0, 0.0, 1101.0)
    assert not missed_due(a, 1000.0, 1100.0, 0.0, 1199.0)
    assert missed_due(a, 1000.0, 1100.0, 0.0, 1200.0)
    # A success after the notice starts the count again.
    assert not missed_due(a, 1150.0, 1100.0, 0.0, 1200.0)
    # Never succeeded: counted from when the daemon began watching.
    assert not missed_due(a, None, None, 500.0, 599.0)
    assert missed_due(a, None, None, 500.0, 600.0)


class _Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        server: _Server = self.server  # type: ignore[assignment]
        server.received.append((self.path, self.headers["Content-Type"],
                                json.loads(self.rfile.read(length))))  # fmt: skip
        self.send_response(server.code)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(http.server.HTTPServer):
    received: list[tuple[str, str, dict[str, object]]]
    code = 200


@pytest.fixture
def hook() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Hook)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _url(server: _Server, path: str = "/hook") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_webhook_gets_the_run_as_json(hook: _Server) -> None:
    lines: list[str] = []
    run = _run("failure")
    assert send(NotifyConfig(webhook=_url(hook)), Notice.of_run(run, "failure"), lines.append)
    assert lines == []
    assert hook.received == [("/hook", "application/json", {
        "job": "lake", "event": "failure", "status": "failure", "step": "copy",
        "error": "copy to offsite: no repository at /x", "snapshot": None, "bytes_added": 0,
        "started": "2023-11-14T22:13:20Z", "finished": "2023-11-14T22:13:22Z",
        "started_unix": 1_700_000_000.0, "finished_unix": 1_700_000_002.5,
    })]  # fmt: skip


def test_command_gets_the_same_in_its_environment(tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    script = (
        "import json, os, sys; json.dump({k: v for k, v in os.environ.items() "
        "if k.startswith('SNAPFS_')}, open(sys.argv[1], 'w'))"
    )
    notify = NotifyConfig(command=(sys.executable, "-c", script, str(out)))
    lines: list[str] = []
    assert send(notify, Notice.of_run(_run("success"), "recovery"), lines.append)
    assert lines == []
    assert json.loads(out.read_text()) == {
        "SNAPFS_JOB": "lake", "SNAPFS_EVENT": "recovery", "SNAPFS_STATUS": "success",
        "SNAPFS_STEP": "", "SNAPFS_ERROR": "", "SNAPFS_SNAPSHOT": "ab" * 32,
        "SNAPFS_BYTES_ADDED": "4096",
        "SNAPFS_STARTED": "2023-11-14T22:13:20Z", "SNAPFS_FINISHED": "2023-11-14T22:13:22Z",
        "SNAPFS_STARTED_UNIX": "1700000000.0", "SNAPFS_FINISHED_UNIX": "1700000002.5",
    }  # fmt: skip


def test_failures_are_one_line_each_and_never_raise(hook: _Server, tmp_path: Path) -> None:
    hook.code = 500
    closed = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    port = closed.server_address[1]
    closed.server_close()  # nothing listens there now
    fail = (sys.executable, "-c", "import sys; sys.exit('hook: out of paper')")
    lines: list[str] = []
    notice = Notice.of_run(_run("failure"), "failure")
    assert not send(NotifyConfig(webhook=_url(hook), command=fail), notice, lines.append)
    assert not send(NotifyConfig(webhook=f"http://127.0.0.1:{port}/x"), notice, lines.append)
    missing = NotifyConfig(command=(str(tmp_path / "no-such-command"),))
    assert not send(missing, notice, lines.append)
    assert lines == [
        f"notify: webhook {_url(hook)}: HTTP 500 Internal Server Error",
        f"notify: command {sys.executable}: exit 1: hook: out of paper",
        f"notify: webhook http://127.0.0.1:{port}/x: [Errno 111] Connection refused",
        f"notify: command {tmp_path / 'no-such-command'}: No such file or directory",
    ]
    assert len(hook.received) == 1


def test_missed_notice_names_the_last_success(hook: _Server) -> None:
    last_ok, last = _run("success"), _run("failure", 1_700_050_000.0)
    notice = missed_notice("lake", 26 * 3600.0, last, last_ok)
    assert send(NotifyConfig(webhook=_url(hook)), notice, print)
    body = hook.received[0][2]
    assert (body["event"], body["status"], body["snapshot"], body["finished"]) == (
        "missed", "failure", "ab" * 32, "2023-11-14T22:13:22Z")  # fmt: skip
    assert body["error"] == "no successful run for 26h (since 2023-11-14T22:13:22Z)"
    never = missed_notice("lake", 90.0, None, None)
    assert (never.status, never.error) == (None, "no successful run for 90s (ever)")
