"""The persistent duplicate-match index: intake's registered children under their blocking keys.

A read model table in intake's read-model store (SQLite or PostgreSQL). Lookup fetches only the rows that share a
blocking key with the records asked about (one query per chunk of records, ``IN`` on the indexed key columns),
then scores them in Python with the same matcher as in memory (``services.intake.matching``). Names and
identity-card numbers are held here as in intake's own event store; nothing is logged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Date,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    any_,
    bindparam,
    delete,
    func,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from huhang.sql import create_tables
from services.intake.matching import (
    PROBABLE_AT,
    BlockingKeys,
    DuplicateMatcher,
    Features,
    Match,
    PersonRecord,
    checked_threshold,
    lookup_keys,
    prepare,
    stored_keys,
)

QUERY_CHUNK = 1000  # records per lookup query (four parameters, each a list of up to a few thousand keys)
WRITE_CHUNK = 1000

metadata = MetaData()
match_index_table = Table(
    "child_match_index",
    metadata,
    Column("child_id", String(36), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("sex", String(16), nullable=False),
    Column("birth_date", Date, nullable=False),
    Column("id_card_number", String(18), nullable=True),  # normalised: 18 characters, upper-cased, else NULL
    Column("township", String(100), nullable=False),
    Column("village", String(100), nullable=False),
    Column("key_date_name", String(300), nullable=False),
    Column("key_place_date", String(200), nullable=False),
    Column("key_place_name", String(300), nullable=False),
    Index("ix_child_match_index_id_card", "id_card_number"),
    Index("ix_child_match_index_date_name", "key_date_name"),
    Index("ix_child_match_index_place_date", "key_place_date"),
    Index("ix_child_match_index_place_name", "key_place_name"),
)


class MatchIndex:
    def __init__(self, engine: Engine, threshold: float = PROBABLE_AT) -> None:
        self.engine = engine
        self.threshold = checked_threshold(threshold)
        create_tables(metadata, engine, [match_index_table])

    def upsert(self, records: Sequence[PersonRecord]) -> None:
        """File the records under their keys, replacing what was filed for the same child ids. Idempotent."""
        latest = {r.child_id: r for r in records}  # one row per child: the last record given wins
        rows = [_row(prepare(r)) for r in latest.values()]
        with self.engine.begin() as conn:
            for chunk in _chunks(rows, WRITE_CHUNK):
                _upsert(conn, chunk)

    def remove(self, child_ids: Sequence[UUID]) -> None:
        ids = sorted({str(c) for c in child_ids})
        with self.engine.begin() as conn:
            for chunk in _chunks(ids, WRITE_CHUNK):
                conn.execute(delete(match_index_table).where(match_index_table.c.child_id.in_(chunk)))

    def candidates(self, record: PersonRecord, limit: int = 5) -> list[Match]:
        """Probable duplicates of ``record`` among the children filed, best first; never ``record`` itself."""
        return self.candidates_many([record], limit)[record.child_id]

    def candidates_many(
        self, records: Sequence[PersonRecord], limit: int = 5, *, within_batch: bool = False
    ) -> dict[UUID, list[Match]]:
        """The candidates of each record (by child id), one query per ``QUERY_CHUNK`` records.

        With ``within_batch``, each record is also compared with the records before it in ``records``, as if
        they had been filed one by one in that order (an import whose file repeats a child)."""
        queries = [prepare(r) for r in {r.child_id: r for r in records}.values()]
        wanted = [lookup_keys(q) for q in queries]
        matcher = DuplicateMatcher(self.threshold)
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted, QUERY_CHUNK):
                for stored in _fetch(conn, chunk):
                    matcher.add(stored)
        result: dict[UUID, list[Match]] = {}
        for query, keys in zip(queries, wanted, strict=True):
            result[query.record.child_id] = matcher.candidates_prepared(query, limit, keys)
            if within_batch:
                matcher.add_prepared(query)
        return result


def _row(f: Features) -> dict[str, Any]:
    keys = stored_keys(f)
    r = f.record
    return {
        "child_id": str(r.child_id), "name": r.name, "sex": r.sex, "birth_date": r.birth_date,
        "id_card_number": f.id_key, "township": r.township, "village": r.village,
        "key_date_name": keys.date_name[0], "key_place_date": keys.place_date[0], "key_place_name": keys.place_name[0],
    }


def _upsert(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    dialect: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(match_index_table)
    updates = {c.name: stmt.excluded[c.name] for c in match_index_table.columns if c.name != "child_id"}
    conn.execute(stmt.on_conflict_do_update(index_elements=["child_id"], set_=updates), list(rows))


def _fetch(conn: Connection, wanted: Sequence[BlockingKeys]) -> Iterator[PersonRecord]:
    t = match_index_table
    conditions = [
        _among(conn, column, sorted(values))
        for column, values in (
            (t.c.id_card_number, _all(wanted, lambda k: k.id_card)),
            (t.c.key_date_name, _all(wanted, lambda k: k.date_name)),
            (t.c.key_place_date, _all(wanted, lambda k: k.place_date)),
            (t.c.key_place_name, _all(wanted, lambda k: k.place_name)),
        )
        if values
    ]
    query = select(
        t.c.child_id, t.c.name, t.c.sex, t.c.birth_date, t.c.id_card_number, t.c.township, t.c.village
    ).where(or_(*conditions))
    for row in conn.execute(query):
        yield PersonRecord(
            child_id=UUID(row.child_id), name=row.name, sex=row.sex, birth_date=row.birth_date,
            id_card_number=row.id_card_number, township=row.township, village=row.village,
        )


def _among(conn: Connection, column: Column[Any], values: list[str]) -> ColumnElement[bool]:
    """``column IN values`` with the values as one parameter (a PostgreSQL array, a JSON array read by SQLite's
    json_each): thousands of separate parameters cost more to bind than the lookup itself."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(String)))
    listed = func.json_each(bindparam(None, json.dumps(values, ensure_ascii=False), type_=String)).table_valued("value")
    return column.in_(select(listed.c.value))


def _all(wanted: Sequence[BlockingKeys], part: Callable[[BlockingKeys], tuple[str, ...]]) -> set[str]:
    return {key for keys in wanted for key in part(keys)}


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
