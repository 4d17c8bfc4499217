"""A backup's descriptors: the read-ahead of small files stays within RLIMIT_NOFILE."""

from __future__ import annotations

import os
import resource
from pathlib import Path

from snapfs.backup import backup
from snapfs.events import Event, FileStarted
from snapfs.repository import Repository


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_workers_open_small_files_ahead_within_a_quarter_of_the_descriptor_limit(
    repo: Repository, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(300):  # one directory: batches of 64 small files
        (src / f"f{i:03d}.json").write_text(f'{{"i": {i}}}\n')
    peak = [0]

    def on_event(event: Event) -> None:
        if isinstance(event, FileStarted):  # sent by a worker between its opens and reads
            peak[0] = max(peak[0], _open_fds())

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    try:
        before = _open_fds()
        snap = backup(repo, [str(src)], on_event=on_event, workers=2)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    assert snap.summary.files == 300 and snap.summary.warnings == 0
    # 2 workers, a quarter of 64 between them: 8 each; a few more for the repository's own
    assert 0 < peak[0] - before <= 16 + 6, (before, peak[0])
