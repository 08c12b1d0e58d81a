"""Agency inboxes: a read model of referrals, fed by the referral service's own events.

Rows are written idempotently (a repeated ``ReferralRequested`` inserts nothing; a repeated change sets the
same values), so a follower that restarts from an older position converges to the same table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    and_,
    func,
    or_,
    select,
    update,
)

from contracts.envelope import CloudEvent
from contracts.events import ReferralEscalated, ReferralOwnerChanged, ReferralRequested, ReferralStatusChanged
from contracts.vocabulary import ReferralStatus
from huhang.recent import Recent
from huhang.sql import create_tables, insert_ignoring_duplicates, racing_ddl, reading

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
    Column("complete_by", DateTime(timezone=True), nullable=False),
    Column("escalation_level", Integer, nullable=False, default=0),
    Column("township", String(50), nullable=False),
    Column("village", String(50), nullable=False),
    Column("plan_tasks", JSON, nullable=False),
    Column("rule_id", String(400), nullable=False),
    Column("rules_version", String(40), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_referral_inbox_owner_requested", "owner_agency", "requested_at", "referral_id"),
    Index("ix_referral_inbox_status_due", "status", "due_at"),
)
# Every inbox read counts the agency's referrals by status: with this index the count reads the index alone
# instead of every row the agency holds (the inbox's costliest statement under the county's mixed workload).
owner_status_index = Index("ix_referral_inbox_owner_status", referrals_table.c.owner_agency,
                           referrals_table.c.status)

WAITING = (ReferralStatus.requested.value, ReferralStatus.received.value)
WORKING = (ReferralStatus.accepted.value, ReferralStatus.in_progress.value, ReferralStatus.on_hold.value)


@dataclass(frozen=True)
class InboxFilter:
    status: Sequence[str] = ()
    priority: Sequence[str] = ()
    township: str | None = None
    overdue_at: datetime | None = None  # only referrals overdue at this time
    requested_from: datetime | None = None
    requested_to: datetime | None = None


def _utc(at: datetime) -> datetime:
    """Times are stored in UTC (SQLite keeps no offset): compare in UTC whatever offset the caller used."""
    return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)


class Inbox:
    """The agencies' inboxes (a read model of referral events) and their queries.

    ``counts_max_age_s``: an agency's counts by status are counted again at most this often by this process (every
    inbox read shows them, and counting reads every index entry of the agency: the costliest statement of the
    county's mixed workload, growing with the referrals held). ``pages_max_age_s``: the API keeps an agency's first
    pages (``pages``, the answer as sent) at most this long: every desk of the agency opens the same page, many times
    a minute. Events this process projects itself forget both at once; those another process projects show within
    that age, as the rows themselves show after the projection's lag. 0 keeps nothing."""

    def __init__(self, engine: Engine, counts_max_age_s: float = 0.0, pages_max_age_s: float = 0.0) -> None:
        self.engine = engine
        self._counted: Recent[dict[str, int]] = Recent(counts_max_age_s)
        self.pages: Recent[bytes] = Recent(pages_max_age_s)
        create_tables(metadata, engine)
        # create_all adds indexes only with a new table: a store made before the index gets it here.
        racing_ddl(lambda: owner_status_index.create(engine, checkfirst=True))

    def handle(self, events: Sequence[CloudEvent]) -> None:
        self._handle(events)
        self._counted.clear()
        self.pages.clear()

    def _handle(self, events: Sequence[CloudEvent]) -> None:
        t = referrals_table
        with self.engine.begin() as conn:
            insert_ignoring_duplicates(conn, t, [self._row(e) for e in events if isinstance(e, ReferralRequested)])
            for e in events:
                values: dict[str, Any] | None = None
                if isinstance(e, ReferralStatusChanged):
                    values = {"status": e.data.status.value}
                    if e.data.status is ReferralStatus.accepted:
                        values["escalation_level"] = 0
                elif isinstance(e, ReferralOwnerChanged):
                    values = {"owner_agency": e.data.to_agency.value, "escalation_level": 0}
                    conn.execute(  # accepting the transfer accepts a waiting referral; work under way stays so
                        update(t)
                        .where(t.c.referral_id == str(e.data.referral_id), t.c.status.in_(WAITING))
                        .values(status=ReferralStatus.accepted.value)
                    )
                elif isinstance(e, ReferralEscalated):
                    values = {"escalation_level": e.data.level}
                if values is not None:
                    referral_id = str(e.data.referral_id)  # type: ignore[attr-defined]
                    conn.execute(update(t).where(t.c.referral_id == referral_id).values(updated_at=e.time, **values))

    @staticmethod
    def _row(e: ReferralRequested) -> dict[str, Any]:
        d = e.data
        return {
            "referral_id": str(d.referral_id), "case_id": str(d.case_id), "child_id": str(d.child_id),
            "owner_agency": d.owner_agency.value, "requester_agency": d.requester_agency.value,
            "referral_type": d.referral_type, "priority": d.priority.value, "priority_rank": d.priority.rank,
            "status": "requested", "due_at": d.due_at.astimezone(UTC),
            "complete_by": (d.complete_by or d.due_at + timedelta(days=30)).astimezone(UTC),
            "escalation_level": 0, "township": d.township, "village": d.village, "plan_tasks": list(d.plan_tasks),
            "rule_id": d.rule_id, "rules_version": d.rules_version, "requested_at": e.time, "updated_at": e.time,
        }

    @staticmethod
    def _overdue(at: datetime) -> Any:
        t = referrals_table
        return or_(
            and_(t.c.status.in_(WAITING), t.c.due_at < at), and_(t.c.status.in_(WORKING), t.c.complete_by < at)
        )

    def _filtered(self, query: Select[Any], f: InboxFilter) -> Select[Any]:
        t = referrals_table
        if f.status:
            query = query.where(t.c.status.in_(list(f.status)))
        if f.priority:
            query = query.where(t.c.priority.in_(list(f.priority)))
        if f.township is not None:
            query = query.where(t.c.township == f.township)
        if f.overdue_at is not None:
            query = query.where(self._overdue(_utc(f.overdue_at)))
        if f.requested_from is not None:
            query = query.where(t.c.requested_at >= _utc(f.requested_from))
        if f.requested_to is not None:
            query = query.where(t.c.requested_at < _utc(f.requested_to))
        return query

    def for_agency(
        self, agency: str, *, status: str | None = None, limit: int = 50, cursor: tuple[datetime, str] | None = None,
        filters: InboxFilter | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first; the cursor is the (requested_at, referral_id) of the last row already seen."""
        with reading(self.engine) as conn:
            return self._page(conn, agency, status, limit, cursor, filters)

    def counts_by_status(self, agency: str) -> dict[str, int]:
        with reading(self.engine) as conn:
            return self._counts(conn, agency)

    def page_and_counts(
        self, agency: str, *, limit: int = 50, cursor: tuple[datetime, str] | None = None,
        filters: InboxFilter | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """A page of ``for_agency`` and the agency's ``counts_by_status``, on one connection (one checkout)."""
        with reading(self.engine) as conn:
            return self._page(conn, agency, None, limit, cursor, filters), self._recent_counts(conn, agency)

    def _recent_counts(self, conn: Connection, agency: str) -> dict[str, int]:
        return dict(self._counted.get(agency, lambda: self._counts(conn, agency)))

    def _page(
        self, conn: Connection, agency: str, status: str | None, limit: int, cursor: tuple[datetime, str] | None,
        filters: InboxFilter | None,
    ) -> list[dict[str, Any]]:
        t = referrals_table
        f = filters or InboxFilter(status=(status,) if status else ())
        query = self._filtered(select(t).where(t.c.owner_agency == agency), f)
        if cursor is not None:
            at, rid = cursor
            query = query.where(or_(t.c.requested_at < at, and_(t.c.requested_at == at, t.c.referral_id < rid)))
        query = query.order_by(t.c.requested_at.desc(), t.c.referral_id.desc()).limit(limit)
        return [dict(r._mapping) for r in conn.execute(query).all()]

    @staticmethod
    def _counts(conn: Connection, agency: str) -> dict[str, int]:
        t = referrals_table
        query = select(t.c.status, func.count()).where(t.c.owner_agency == agency).group_by(t.c.status)
        return {status: int(n) for status, n in conn.execute(query)}

    def for_case(self, case_id: UUID) -> list[dict[str, Any]]:
        t = referrals_table
        query = select(t).where(t.c.case_id == str(case_id)).order_by(t.c.requested_at, t.c.referral_id)
        with reading(self.engine) as conn:
            return [dict(r._mapping) for r in conn.execute(query).all()]

    def overdue_ids(self, at: datetime, below_level: int = 2, limit: int = 1000) -> list[UUID]:
        """Open referrals past a deadline and not yet escalated to the top level (the sweep's candidates)."""
        t = referrals_table
        query = (
            select(t.c.referral_id)
            .where(self._overdue(_utc(at)), t.c.escalation_level < below_level)
            .order_by(t.c.due_at)
            .limit(limit)
        )
        with reading(self.engine) as conn:
            return [UUID(rid) for rid in conn.execute(query).scalars()]
