"""DuckDB with extensions from their PyPI wheels (``duckdb-extension-*``), loaded by path:
tests never reach the network, so nothing is installed or autoloaded at run time."""

from __future__ import annotations

import importlib
from pathlib import Path

import duckdb


def connect(*extensions: str) -> duckdb.DuckDBPyConnection:
    """A connection with ``extensions`` loaded in order (iceberg needs avro before it)."""
    con = duckdb.connect(config={
        "allow_unsigned_extensions": "true",
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
    })  # fmt: skip
    for name in extensions:
        con.execute(f"LOAD '{_extension_file(name)}'")
    return con


def _extension_file(name: str) -> Path:
    package = importlib.import_module(f"duckdb_extension_{name}")
    return (
        Path(package.__file__ or "").parent / "extensions" / f"v{duckdb.__version__}"
        / f"{name}.duckdb_extension"
    )  # fmt: skip
