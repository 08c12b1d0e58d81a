"""The cases guardianship knows of: case -> child and place, fed by intake's ``ReportFiled`` events.

An assessment or a court order names a case; its child and its township and village come from here, so that
the events guardianship publishes can be routed by place. Idempotent: a repeated or later report of the same
case inserts nothing (a case keeps its child and place), and the first report's id stays the correlation id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import Column, DateTime, Engine, MetaData, String, Table, select

from contracts.envelope import CloudEvent
from contracts.events import ReportFiled
from huhang.sql import create_tables, insert_ignoring_duplicates, reading

metadata = MetaData()
known_cases_table = Table(
    "known_cases",
    metadata,
    Column("case_id", String(36), primary_key=True),
    Column("child_id", String(36), nullable=False, index=True),
    Column("township", String(50), nullable=False),
    Column("village", String(50), nullable=False),
    Column("correlation_id", String(36), nullable=False),
    Column("reported_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class KnownCase:
    case_id: UUID
    child_id: UUID
    township: str
    village: str
    correlation_id: UUID
    reported_at: datetime


class KnownCases:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(metadata, engine)

    def handle(self, events: Sequence[CloudEvent]) -> None:
        rows = [
            {
                "case_id": str(e.data.case_id), "child_id": str(e.data.child_id), "township": e.data.township,
                "village": e.data.village, "correlation_id": str(e.correlationid), "reported_at": e.time,
            }
            for e in events
            if isinstance(e, ReportFiled)
        ]
        with self.engine.begin() as conn:
            insert_ignoring_duplicates(conn, known_cases_table, rows)

    def get(self, case_id: UUID) -> KnownCase | None:
        t = known_cases_table
        with reading(self.engine) as conn:
            row = conn.execute(select(t).where(t.c.case_id == str(case_id))).one_or_none()
        if row is None:
            return None
        return KnownCase(
            case_id=UUID(row.case_id), child_id=UUID(row.child_id), township=row.township, village=row.village,
            correlation_id=UUID(row.correlation_id), reported_at=row.reported_at,
        )
