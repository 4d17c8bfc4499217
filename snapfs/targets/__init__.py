"""What a restore writes (DESIGN.md §10), one module per kind of target. Targets sit beside
the store, as sources do: its S3 client module, retry policy and errors, never the
repository."""
