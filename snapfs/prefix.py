"""Ids as people type them: a unique prefix of one (as restic and git take them)."""

from __future__ import annotations

from collections.abc import Iterable

from snapfs.errors import SnapfsError


def match_prefix(ids: Iterable[str], prefix: str, noun: str, error: type[SnapfsError]) -> str:
    """The one id of ``ids`` that starts with ``prefix``; ``error`` naming the ``noun`` when
    none does, or several."""
    matches = [i for i in ids if i.startswith(prefix)]
    if not matches:
        raise error(f"no {noun} matches {prefix!r}")
    if len(matches) > 1:
        raise error(f"{prefix!r} matches {len(matches)} {noun}s; give more of the id")
    return matches[0]
