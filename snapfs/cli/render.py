"""Rendering for the CLI: rich progress fed from a Tally, tables, sizes, JSON lines."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from snapfs.humanize import size
from snapfs.progress import Tally

__all__ = ["emit_json", "progress", "size", "stderr", "stdout"]

stderr = Console(stderr=True)
stdout = Console()


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@contextmanager
def progress(
    tally: Tally, label: str, *, enabled: bool, json_lines: bool = False
) -> Iterator[None]:
    """A live bar on a terminal, status lines with --json, nothing when quiet or piped."""
    if json_lines:
        with _json_status(tally, label):
            yield
        return
    if not enabled or not stderr.is_terminal:
        yield
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TextColumn("{task.fields[files]} files"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
    )
    with bar:
        task = bar.add_task(label, total=None, files=0)
        stop = threading.Event()

        def refresh() -> None:
            while not stop.wait(0.2):
                v = tally.view()
                bar.update(task, completed=v.bytes, total=v.total_bytes, files=v.files)

        t = threading.Thread(target=refresh, daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join()


@contextmanager
def _json_status(tally: Tally, label: str) -> Iterator[None]:
    stop = threading.Event()

    def report() -> None:
        while not stop.wait(1.0):
            v = tally.view()
            emit_json({
                "message_type": "status", "action": label, "files_done": v.files,
                "bytes_done": v.bytes, "total_files": v.total_files,
                "total_bytes": v.total_bytes, "seconds_elapsed": round(v.elapsed, 1),
                "seconds_remaining": None if v.eta is None else round(v.eta, 1),
            })  # fmt: skip

    t = threading.Thread(target=report, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
