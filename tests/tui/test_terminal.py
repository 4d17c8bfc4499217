"""``snapfs tui`` in a real terminal: tmux runs it, keys go in, the screen is read back."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapfs.snapshot import Snapshot
from tests.conftest import PASSWORD


@pytest.fixture(autouse=True)
def _tmux_installed() -> None:
    """A failure, not a skip: ./scripts/test installs tmux, so CI without it is broken."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (./scripts/test installs it)")


class Tmux:
    """One tmux server of our own (its own socket), so no user session is touched."""

    def __init__(self) -> None:
        self.socket = f"snapfs-test-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str) -> str:
        command = ["tmux", "-L", self.socket, "-f", "/dev/null", *args]  # no user config
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
        return done.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "tui")

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            shown = self.screen()
            if text in shown:
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared; the screen:\n{shown}")
            time.sleep(0.2)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    t = Tmux()
    yield t
    subprocess.run(["tmux", "-L", t.socket, "kill-server"], capture_output=True, timeout=30)


def test_snapfs_tui_in_tmux(tmux: Tmux, fixed_repo: list[Snapshot], tmp_path: Path) -> None:
    env = {"SNAPFS_PASSWORD": PASSWORD, "TERM": "xterm-256color", "SNAPFS_DEBUG": "1"}
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    # COLUMNS/LINES from pytest's own terminal would override the pane's real size.
    snapfs = f"env -u COLUMNS -u LINES {exports} {shlex.quote(sys.executable)} -m snapfs"
    cmd = f"cd {shlex.quote(str(tmp_path))} && {snapfs} -r repo tui; echo EXIT=$?; sleep 60"
    pythonpath = os.pathsep.join(p for p in sys.path if p)
    tmux("new-session", "-d", "-x", "120", "-y", "40", "-s", "tui", "-e",
         f"PYTHONPATH={pythonpath}", cmd)  # fmt: skip
    tmux.wait_for("3 snapshots")  # the header; the rows may come a frame later
    shown = tmux.wait_for(fixed_repo[-1].short_id)
    assert "nightly,release" in shown
    tmux("send-keys", "-t", "tui", "F1")
    tmux.wait_for("Everywhere")
    tmux("send-keys", "-t", "tui", "q")  # not escape: escape then enter reads as alt+enter
    tmux.wait_for("Added")
    tmux("send-keys", "-t", "tui", "Enter")  # browse the newest snapshot
    tmux.wait_for("README.md")
    tmux("send-keys", "-t", "tui", "C-q")
    tmux.wait_for("EXIT=0")
