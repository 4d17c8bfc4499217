"""Numbers as people read them; shared by the CLI and the TUI so both say sizes alike."""

from __future__ import annotations

from datetime import datetime


def size(n: float) -> str:
    """Binary units, as restic and borg print them: ``512 B``, ``1.5 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def local_time(t: float | None) -> str:
    """A Unix time in this machine's local time, to the second; ``-`` for none."""
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else "-"
