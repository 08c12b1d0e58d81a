"""Agency inboxes: a read model of referrals, fed by the referral service's own events.

Rows are written idempotently (a repeated ``ReferralRequested`` inserts nothing; a repeated status change sets
the same status), so a follower that restarts from an older position converges to the same table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    func,
    or_,
    select,
    update,
)

from contracts.envelope import CloudEvent
from contracts.events import ReferralRequested, ReferralStatusChanged
from huhang.sql import insert_ignoring_duplicates

metadata = MetaData()
referrals_table = Table(
    "referral_inbox",
    metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False, index=True),
    Column("child_id", String(36), nullable=False),
    Column("owner_agency", String(40), nullable=False),
    Column("requester_agency", String(40), nullable=False),
    Column("referral_type", String(80), nullable=False),
    Column("priority", String(10), nullable=False),
    Column("priority_rank", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("township", String(50), nullable=False),
    Column("village", String(50), nullable=False),
    Column("plan_tasks", JSON, nullable=False),
    Column("rule_id", String(400), nullable=False),
    Column("rules_version", String(40), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_referral_inbox_owner_requested", "owner_agency", "requested_at", "referral_id"),
)


class Inbox:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine)

    def handle(self, events: Sequence[CloudEvent]) -> None:
        with self.engine.begin() as conn:
            new = [self._row(e) for e in events if isinstance(e, ReferralRequested)]
            insert_ignoring_duplicates(conn, referrals_table, new)
            for e in events:
                if isinstance(e, ReferralStatusChanged):
                    conn.execute(
                        update(referrals_table)
                        .where(referrals_table.c.referral_id == str(e.data.referral_id))
                        .values(status=e.data.status.value, updated_at=e.time)
                    )

    @staticmethod
    def _row(e: ReferralRequested) -> dict[str, Any]:
        d = e.data
        return {
            "referral_id": str(d.referral_id), "case_id": str(d.case_id), "child_id": str(d.child_id),
            "owner_agency": d.owner_agency.value, "requester_agency": d.requester_agency.value,
            "referral_type": d.referral_type, "priority": d.priority.value, "priority_rank": d.priority.rank,
            "status": "requested", "due_at": d.due_at, "township": d.township, "village": d.village,
            "plan_tasks": list(d.plan_tasks), "rule_id": d.rule_id, "rules_version": d.rules_version,
            "requested_at": e.time, "updated_at": e.time,
        }

    def for_agency(
        self, agency: str, *, status: str | None = None, limit: int = 50, cursor: tuple[datetime, str] | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; the cursor is the (requested_at, referral_id) of the last row already seen."""
        t = referrals_table
        query = select(t).where(t.c.owner_agency == agency)
        if status is not None:
            query = query.where(t.c.status == status)
        if cursor is not None:
            at, rid = cursor
            query = query.where(or_(t.c.requested_at < at, and_(t.c.requested_at == at, t.c.referral_id < rid)))
        query = query.order_by(t.c.requested_at.desc(), t.c.referral_id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def counts_by_status(self, agency: str) -> dict[str, int]:
        t = referrals_table
        query = select(t.c.status, func.count()).where(t.c.owner_agency == agency).group_by(t.c.status)
        with self.engine.connect() as conn:
            return {status: int(n) for status, n in conn.execute(query)}

    def for_case(self, case_id: UUID) -> list[dict[str, Any]]:
        t = referrals_table
        query = select(t).where(t.c.case_id == str(case_id)).order_by(t.c.requested_at, t.c.referral_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
