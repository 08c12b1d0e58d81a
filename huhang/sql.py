"""Small SQL helpers shared by the read models (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, MetaData, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, InternalError, ProgrammingError

T = TypeVar("T")


def reading(engine: Engine) -> Connection:
    """A connection for reads alone (``with reading(engine) as conn``), in autocommit: PostgreSQL is sent no BEGIN
    before the first statement and no ROLLBACK at the end, two round trips of three for a one-statement read.
    Each statement sees its own snapshot, as every statement of a READ COMMITTED transaction already does; a read
    that needs one snapshot for several statements, ``SET LOCAL`` or a server-side cursor (``yield_per``) takes
    ``engine.connect()`` instead."""
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def dialect_insert(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT (with ``on_conflict_do_*``) for this connection: PostgreSQL or SQLite."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


_insert = dialect_insert


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


def racing_ddl(create: Callable[[], T], attempts: int = 5) -> T:
    """Run schema creation that another process may be running at the same moment (an API and its worker
    starting together): PostgreSQL's ``IF NOT EXISTS`` is not atomic and the loser gets a unique violation;
    trying again finds the winner's tables."""
    for attempt in range(attempts - 1):
        try:
            return create()
        except (IntegrityError, ProgrammingError, InternalError):  # "duplicate key", "tuple concurrently updated"
            time.sleep(0.2 * (attempt + 1))
    return create()


def create_tables(metadata: MetaData, engine: Engine, tables: list[Table] | None = None) -> None:
    racing_ddl(lambda: metadata.create_all(engine, tables=tables))
