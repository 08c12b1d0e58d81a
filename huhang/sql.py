"""Small SQL helpers shared by the read models (SQLite and PostgreSQL alike)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def _insert(conn: Connection, table: Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def insert_ignoring_duplicates(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows whose key is new; a repeat delivery changes nothing.

    One statement executed with many parameter sets (executemany, "insertmanyvalues"), not a statement built
    anew per batch: measured several times faster for the read models' batches.
    """
    if rows:
        conn.execute(_insert(conn, table).on_conflict_do_nothing(), [dict(r) for r in rows])


def upsert(conn: Connection, table: Table, row: Mapping[str, Any], keys: Sequence[str]) -> None:
    stmt = _insert(conn, table).values(dict(row))
    updates = {k: v for k, v in row.items() if k not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=updates))
