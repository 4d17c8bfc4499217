"""What every screen works on once the repository is open."""

from __future__ import annotations

from dataclasses import dataclass

from snapfs import Repository
from tui.mounts import Mounts


@dataclass
class Session:
    """The open repository (thread-safe reads; operations take their own locks), where it
    is, and the mounts made from here. The password stays only for mount children."""

    location: str
    repository: Repository
    mounts: Mounts
