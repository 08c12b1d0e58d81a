"""The persistent duplicate-match index: intake's registered children under their blocking keys.

A read model table in intake's read-model store (SQLite or PostgreSQL). Lookup fetches only the rows that share a
blocking key with the records asked about (one query per chunk of records, ``IN`` on the indexed key columns),
then scores them in Python with the same matcher as in memory (``services.intake.matching``). Names and
identity-card numbers are held here as in intake's own event store; nothing is logged.

A batch travels as one parameter each way: the keys looked up as one JSON array (``among``), the rows filed as one
JSON array of objects (``upsert_rows``). Binding thousands of separate parameters, or executing the statement once
per row, costs more than the lookup or the write itself.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    BindParameter,
    Column,
    ColumnElement,
    Connection,
    Engine,
    Index,
    MetaData,
    Select,
    String,
    Table,
    Text,
    any_,
    bindparam,
    cast,
    column,
    delete,
    func,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite

from huhang.personal import ChildKeys, PersonalDataErased
from huhang.sql import create_tables, reading
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
    # The record (name, sex, birth date, identity-card number, township, village), sealed under the child's key:
    # the database never holds it in clear, and a child's erasure leaves nothing readable here.
    Column("sealed", Text, nullable=False),  # base64
    # The keys, blinded (a keyed hash, huhang.personal.Blinder): equal keys still meet, but they reveal nothing.
    Column("id_card_number", String(64), nullable=True),
    Column("key_date_name", String(64), nullable=False),
    Column("key_place_date", String(64), nullable=False),
    Column("key_place_name", String(64), nullable=False),
    Index("ix_child_match_index_id_card", "id_card_number"),
    Index("ix_child_match_index_date_name", "key_date_name"),
    Index("ix_child_match_index_place_date", "key_place_date"),
    Index("ix_child_match_index_place_name", "key_place_name"),
)


class MatchIndex:
    def __init__(self, engine: Engine, keys: ChildKeys, threshold: float = PROBABLE_AT) -> None:
        self.engine = engine
        self.keys = keys
        self.blind = keys.blinder("child-match-index")
        self.threshold = checked_threshold(threshold)
        create_tables(metadata, engine, [match_index_table])

    def upsert(self, records: Sequence[PersonRecord]) -> None:
        """File the records under their keys, replacing what was filed for the same child ids. Idempotent."""
        latest = {r.child_id: r for r in records}  # one row per child: the last record given wins
        self._file([prepare(r) for r in latest.values()])

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
        return self._match(queries, {}, limit, within_batch)

    def file_and_match(
        self, new: Sequence[PersonRecord], records: Sequence[PersonRecord], limit: int = 5
    ) -> dict[UUID, list[Match]]:
        """``upsert(new)`` then ``candidates_many(records)``, with each record prepared once and the records just
        filed scored as they were filed, not read back (a registration batch: its new children go into the index
        first, so that matching sees the whole batch and a concurrent batch sees them)."""
        filed = {r.child_id: r for r in new}
        features = {child_id: prepare(r) for child_id, r in filed.items()}
        self._file(list(features.values()))
        queries = []
        for child_id, r in {r.child_id: r for r in records}.items():
            same = features.get(child_id)
            queries.append(same if same is not None and filed[child_id] == r else prepare(r))
        return self._match(queries, features, limit, within_batch=False)

    def _file(self, features: Sequence[Features]) -> None:
        if not features:
            return
        self.keys.ensure(f.record.child_id for f in features)
        rows = [self._row(f) for f in features]
        with self.engine.begin() as conn:
            for chunk in _chunks(rows, WRITE_CHUNK):
                upsert_rows(conn, match_index_table, chunk, key="child_id")

    def _match(
        self, queries: Sequence[Features], filed: Mapping[UUID, Features], limit: int, within_batch: bool
    ) -> dict[UUID, list[Match]]:
        """Score ``queries`` against the rows sharing a key with them; ``filed``: records just filed, added from
        memory in place of their rows."""
        wanted = [lookup_keys(q) for q in queries]
        matcher = DuplicateMatcher(self.threshold)
        for features in filed.values():
            matcher.add_prepared(features)
        if queries:
            skip = frozenset(str(child_id) for child_id in filed)
            with reading(self.engine) as conn:
                for chunk in _chunks(wanted, QUERY_CHUNK):
                    for stored in self._fetch(conn, chunk, skip):
                        matcher.add(stored)
        result: dict[UUID, list[Match]] = {}
        for query, keys in zip(queries, wanted, strict=True):
            result[query.record.child_id] = matcher.candidates_prepared(query, limit, keys)
            if within_batch:
                matcher.add_prepared(query)
        return result


    def _row(self, f: Features) -> dict[str, Any]:
        keys = stored_keys(f)
        r = f.record
        record = {
            "name": r.name, "sex": r.sex, "birth_date": r.birth_date.isoformat(), "id_card_number": f.id_key,
            "township": r.township, "village": r.village,
        }
        return {
            "child_id": str(r.child_id),
            "sealed": base64.b64encode(self.keys.seal(r.child_id, json.dumps(record).encode())).decode(),
            "id_card_number": self.blind(f.id_key) if f.id_key else None,
            "key_date_name": self.blind(keys.date_name[0]), "key_place_date": self.blind(keys.place_date[0]),
            "key_place_name": self.blind(keys.place_name[0]),
        }

    def _fetch(
        self, conn: Connection, wanted: Sequence[BlockingKeys], skip: frozenset[str] = frozenset()
    ) -> Iterator[PersonRecord]:
        """The rows filed under any of the keys, each once, but for the child ids in ``skip`` (and the children
        erased meanwhile)."""
        params = {
            name: json.dumps(sorted({self.blind(k) for k in _all(wanted, part)})) for name, part in _KEY_PARTS.items()
        }
        seen = set(skip)
        rows = []
        for row in conn.execute(_fetch_statement(conn.dialect.name), params):
            if row.child_id not in seen:
                seen.add(row.child_id)
                rows.append(row)
        self.keys.preload(UUID(row.child_id) for row in rows)
        for row in rows:
            child_id = UUID(row.child_id)
            try:
                r = json.loads(self.keys.open(child_id, base64.b64decode(row.sealed)))
            except PersonalDataErased:
                continue
            yield PersonRecord(
                child_id=child_id, name=r["name"], sex=r["sex"], birth_date=date.fromisoformat(r["birth_date"]),
                id_card_number=r["id_card_number"], township=r["township"], village=r["village"],
            )


# The lookup's parameters: the keys of each kind, as one JSON array each (an empty array matches nothing).
_KEY_PARTS: dict[str, Callable[[BlockingKeys], tuple[str, ...]]] = {
    "id_card_number": lambda k: k.id_card,
    "key_date_name": lambda k: k.date_name,
    "key_place_date": lambda k: k.place_date,
    "key_place_name": lambda k: k.place_name,
}


@functools.cache
def _fetch_statement(dialect: str) -> Any:
    """Built once per dialect: building the statement cost more than running it (a report looks up one child)."""
    t = match_index_table
    columns = (t.c.child_id, t.c.sealed)
    conditions = [_among(dialect, t.c[name], bindparam(name, type_=String)) for name in _KEY_PARTS]
    if dialect == "postgresql":
        # One index lookup per key column (a semi-join each): an OR of the four lets the planner pick a sequential
        # scan that tests every row against every key.
        return union_all(*(select(*columns).where(condition) for condition in conditions))
    return select(*columns).where(or_(*conditions))


def among(conn: Connection, column: Column[Any], values: list[str]) -> ColumnElement[bool]:
    """``column IN values`` with the values as one JSON array parameter, unnested by the database (PostgreSQL's
    json_array_elements_text, SQLite's json_each) and looked up in the column's index: thousands of separate
    parameters, or a PostgreSQL array parameter, cost more to bind than the lookup itself."""
    return _among(conn.dialect.name, column, bindparam(None, json.dumps(values, ensure_ascii=False), type_=String))


def _among(dialect: str, column: Column[Any], values_json: BindParameter[str]) -> ColumnElement[bool]:
    if dialect == "postgresql":
        # = ANY(ARRAY(subquery)): the array is computed once (an InitPlan) and the index is probed with its values.
        # As a semi-join (IN (subquery)), the planner takes the unnested array for 100 rows and scans the whole
        # table instead: 1.2 ms against 0.15 ms for a report's lookup at 1,000 children, and growing with them.
        values = select(func.json_array_elements_text(cast(values_json, JSON))).scalar_subquery()
        return column == any_(func.array(values))
    listed = func.json_each(values_json).table_valued("value")
    return column.in_(select(listed.c.value))


def upsert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], key: str) -> None:
    """Insert the rows (a value for every column of ``table``), replacing the rows with the same ``key``: one
    statement with the rows as one JSON parameter, read by PostgreSQL's json_to_recordset or SQLite's json_each.
    Values: strings, numbers, booleans, None, dates, and lists or dicts for JSON columns."""
    if rows:
        payload = json.dumps(list(rows), ensure_ascii=False, default=_json_value)
        conn.execute(_upsert_statement(conn.dialect.name, table, key), {"rows": payload})


@functools.cache
def _upsert_statement(dialect: str, table: Table, key: str) -> Any:
    """Built once per dialect and table: building it cost more than running it for one row."""
    columns = list(table.columns)
    insert: Any = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    stmt = insert.from_select([c.name for c in columns], _rows_select(dialect, columns))
    return stmt.on_conflict_do_update(
        index_elements=[key], set_={c.name: stmt.excluded[c.name] for c in columns if c.name != key},
    )


def _rows_select(dialect: str, columns: Sequence[Column[Any]]) -> Select[Any]:
    payload = bindparam("rows", type_=String)
    if dialect == "postgresql":
        records = (
            func.json_to_recordset(cast(payload, JSON))
            .table_valued(*(column(c.name, c.type) for c in columns))
            .render_derived(with_types=True)
        )
        return select(*(records.c[c.name] for c in columns))
    each = func.json_each(payload).table_valued("value")
    # "WHERE true": SQLite reads ON CONFLICT after a SELECT without WHERE as part of a join
    return select(*(func.json_extract(each.c.value, f"$.{c.name}").label(c.name) for c in columns)).where(true())


def _json_value(value: object) -> str:
    if isinstance(value, date):  # a datetime too: not used by these tables
        return value.isoformat()
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _all(wanted: Sequence[BlockingKeys], part: Callable[[BlockingKeys], tuple[str, ...]]) -> set[str]:
    return {key for keys in wanted for key in part(keys)}


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
