"""snapfs: deduplicating, encrypted backups of data lakes, mountable read-only through FUSE."""

__version__ = "0.1.0"
