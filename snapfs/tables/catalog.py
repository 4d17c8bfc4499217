"""A pyiceberg SQL catalog that restored Iceberg tables are registered in
(``snapfs restore --iceberg-catalog URI``), so that readers finding tables by name find the
restored one.

The catalog is pyiceberg's ``SqlCatalog`` over a SQLAlchemy URI (``sqlite:////a/c.db``,
``postgresql+psycopg2://...``); its tables are created there when missing, as pyiceberg
does. A table is named by its restored directory: ``.../NS/NAME`` (or Hive's
``.../NS.db/NAME``) is ``NS.NAME``, as pyiceberg lays a catalog's tables out below its
warehouse. pyiceberg is imported only here, when a catalog is asked for (half a second).
"""

from __future__ import annotations

import os
from typing import Any

from snapfs.errors import SnapfsError

DEFAULT_NAME = "default"  # the catalog pyiceberg's load_catalog() opens when given no name


class CatalogError(SnapfsError):
    """The catalog cannot be opened, or a table cannot be registered there."""


def identifier(directory: str) -> tuple[str, str]:
    """``(NS, NAME)`` of the table at ``directory``: its parent's name (``.db`` left off)
    and its own."""
    parent, name = os.path.split(os.path.abspath(directory).rstrip("/"))
    namespace = os.path.basename(parent).removesuffix(".db")
    if not namespace or not name:
        raise CatalogError(f"{directory}: no NS/NAME directories to name the table by")
    return namespace, name


class IcebergCatalog:
    """The SQL catalog ``name`` at SQLAlchemy ``uri``. CatalogError when pyiceberg is not
    installed or the catalog cannot be opened."""

    def __init__(self, uri: str, name: str = DEFAULT_NAME) -> None:
        try:
            from pyiceberg.catalog.sql import SqlCatalog
        except ImportError:
            raise CatalogError(
                "an Iceberg catalog needs pyiceberg: pip install 'snapfs[iceberg]'"
            ) from None
        self.uri = uri
        try:
            self._catalog: Any = SqlCatalog(name, uri=uri)
        except Exception as e:  # SQLAlchemy's errors for a bad URI or server are many kinds
            raise CatalogError(f"{uri}: not a SQL catalog: {_first_line(e)}") from None

    def register(self, directory: str, metadata: str) -> str:
        """Register the table at ``directory`` as ``NS.NAME`` reading ``metadata`` (a local
        path). Its name: one registered already naming that file is left as it is (a
        restore run again). CatalogError when the name is taken by another table."""
        from pyiceberg.exceptions import TableAlreadyExistsError

        namespace, name = identifier(directory)
        location = f"file://{metadata}"
        try:
            self._catalog.create_namespace_if_not_exists(namespace)
            self._catalog.register_table((namespace, name), location)
        except TableAlreadyExistsError:
            taken = self._location(namespace, name)
            if taken not in (location, metadata):
                raise CatalogError(
                    f"{namespace}.{name} is in the catalog already, reading {taken}: left as it is"
                ) from None
        except Exception as e:
            raise CatalogError(f"{namespace}.{name}: not registered: {_first_line(e)}") from None
        return f"{namespace}.{name}"

    def _location(self, namespace: str, name: str) -> str:
        """The metadata file the catalog names for ``NS.NAME`` (without reading it: it may
        be gone)."""
        from pyiceberg.catalog.sql import IcebergTables
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        query = select(IcebergTables.metadata_location).where(
            IcebergTables.catalog_name == self._catalog.name,
            IcebergTables.table_namespace == namespace,
            IcebergTables.table_name == name,
        )
        with Session(self._catalog.engine) as session:
            found = session.execute(query).scalar()
        return str(found)


def _first_line(error: Exception) -> str:
    """SQLAlchemy's messages go on with a line of background: the first says what."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
