"""Agency notification feeds: a read model fed by intake's, referral's and guardianship's integration events.

``notifications`` holds one row per event and recipient; its id (see ``notice_id``) is unique, so a redelivered
event inserts nothing. ``sequence`` is an autoincrement key giving the feed its order and its cursor: the one
subscription is the only writer, so sequences become visible in increasing order. ``case_reporters`` remembers who
reported each case. A referral event may arrive before the report that caused it (the sources are read in
turn): it then waits in ``awaiting_reporter`` until the report arrives, and the reporters are told then.

Each notice keeps the type of its event and the case's place (township, village: remembered in ``case_places``
from the first event of the case that names them), so that the feed takes the same filters as the webhook
subscriptions (event types, township and village). A notice of a case whose place is not known yet has none and
is left out by an area filter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    select,
)

from contracts.agencies import Agency
from contracts.envelope import CloudEvent
from contracts.events import ReportFiled, parse_event
from huhang.sql import create_tables, insert_ignoring_duplicates, reading
from services.notifications.domain import Notice, concerns_reporters, direct_notices, reporter_notices
from services.notifications.reminders import reminder_notices

metadata = MetaData()
notifications_table = Table(
    "notifications",
    metadata,
    Column("sequence", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("agency", String(40), nullable=False),
    Column("case_id", String(36), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("priority", String(10), nullable=False),
    Column("text_zh", Text, nullable=False),
    Column("text_en", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("event_type", String(100)),
    Column("township", String(60)),
    Column("village", String(60)),
    Index("ix_notifications_agency_sequence", "agency", "sequence"),
    sqlite_autoincrement=True,  # never reuse a sequence number
)
case_reporters_table = Table(
    "case_reporters",
    metadata,
    Column("case_id", String(36), primary_key=True),
    Column("agency", String(40), primary_key=True),
)
case_places_table = Table(
    "case_places",
    metadata,
    Column("case_id", String(36), primary_key=True),
    Column("township", String(60), nullable=False),
    Column("village", String(60), nullable=False),
)
awaiting_reporter_table = Table(
    "awaiting_reporter",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False, index=True),
    Column("event", Text, nullable=False),
)


class NotificationFeed:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(metadata, engine)

    def handle(self, events: Sequence[CloudEvent]) -> None:
        """One batch in a few statements whatever its size: reporters looked up once, notices inserted at once."""
        reports = [e for e in events if isinstance(e, ReportFiled)]
        others = [e for e in events if not isinstance(e, ReportFiled)]
        with self.engine.begin() as conn:
            insert_ignoring_duplicates(conn, case_places_table, places_of(events))
            if reports:
                self._reporters_known(conn, reports)
            asking = {e.subject for e in others if concerns_reporters(e)}
            reporters = self._reporters(conn, asking) if asking else {}
            notices: list[tuple[Notice, CloudEvent]] = []
            waiting: list[dict[str, str]] = []
            for e in others:
                notices += [(n, e) for n in direct_notices(e) + reminder_notices(e)]
                if not concerns_reporters(e):
                    continue
                if e.subject in reporters:
                    notices += [(n, e) for n in reporter_notices(e, reporters[e.subject])]
                else:
                    waiting.append({"event_id": str(e.id), "case_id": e.subject, "event": e.model_dump_json()})
            insert_ignoring_duplicates(conn, awaiting_reporter_table, waiting)
            self._insert(conn, notices)

    def _reporters_known(self, conn: Connection, reports: Sequence[ReportFiled]) -> None:
        """Remember who reported; tell them of what happened to their case before their report was read."""
        insert_ignoring_duplicates(conn, case_reporters_table, [
            {"case_id": str(e.data.case_id), "agency": e.data.reporter_agency.value} for e in reports
        ])
        t = awaiting_reporter_table
        case_ids = {str(e.data.case_id) for e in reports}
        waiting = conn.execute(
            select(t.c.case_id, t.c.event).where(t.c.case_id.in_(case_ids)).order_by(t.c.event_id)
        ).all()
        if not waiting:
            return
        reporters = self._reporters(conn, case_ids)
        notices: list[tuple[Notice, CloudEvent]] = []
        for case_id, raw in waiting:
            event = parse_event(raw)
            notices += [(n, event) for n in reporter_notices(event, reporters[case_id])]
        self._insert(conn, notices)
        conn.execute(delete(t).where(t.c.case_id.in_(case_ids)))

    @staticmethod
    def _reporters(conn: Connection, case_ids: Iterable[str]) -> dict[str, list[Agency]]:
        t = case_reporters_table
        found: dict[str, list[Agency]] = {}
        rows = conn.execute(select(t.c.case_id, t.c.agency).where(t.c.case_id.in_(list(case_ids))))
        for case_id, agency in rows:
            found.setdefault(case_id, []).append(Agency(agency))
        return found

    @staticmethod
    def _insert(conn: Connection, notices: Sequence[tuple[Notice, CloudEvent]]) -> None:
        if not notices:
            return
        p = case_places_table
        case_ids = list({str(n.case_id) for n, _ in notices})
        places = {row.case_id: row for row in conn.execute(select(p).where(p.c.case_id.in_(case_ids)))}
        insert_ignoring_duplicates(conn, notifications_table, [
            {
                "id": str(n.id), "agency": n.agency.value, "case_id": str(n.case_id), "event_id": str(n.event_id),
                "kind": n.kind.value, "priority": n.priority.value, "text_zh": n.text_zh, "text_en": n.text_en,
                "created_at": n.created_at, "event_type": e.type,  # type: ignore[attr-defined]
                "township": getattr(places.get(str(n.case_id)), "township", None),
                "village": getattr(places.get(str(n.case_id)), "village", None),
            }
            for n, e in notices
        ])

    def add(self, notices: Sequence[Notice]) -> None:
        """Notices made by the service itself (the daily digest), not from an event: no type, no place."""
        rows = [
            {
                "id": str(n.id), "agency": n.agency.value, "case_id": str(n.case_id), "event_id": str(n.event_id),
                "kind": n.kind.value, "priority": n.priority.value, "text_zh": n.text_zh, "text_en": n.text_en,
                "created_at": n.created_at,
            }
            for n in notices
        ]
        with self.engine.begin() as conn:
            insert_ignoring_duplicates(conn, notifications_table, rows)

    def for_agency(self, agency: str, *, after: int = 0, limit: int = 50,
                   where: FeedFilter | None = None) -> list[dict[str, Any]]:
        """Oldest first; ``after`` is the last sequence already seen (0 for the start of the feed)."""
        t = notifications_table
        query = select(t).where(t.c.agency == agency, t.c.sequence > after)
        if where is not None:
            if where.event_types:
                query = query.where(t.c.event_type.in_(sorted(where.event_types)))
            if where.township is not None:
                query = query.where(t.c.township == where.township)
            if where.village is not None:
                query = query.where(t.c.village == where.village)
        with reading(self.engine) as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(t.c.sequence).limit(limit)).all()]

    def last_sequence(self, agency: str) -> int:
        """The agency's newest sequence (0 for an empty feed): where a stream without a cursor starts."""
        t = notifications_table
        with reading(self.engine) as conn:
            return int(conn.execute(select(func.max(t.c.sequence)).where(t.c.agency == agency)).scalar() or 0)


@dataclass(frozen=True)
class FeedFilter:
    """The webhook subscriptions' filters: event types (empty: all), a township and a village in it."""

    event_types: frozenset[str] = frozenset()
    township: str | None = None
    village: str | None = None


def places_of(events: Iterable[CloudEvent]) -> list[dict[str, str]]:
    """(case, township, village) of every event whose data names them (the first one kept per case)."""
    rows: dict[str, dict[str, str]] = {}
    for e in events:
        data = getattr(e, "data", None)
        township, village = getattr(data, "township", None), getattr(data, "village", None)
        if isinstance(township, str) and isinstance(village, str):
            rows.setdefault(e.subject, {"case_id": e.subject, "township": township, "village": village})
    return list(rows.values())
