"""One exception class per failure a user can see. Exit codes live in cli/main.py, not here."""

from __future__ import annotations


class SnapfsError(Exception):
    """Base of every error snapfs reports to a user; its message is one line, meant for them.
    ``details``: lines shown after it, as they are (a failed command's stderr, say)."""

    details: tuple[str, ...] = ()


class RepositoryNotFound(SnapfsError):
    pass


class RepositoryExists(SnapfsError):
    pass


class WrongPassword(SnapfsError):
    pass


class RepositoryLocked(SnapfsError):
    pass


class SnapshotNotFound(SnapfsError):
    pass


class PathNotFound(SnapfsError):
    pass


class KeyNotFound(SnapfsError):
    """No key file, or several, match the id given."""


class KeyInUse(SnapfsError):
    """The key file the repository was opened with may not be removed."""


class IntegrityError(SnapfsError):
    """Stored data failed authentication or did not hash to its id."""


class UnsupportedFormat(SnapfsError):
    pass


class BackendError(SnapfsError):
    """The storage backend failed in a way that retrying did not mend."""


class ShortRead(BackendError):
    """A range read past the end of the stored object (a truncated pack, for one)."""


class BucketNotFound(RepositoryNotFound):
    """The S3 bucket named by the repository location does not exist."""


class AccessDenied(BackendError):
    """The storage refused the credentials (wrong key, wrong secret, or no permission)."""


class TableUnreadable(SnapfsError):
    """A table's log cannot be pinned at a committed version (no contiguous log, a
    checkpoint or commit that does not parse): its files are backed up as plain files."""


class ConfigError(SnapfsError):
    """The config file is unreadable or wrong; the message names the file and the key."""
