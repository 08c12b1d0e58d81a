"""The case timeline: every integration event of a case, from every service, in order.

A read model fed by the events of all services (Kafka topics, or the notification logs in-process). Idempotent
on the event id, so a redelivered event appears once. Events carry ids and codes only: no personal data here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, Column, DateTime, Engine, Index, MetaData, String, Table, select

from contracts.envelope import CloudEvent
from huhang.sql import create_tables, insert_ignoring_duplicates, reading
from services.intake.history_store import CaseHistoryStore

logger = logging.getLogger(__name__)
metadata = MetaData()
timeline_table = Table(
    "case_timeline",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("case_id", String(64), nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("type", String(120), nullable=False),
    Column("source", String(120), nullable=False),
    Column("actor_agency", String(40), nullable=False),
    Column("correlation_id", String(36), nullable=False),
    Column("causation_id", String(36), nullable=True),
    Column("data", JSON, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_case_timeline_case_time", "case_id", "time"),
)


class CaseTimeline:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(metadata, engine)
        # Reconstruction as of any moment (services/intake/history_store.py), snapshotted as events arrive.
        self.history = CaseHistoryStore(engine, timeline_table)

    def handle(self, events: Sequence[CloudEvent]) -> None:
        now = datetime.now(UTC)
        rows = [
            {
                "event_id": str(e.id),
                "case_id": e.subject,
                "time": e.time,
                "type": e.type,  # type: ignore[attr-defined]
                "source": e.source,
                "actor_agency": e.actoragency.value,
                "correlation_id": str(e.correlationid),
                "causation_id": str(e.causationid) if e.causationid else None,
                "data": e.data.model_dump(mode="json"),  # type: ignore[attr-defined]
                "recorded_at": now,
            }
            for e in events
        ]
        with self.engine.begin() as conn:
            insert_ignoring_duplicates(conn, timeline_table, rows)
        self._snapshot({row["case_id"] for row in rows})

    def _snapshot(self, case_ids: set[str]) -> None:
        """Snapshots only speed reconstruction up (without them it gives the same answer): one that cannot be made
        now is made after a later batch, and never holds the timeline back."""
        try:
            self.history.after_insert(case_ids)
        except Exception as exc:
            logger.warning("case history snapshots not made (%s); the next batch tries again", type(exc).__name__)

    def for_case(self, case_id: UUID) -> list[dict[str, Any]]:
        query = (
            select(timeline_table)
            .where(timeline_table.c.case_id == str(case_id))
            .order_by(timeline_table.c.time, timeline_table.c.event_id)
        )
        with reading(self.engine) as conn:
            return [dict(row._mapping) for row in conn.execute(query).all()]
