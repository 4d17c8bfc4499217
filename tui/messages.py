"""Messages that cross screens. A widget's own messages are nested in its class."""

from __future__ import annotations

from textual.message import Message

from snapfs import Repository


class RepositoryOpened(Message):
    """The repository is unlocked; the App keeps it (and the password, for mounts)."""

    def __init__(self, repository: Repository, password: str) -> None:
        super().__init__()
        self.repository = repository
        self.password = password


class RepositoryFailed(Message):
    """The repository could not be opened for a reason a new password will not fix."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class SnapshotsChanged(Message):
    """A backup, forget or prune changed the list of snapshots: reload it."""


class WorkFailed(Message):
    """A worker's operation raised. The screen that started it resets itself; the error
    becomes a notification, never a crash."""

    def __init__(self, action: str, error: BaseException) -> None:
        super().__init__()
        self.action = action
        self.error = error
