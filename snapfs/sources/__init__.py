"""What a backup reads (DESIGN.md §10): the Source protocol (base.py), the mapping of object
keys to path names (keys.py), and one module per kind of source (s3.py). Sources sit beside
the store: they use its S3 client module, retry policy and errors, never the repository."""

from snapfs.sources.base import (
    Content,
    Entry,
    ObjectReplaced,
    ObjectVanished,
    Source,
    SourceNotFound,
    walk,
)

__all__ = ["Content", "Entry", "ObjectReplaced", "ObjectVanished", "Source", "SourceNotFound",
           "walk"]  # fmt: skip
