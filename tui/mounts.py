"""Mounts made from the TUI. Each is the ``snapfs mount`` command in a child process (it
daemonizes once the mount is up): a process must never read its own FUSE mount from the
thread serving it, and a crash of either side must not take the other down (DESIGN.md §5).
The password goes to the child through its environment, never its argv, which any user on
the machine can read in /proc."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from snapfs import SnapfsError
from tui.children import failure_reason

MOUNT_TIMEOUT = 60.0
SNAPFS_COMMAND = (sys.executable, "-m", "snapfs")


class MountFailed(SnapfsError):
    """``snapfs mount`` or ``snapfs umount`` exited with an error (its last line says why)."""


@dataclass
class Mounts:
    """The mounts this TUI started, mountpoint -> snapshot id. Methods block: call them from
    a worker thread."""

    location: str
    password: str
    command: Sequence[str] = SNAPFS_COMMAND
    s3_endpoint: str | None = None
    active: dict[str, str] = field(default_factory=dict)

    def mount(self, mountpoint: str, snapshot_id: str) -> None:
        where = os.path.abspath(os.path.expanduser(mountpoint))
        endpoint = ["--s3-endpoint", self.s3_endpoint] if self.s3_endpoint else []
        self._run("mount", ["-r", self.location, *endpoint, "mount", where, snapshot_id])
        self.active[where] = snapshot_id

    def unmount(self, mountpoint: str) -> None:
        self._run("umount", ["umount", mountpoint])
        self.active.pop(mountpoint, None)

    def unmount_all(self) -> list[str]:
        """Unmount everything started here; returns the errors (the TUI is quitting)."""
        errors = []
        for mountpoint in list(self.active):
            try:
                self.unmount(mountpoint)
            except (SnapfsError, OSError, subprocess.SubprocessError) as e:
                errors.append(f"{mountpoint}: {e}")
        return errors

    def _run(self, verb: str, args: list[str]) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPFS_PASSWORD")}
        env["SNAPFS_PASSWORD"] = self.password
        try:
            done = subprocess.run(
                [*self.command, *args],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=MOUNT_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise MountFailed(f"snapfs {verb} took longer than {MOUNT_TIMEOUT:.0f}s") from None
        if done.returncode != 0:
            raise MountFailed(failure_reason(done))
