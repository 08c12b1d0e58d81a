"""Agency notification feeds: a read model fed by intake's and referral's integration events.

``notifications`` holds one row per event and recipient; its id (see ``notice_id``) is unique, so a redelivered
event inserts nothing. ``sequence`` is an autoincrement key giving the feed its order and its cursor: the one
subscription is the only writer, so sequences become visible in increasing order. ``case_reporters`` remembers who
reported each case. A referral event may arrive before the report that caused it (the sources are read in
turn): it then waits in ``awaiting_reporter`` until the report arrives, and the reporters are told then.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
    select,
)

from contracts.agencies import Agency
from contracts.envelope import CloudEvent
from contracts.events import ReportFiled, parse_event
from huhang.sql import create_tables, insert_ignoring_duplicates
from services.notifications.domain import Notice, concerns_reporters, direct_notices, reporter_notices

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
    Index("ix_notifications_agency_sequence", "agency", "sequence"),
    sqlite_autoincrement=True,  # never reuse a sequence number
)
case_reporters_table = Table(
    "case_reporters",
    metadata,
    Column("case_id", String(36), primary_key=True),
    Column("agency", String(40), primary_key=True),
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
            if reports:
                self._reporters_known(conn, reports)
            asking = {e.subject for e in others if concerns_reporters(e)}
            reporters = self._reporters(conn, asking) if asking else {}
            notices: list[Notice] = []
            waiting: list[dict[str, str]] = []
            for e in others:
                notices += direct_notices(e)
                if not concerns_reporters(e):
                    continue
                if e.subject in reporters:
                    notices += reporter_notices(e, reporters[e.subject])
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
        notices: list[Notice] = []
        for case_id, raw in waiting:
            notices += reporter_notices(parse_event(raw), reporters[case_id])
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
    def _insert(conn: Connection, notices: Sequence[Notice]) -> None:
        insert_ignoring_duplicates(conn, notifications_table, [
            {
                "id": str(n.id), "agency": n.agency.value, "case_id": str(n.case_id), "event_id": str(n.event_id),
                "kind": n.kind.value, "priority": n.priority.value, "text_zh": n.text_zh, "text_en": n.text_en,
                "created_at": n.created_at,
            }
            for n in notices
        ])

    def for_agency(self, agency: str, *, after: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        """Oldest first; ``after`` is the last sequence already seen (0 for the start of the feed)."""
        t = notifications_table
        query = select(t).where(t.c.agency == agency, t.c.sequence > after).order_by(t.c.sequence).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
