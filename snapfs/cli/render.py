"""Rendering for the CLI: rich progress fed from a Tally, tables, sizes, JSON lines.

rich loads on first use: a quiet or --json run never pays for it."""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

from snapfs.humanize import size
from snapfs.progress import Tally
from snapfs.walk import shown_path

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

__all__ = [
    "Warnings", "cell", "emit_json", "escaped", "printable", "progress", "progress_shown", "say",
    "size", "stderr", "stdout",
]  # fmt: skip


@cache
def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def say(line: str) -> None:
    """One plain line on stderr (above a live progress bar, if one is drawn), ``printable``."""
    stderr().print(printable(line), markup=False, highlight=False, soft_wrap=True)  # any width


def printable(line: str) -> str:
    """``line`` with the characters that are not printable escaped as ``escaped`` does (a
    backslash stays one): a message may quote a name, host or path from a repository,
    which must not drive the terminal."""
    if line.isprintable():
        return line
    return "".join(c if c.isprintable() else _escape_char(c) for c in line)


class Warnings:
    """A walk's ProblemHandler (walk.py) for a face: each problem one ``warning:`` line on
    stderr, its path escaped, and counted (a command that warned exits 3)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, where: bytes, message: str) -> None:
        self.count += 1
        say(f"warning: {escaped(shown_path(where))}: {message}")


_C_ESCAPES = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}


def escaped(name: str | bytes) -> str:
    """A name or path as ``ls -b`` prints it: characters that are not printable (control
    codes, terminal escapes, bytes that are not UTF-8) as C escapes or ``\\ooo`` octal of
    their bytes, and a backslash doubled, so the text is unambiguous and a name from a
    snapshot cannot drive the terminal. ``--json`` carries names exactly instead."""
    text = name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else name
    if text.isprintable() and "\\" not in text:
        return text
    return "".join("\\\\" if c == "\\" else c if c.isprintable() else _escape_char(c) for c in text)


def cell(value: str) -> Text:
    """A table cell or title from a repository (a host, tag, path): ``escaped``, and never
    read as rich markup, so ``[blink]`` in a crafted host name stays text."""
    from rich.text import Text

    return Text(escaped(value))


def _escape_char(c: str) -> str:
    raw = c.encode("utf-8", "surrogateescape")
    return "".join(_C_ESCAPES.get(b) or f"\\{b:03o}" for b in raw)


_PIPED_WIDTH = 1000  # piped output goes to programs and pagers: a table row stays one line


@cache
def stdout() -> Console:
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=_PIPED_WIDTH)


def emit_json(obj: Any) -> None:
    import json  # only --json needs it: ~5 ms less to load for every other command, cold

    text = json.dumps(obj, ensure_ascii=False)
    if not text.isascii():  # a name that is not UTF-8 decodes to lone surrogates: escape them
        text = _SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


_SURROGATE = re.compile("[\ud800-\udfff]")


def progress_shown(*, enabled: bool, json_lines: bool) -> bool:
    """Whether ``progress`` will show anything (so totals are worth counting ahead)."""
    return json_lines or (enabled and sys.stderr.isatty())


@contextmanager
def progress(
    tally: Tally, label: str, *, enabled: bool, json_lines: bool = False
) -> Iterator[None]:
    """A live bar on a terminal, status lines with --json, nothing when quiet or piped."""
    if json_lines:
        with _json_status(tally, label):
            yield
        return
    if not progress_shown(enabled=enabled, json_lines=False):
        yield
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TextColumn("{task.fields[files]} files"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr(),
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
