"""Tables inside a source (DESIGN.md §10): find them, pin one committed version, give its
complete file set. Pure functions over sources.files.Files, so a local directory, an S3
prefix or a snapshot's trees all serve as input; never the repository."""

from snapfs.tables.base import Pin
from snapfs.tables.formats import find_tables, pin, table_format

__all__ = ["Pin", "find_tables", "pin", "table_format"]
