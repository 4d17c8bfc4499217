"""What the TUI's child processes (``snapfs mount``, ``snapfs jobs run``) said when they
failed: their last line on stderr, as the CLI writes one line per error."""

from __future__ import annotations

import subprocess


def failure_reason(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    reason = lines[-1] if lines else f"exit code {done.returncode}"
    return reason.removeprefix("snapfs: ")
