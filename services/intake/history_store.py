"""Reconstructing a case as of any moment from the timeline, quickly: snapshots of the folded case.

Every ``SNAPSHOT_INTERVAL`` events of a case (in the history's order: event time, then event id), the timeline's
handler stores a snapshot in ``case_history_snapshots``: the case as folded up to that event, and the history
entries of the events since the snapshot before. A reconstruction as of a moment loads the entries of the snapshots
at or before it, the state of the last one, and folds only the events after it (fewer than ``SNAPSHOT_INTERVAL``).

Timeline rows are only ever added, so a snapshot stays right as long as the number of rows at or before its last
event is the number it folded. An event that arrives late (another service's clock, a slow topic) with an earlier
time changes that count: the reader checks it for the snapshot it uses and, when it no longer agrees, drops the
case's snapshots and makes them again. Without snapshots (``use_snapshots=False``) the answer is the same: the
tests and the benchmark hold the two to it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    delete,
    func,
    or_,
    select,
)

from huhang.sql import create_tables, insert_ignoring_duplicates, reading
from services.intake.history import Json, empty_case, entry_of, fold_into, history_event

logger = logging.getLogger(__name__)

SNAPSHOT_INTERVAL = 100

metadata = MetaData()
snapshots_table = Table(
    "case_history_snapshots",
    metadata,
    Column("case_id", String(64), primary_key=True),
    Column("event_count", Integer, primary_key=True, autoincrement=False),  # events folded in: 100, 200, ...
    Column("last_time", DateTime(timezone=True), nullable=False),  # the last of them (time, event id)
    Column("last_event_id", String(36), nullable=False),
    Column("state", JSON, nullable=False),
    Column("entries", JSON, nullable=False),  # the history entries of the events since the snapshot before
    Column("created_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class CaseHistory:
    """A case as it stood at ``as_of``: the folded case and the entries of the events that made it so."""

    case_id: str
    as_of: datetime
    case: Json
    events: list[Json]


@dataclass(frozen=True)
class _Snapshot:
    event_count: int
    last_time: datetime
    last_event_id: str


def _utc(value: datetime) -> datetime:
    """What the stores compare: an aware UTC datetime (SQLite keeps naive UTC text, PostgreSQL converts)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class CaseHistoryStore:
    """Case reconstruction over the timeline table (``timeline``), with its snapshots beside it."""

    def __init__(self, engine: Engine, timeline: Table, *, interval: int = SNAPSHOT_INTERVAL) -> None:
        self.engine = engine
        self.timeline = timeline
        self.interval = interval
        create_tables(metadata, engine, [snapshots_table])

    # --- reading -------------------------------------------------------------------------------------------------

    def history(self, case_id: str, as_of: datetime, *, use_snapshots: bool = True) -> CaseHistory | None:
        """The case as of ``as_of`` (inclusive); None when no event of the case is that old."""
        as_of = _utc(as_of)
        with reading(self.engine) as conn:
            snapshots = self._snapshots_until(conn, case_id, as_of) if use_snapshots else []
            if snapshots and not self._still_right(conn, case_id, snapshots[-1]):
                snapshots = []
                stale = True
            else:
                stale = False
            if snapshots:
                last = snapshots[-1]
                state, entries = self._load(conn, case_id, last.event_count)
                after: tuple[datetime, str] | None = (last.last_time, last.last_event_id)
            else:
                state, entries, after = empty_case(case_id), [], None
            tail = self._rows(conn, case_id, after=after, until=as_of)
        if stale:
            logger.info("case %s: snapshots out of date (a late event); made again", case_id)
            self.rebuild(case_id)
        if not snapshots and not tail:
            return None
        tail_events = [history_event(r) for r in tail]
        # The state was just made (or parsed from its snapshot) for this call: folded in place.
        return CaseHistory(case_id, as_of, fold_into(state, tail_events), entries + [entry_of(e) for e in tail_events])

    def _snapshots_until(self, conn: Connection, case_id: str, as_of: datetime) -> list[_Snapshot]:
        s = snapshots_table.c
        rows = conn.execute(
            select(s.event_count, s.last_time, s.last_event_id)
            .where(s.case_id == case_id, s.last_time <= as_of)
            .order_by(s.event_count)
        ).all()
        snapshots = [_Snapshot(int(n), _utc(t), str(e)) for n, t, e in rows]
        # Only an unbroken run from the first counts (a rebuild in progress elsewhere may have left a gap).
        run = []
        for expected, snapshot in enumerate(snapshots, start=1):
            if snapshot.event_count != expected * self.interval:
                break
            run.append(snapshot)
        return run

    def _still_right(self, conn: Connection, case_id: str, snapshot: _Snapshot) -> bool:
        t = self.timeline.c
        count = conn.execute(
            select(func.count()).select_from(self.timeline).where(
                t.case_id == case_id, _at_or_before(t, snapshot.last_time, snapshot.last_event_id)
            )
        ).scalar_one()
        return int(count) == snapshot.event_count

    def _load(
        self, conn: Connection, case_id: str, through: int, *, with_entries: bool = True,
    ) -> tuple[Json, list[Json]]:
        """The state of the snapshot at ``through`` and the entries of every snapshot up to it."""
        s = snapshots_table.c
        state = conn.execute(
            select(s.state).where(s.case_id == case_id, s.event_count == through)
        ).scalar_one()
        entries: list[Json] = []
        if not with_entries:
            return state, entries
        for (chunk,) in conn.execute(
            select(s.entries).where(s.case_id == case_id, s.event_count <= through).order_by(s.event_count)
        ):
            entries.extend(chunk)
        return state, entries

    def _rows(
        self, conn: Connection, case_id: str, *, after: tuple[datetime, str] | None, until: datetime | None
    ) -> Sequence[Any]:
        t = self.timeline.c
        query = select(
            t.event_id, t.time, t.type, t.source, t.actor_agency, t.correlation_id, t.causation_id, t.data
        ).where(t.case_id == case_id).order_by(t.time, t.event_id)
        if after is not None:
            query = query.where(~_at_or_before(t, *after))
        if until is not None:
            query = query.where(t.time <= until)
        return [row._mapping for row in conn.execute(query).all()]

    # --- writing (the timeline's handler) -------------------------------------------------------------------------

    def after_insert(self, case_ids: Collection[str]) -> None:
        """After the timeline took a batch: snapshot the cases that gained ``interval`` events since their last
        snapshot. Two grouped queries per batch, whatever the number of cases."""
        if not case_ids:
            return
        ids = sorted(case_ids)
        t, s = self.timeline.c, snapshots_table.c
        with reading(self.engine) as conn:
            totals: dict[str, int] = dict(conn.execute(
                select(t.case_id, func.count()).where(t.case_id.in_(ids)).group_by(t.case_id)
            ).tuples().all())
            done: dict[str, int | None] = dict(conn.execute(
                select(s.case_id, func.max(s.event_count)).where(s.case_id.in_(ids)).group_by(s.case_id)
            ).tuples().all())
        for case_id in ids:
            if int(totals.get(case_id, 0)) - int(done.get(case_id) or 0) >= self.interval:
                self.snapshot(case_id)

    def snapshot(self, case_id: str) -> int:
        """Store the snapshots the case is due (from its last one that is still right); how many were stored."""
        with reading(self.engine) as conn:
            existing = self._snapshots_until(conn, case_id, datetime.max.replace(tzinfo=UTC))
            if existing and not self._still_right(conn, case_id, existing[-1]):
                existing = []
            if existing:
                last = existing[-1]
                state, _ = self._load(conn, case_id, last.event_count, with_entries=False)
                after: tuple[datetime, str] | None = (last.last_time, last.last_event_id)
                count = last.event_count
            else:
                state, after, count = empty_case(case_id), None, 0
            rows = self._rows(conn, case_id, after=after, until=None)
        if not existing:
            self._drop(case_id)  # any left are out of date, or leave a gap
        return self._store_chunks(case_id, state, count, [history_event(r) for r in rows])

    def rebuild(self, case_id: str) -> int:
        """Drop the case's snapshots and make them again from its first event."""
        self._drop(case_id)
        return self.snapshot(case_id)

    def _drop(self, case_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(snapshots_table).where(snapshots_table.c.case_id == case_id))

    def _store_chunks(self, case_id: str, state: Json, count: int, events: Sequence[Json]) -> int:
        """Fold ``state`` (this call's own) on, storing a snapshot after each ``interval`` events: each is written
        (serialised) before the state moves on, so one state serves them all without copies."""
        stored, now = 0, datetime.now(UTC)
        for start in range(0, len(events) - self.interval + 1, self.interval):
            chunk = events[start:start + self.interval]
            fold_into(state, chunk)
            count += len(chunk)
            last = chunk[-1]
            row = {
                "case_id": case_id, "event_count": count, "last_time": datetime.fromisoformat(last["time"]),
                "last_event_id": last["event_id"], "state": state, "entries": [entry_of(e) for e in chunk],
                "created_at": now,
            }
            with self.engine.begin() as conn:
                insert_ignoring_duplicates(conn, snapshots_table, [row])  # a second worker made the same one
            stored += 1
        return stored


def _at_or_before(t: Any, time: datetime, event_id: str) -> Any:
    """Timeline rows at or before (time, event id) in the history's order."""
    return or_(t.time < time, and_(t.time == time, t.event_id <= event_id))

