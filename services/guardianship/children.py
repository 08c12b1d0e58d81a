"""The children guardianship knows of: a read model of intake's child files, fed by ``ChildFileUpdated`` and
``ChildrenMerged`` (subscription ``guardianship.known_children`` on intake's events).

Guardianship's care obligations hang on these facts: whether the child is covered (has a category), whether the
parents are away (entrusted care and parent contact), why visits must be more frequent, and where the child lives
(township and village, for routing). Codes and dates only: names stay in intake.

Idempotent: every row holds absolute values from the latest event about the child (an older or repeated event
changes nothing), ``registered_on`` is the day guardianship first heard of the child and never changes, and a
merge is never undone by a later file update.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from contracts.envelope import CloudEvent
from contracts.events import ChildFileUpdated, ChildrenMerged
from huhang.sql import create_tables, reading

CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")

metadata = MetaData()
known_children_table = Table(
    "known_children",
    metadata,
    Column("child_id", String(36), primary_key=True),
    Column("township", String(50), nullable=False),
    Column("village", String(50), nullable=False),
    Column("categories", JSON, nullable=False),
    Column("covered", Boolean, nullable=False),  # at least one category
    Column("parents_away", Boolean, nullable=False),
    Column("parents_away_since", Date, nullable=True),
    Column("frequent_visit_reasons", JSON, nullable=False),
    Column("has_entrusted_caregiver", Boolean, nullable=False),
    Column("merged_into", String(36), nullable=True),
    Column("registered_on", Date, nullable=False),  # the day (China time) guardianship first heard of the child
    Column("updated_at", DateTime(timezone=True), nullable=False),  # UTC time of the event the row reflects
    Index("ix_known_children_place", "township", "village"),
)


@dataclass(frozen=True)
class KnownChild:
    child_id: UUID
    township: str
    village: str
    categories: tuple[str, ...]
    parents_away: bool
    parents_away_since: date | None
    frequent_visit_reasons: tuple[str, ...]
    has_entrusted_caregiver: bool
    merged_into: UUID | None
    registered_on: date | None = None  # beyond the shared design; defaulted so that nothing else must pass it

    @property
    def covered(self) -> bool:
        return bool(self.categories)


def _utc(at: datetime) -> datetime:
    """UTC without offset: SQLite keeps no offset, so every stored time is UTC and compares as such."""
    if at.tzinfo is not None:
        at = at.astimezone(UTC)
    return at.replace(tzinfo=None)


def china_date(at: datetime) -> date:
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(CHINA_STANDARD_TIME).date()


def _insert(conn: Connection) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(known_children_table)


class KnownChildren:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(metadata, engine, [known_children_table])

    def handle(self, events: Sequence[CloudEvent]) -> None:
        """One statement per kind of event for the whole batch (executemany), whatever its size."""
        latest: dict[UUID, ChildFileUpdated] = {}
        merges: dict[UUID, ChildrenMerged] = {}
        for e in events:
            if isinstance(e, ChildFileUpdated):
                seen = latest.get(e.data.child_id)
                if seen is None or seen.time <= e.time:
                    latest[e.data.child_id] = e
            elif isinstance(e, ChildrenMerged):
                merges.setdefault(e.data.merged_child_id, e)  # the first merge of a file is the one that counts
        with self.engine.begin() as conn:
            if latest:
                conn.execute(self._file_statement(conn), [_file_row(e) for e in latest.values()])
            if merges:
                conn.execute(self._merge_statement(conn), [_merge_row(e) for e in merges.values()])

    @staticmethod
    def _file_statement(conn: Connection) -> Any:
        t = known_children_table
        stmt = _insert(conn)
        kept = {"child_id", "registered_on", "merged_into"}
        return stmt.on_conflict_do_update(
            index_elements=["child_id"],
            set_={c.name: stmt.excluded[c.name] for c in t.columns if c.name not in kept},
            where=t.c.updated_at <= stmt.excluded.updated_at,  # an older event (replayed) changes nothing
        )

    @staticmethod
    def _merge_statement(conn: Connection) -> Any:
        t = known_children_table
        stmt = _insert(conn)
        return stmt.on_conflict_do_update(
            index_elements=["child_id"], set_={"merged_into": stmt.excluded.merged_into},
            where=t.c.merged_into.is_(None),
        )

    def get(self, child_id: UUID) -> KnownChild | None:
        t = known_children_table
        with reading(self.engine) as conn:
            row = conn.execute(select(t).where(t.c.child_id == str(child_id))).one_or_none()
        return None if row is None else known_child_from_row(row)

    def get_many(self, child_ids: Sequence[UUID]) -> dict[UUID, KnownChild]:
        t = known_children_table
        found: dict[UUID, KnownChild] = {}
        ids = [str(c) for c in child_ids]
        with reading(self.engine) as conn:
            for start in range(0, len(ids), 500):
                rows = conn.execute(select(t).where(t.c.child_id.in_(ids[start:start + 500])))
                for row in rows:
                    child = known_child_from_row(row)
                    found[child.child_id] = child
        return found

    def covered_by_village(self) -> dict[tuple[str, str], int]:
        """(township, village) -> children with at least one category; merged ones are not counted."""
        t = known_children_table
        query = (
            select(t.c.township, t.c.village, func.count())
            .where(t.c.covered.is_(True), t.c.merged_into.is_(None))
            .group_by(t.c.township, t.c.village)
        )
        with reading(self.engine) as conn:
            return {(township, village): int(n) for township, village, n in conn.execute(query)}

    def in_village(self, township: str, village: str) -> list[KnownChild]:
        """Every child of the village (covered or not), merged ones excluded, in a stable order (child id)."""
        t = known_children_table
        query = (
            select(t)
            .where(t.c.township == township, t.c.village == village, t.c.merged_into.is_(None))
            .order_by(t.c.child_id)
        )
        with reading(self.engine) as conn:
            return [known_child_from_row(row) for row in conn.execute(query)]

    def covered_children(self, batch_size: int = 5000) -> Iterator[KnownChild]:
        """Every covered child not merged away, streamed in batches (the scheduled care checks)."""
        t = known_children_table
        query = select(t).where(t.c.covered.is_(True), t.c.merged_into.is_(None)).order_by(t.c.child_id)
        with self.engine.connect() as conn:  # streamed by a server-side cursor: that takes a transaction
            result = conn.execution_options(yield_per=batch_size).execute(query)
            for row in result:
                yield known_child_from_row(row)


def _file_row(e: ChildFileUpdated) -> dict[str, Any]:
    d = e.data
    return {
        "child_id": str(d.child_id), "township": d.township, "village": d.village,
        "categories": sorted(c.value for c in d.categories), "covered": bool(d.categories),
        "parents_away": d.parents_away, "parents_away_since": d.parents_away_since,
        "frequent_visit_reasons": sorted(d.frequent_visit_reasons),
        "has_entrusted_caregiver": d.has_entrusted_caregiver, "merged_into": None,
        "registered_on": china_date(e.time), "updated_at": _utc(e.time),
    }


def _merge_row(e: ChildrenMerged) -> dict[str, Any]:
    """A merged file's row (a placeholder if guardianship never heard of it: it still answers 'merged into')."""
    d = e.data
    return {
        "child_id": str(d.merged_child_id), "township": d.township, "village": d.village, "categories": [],
        "covered": False, "parents_away": False, "parents_away_since": None, "frequent_visit_reasons": [],
        "has_entrusted_caregiver": False, "merged_into": str(d.child_id),
        "registered_on": china_date(e.time), "updated_at": _utc(e.time),
    }


def known_child_from_row(row: Any) -> KnownChild:
    return KnownChild(
        child_id=UUID(row.child_id), township=row.township, village=row.village,
        categories=tuple(row.categories), parents_away=bool(row.parents_away),
        parents_away_since=row.parents_away_since, frequent_visit_reasons=tuple(row.frequent_visit_reasons),
        has_entrusted_caregiver=bool(row.has_entrusted_caregiver),
        merged_into=UUID(row.merged_into) if row.merged_into else None, registered_on=row.registered_on,
    )
