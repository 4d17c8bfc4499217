"""A Source of one stream: standard input, or what a command writes to its standard output,
shown as a single file ``NAME`` at the root (snapshot ``source`` "stdin", ``paths``
``["/NAME"]``; docs/FORMAT.md "Trees of streams").

The stream is read straight from its descriptor in the chunker's blocks, once, start to end:
it cannot be read again, so ``unchanged`` never vouches for a parent's node and ``refresh``
has nothing to give. Memory is the chunker's buffer and a pipe's, whatever the length.

A command is started when its file is opened (so the repository is open and locked before a
dump begins) with our environment (its secrets, PGPASSWORD and the like, never our argv) and
our standard input. Its standard error is drained on a thread into a bounded tail. At the end
of its output it is waited for: a status other than 0 raises CommandFailed from ``readinto``,
so the backup fails before saving a snapshot. Closed early (the backup failed), the command is
terminated.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import IO

from snapfs.errors import SnapfsError
from snapfs.sources.base import Closing, Entry
from snapfs.tree import FILE, Node

DEFAULT_NAME = "stdin"
FILE_MODE = 0o600  # a dump holds a database's rows: its owner's alone
PIPE_SIZE = 1024 * 1024  # fewer, larger reads than the default 64 KiB pipe gives
STDERR_TAIL_LINES = 10
_STDERR_KEPT = 64 * 1024  # bytes of the command's stderr kept, its tail
_TERMINATE_WAIT = 10.0


class CommandFailed(SnapfsError):
    """The command whose output was being backed up exited with a status other than 0 (or
    could not be started): no snapshot is saved. ``details``: the last lines of its stderr."""


def check_name(name: str) -> str:
    """``name`` if it is one file name a tree may hold (docs/FORMAT.md "What readers
    accept"), else SnapfsError saying why."""
    raw = os.fsencode(name)
    if not raw or raw in (b".", b"..") or b"/" in raw or b"\0" in raw or len(raw) > 255:
        raise SnapfsError(
            f"bad --stdin-filename {name!r}: one file name (1-255 bytes, no '/', not . or ..)"
        )
    return name


class StreamSource(Closing):
    """One file ``name`` whose bytes ``reader`` gives (_Stdin, _Command): owned by this
    process's user (by number: names are the walk's business), mode FILE_MODE, its times
    the backup's start. Its file is opened once."""

    kind = "stdin"

    def __init__(self, name: str, reader: _Stdin | _Command) -> None:
        self.name = os.fsencode(check_name(name))
        self.paths = ["/" + name]
        self._reader = reader
        now = time.time_ns()
        self._node = Node(self.name, FILE, FILE_MODE, os.getuid(), os.getgid(), "", "", now, now)

    def entries(self, directory: Entry | None = None) -> Iterator[Entry]:
        if directory is None:
            yield Entry(self.name, self._node, None)

    def unchanged(self, old: Node, entry: Entry) -> bool:
        return False  # a stream cannot be compared without reading it

    def refresh(self, entry: Entry) -> Entry | None:
        return None  # nor read twice

    def open(self, entry: Entry) -> _Opened:
        self._reader.start()
        return _Opened(entry.node, self._reader)

    def close(self) -> None:
        self._reader.close()


class _Opened:
    """The Content (sources/base.py) of the stream's file."""

    def __init__(self, node: Node, reader: _Stdin | _Command) -> None:
        self.node = node
        self.readinto = reader.readinto
        self.close = reader.close


def stdin_source(name: str = DEFAULT_NAME, fd: int = 0) -> StreamSource:
    """Standard input (or another descriptor the caller keeps and closes) as the file
    ``name``."""
    return StreamSource(name, _Stdin(fd))


def command_source(
    argv: list[str], name: str = DEFAULT_NAME, cwd: str | None = None
) -> StreamSource:
    """The standard output of ``argv`` (run when the backup reads it, in ``cwd``) as the
    file ``name``."""
    if not argv:
        raise SnapfsError("no command given to run")
    return StreamSource(name, _Command(argv, cwd))


class _Stdin:
    """Reads a descriptor the caller owns (0: standard input); ``close`` leaves it open."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def start(self) -> None:
        _grow_pipe(self.fd)

    def readinto(self, buffer: bytearray | memoryview) -> int:
        return os.readv(self.fd, [buffer])

    def close(self) -> None:
        pass


class _Command:
    """A command run once, its standard output read through ``readinto``."""

    def __init__(self, argv: list[str], cwd: str | None = None) -> None:
        self.argv = argv
        self.cwd = cwd
        # Named by its program alone: its arguments may hold what is not to be shown.
        self.shown = shlex.quote(os.path.basename(argv[0]))
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr = _Tail()
        self._done = False

    def start(self) -> None:
        if self._proc is not None:
            return
        try:
            self._proc = subprocess.Popen(
                self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, cwd=self.cwd
            )
        except OSError as e:
            raise CommandFailed(f"cannot run {self.shown}: {(e.strerror or str(e)).lower()}") from e
        assert self._proc.stdout is not None and self._proc.stderr is not None
        _grow_pipe(self._proc.stdout.fileno())
        self._stderr.drain(self._proc.stderr)

    def readinto(self, buffer: bytearray | memoryview) -> int:
        assert self._proc is not None and self._proc.stdout is not None
        n = os.readv(self._proc.stdout.fileno(), [buffer])
        if n == 0 and not self._done:
            self._finish(self._proc)
        return n

    def _finish(self, proc: subprocess.Popen[bytes]) -> None:
        """At the end of the output: the command's status; CommandFailed unless 0."""
        status = proc.wait()
        self._stderr.join()
        self._done = True
        if status == 0:
            return
        if status < 0:
            what = f"was killed by {signal.Signals(-status).name}"
        else:
            what = f"exited with status {status}"
        error = CommandFailed(f"{self.shown} {what}: no snapshot saved")
        error.details = self._stderr.lines(STDERR_TAIL_LINES)
        raise error

    def close(self) -> None:
        """Idempotent. A command still running (its output was not read to the end) is
        terminated, then killed if it does not go."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(_TERMINATE_WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        self._stderr.join()


class _Tail:
    """The last ``_STDERR_KEPT`` bytes a pipe gives, read on a daemon thread (a command that
    writes much to stderr must never block on it)."""

    def __init__(self) -> None:
        self._kept = bytearray()
        self._thread: threading.Thread | None = None

    def drain(self, pipe: IO[bytes]) -> None:
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[bytes]) -> None:
        try:
            while data := pipe.read(65536):
                self._kept += data
                del self._kept[:-_STDERR_KEPT]
        except (OSError, ValueError):  # closed under us: the command is being given up
            pass

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def lines(self, count: int) -> tuple[str, ...]:
        text = self._kept.decode("utf-8", "replace")
        return tuple(line for line in text.splitlines() if line.strip())[-count:]


def _grow_pipe(fd: int) -> None:
    """Ask for a larger pipe buffer when ``fd`` is a pipe (Linux); anything else: as it is."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except (OSError, AttributeError):
        pass
