"""The case-access read model: what the policy needs to know about a case or a child, from integration events.

Per case the child and its area; per child its cases and its latest area (merged files follow the survivor); per
(referral, agency) the referral's status while that agency owns it (a transfer leaves the previous owner's row as it
was: it held the referral); break-the-glass grants and their review. Fed by every service's events like the other
read models (a ``Subscription``), in each service that enforces access.

Idempotent and order-tolerant: every write is an insert that ignores a repeat or an update that only moves
forward in event time, so a redelivered or late event changes nothing it should not. Ids, codes and places only.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from contracts.envelope import CloudEvent
from contracts.events import (
    BreakGlassAccessOpened,
    BreakGlassAccessReviewed,
    ChildrenMerged,
    ReferralOwnerChanged,
    ReferralRequested,
    ReferralStatusChanged,
)
from huhang.access.policy import Grant, RecordFacts, holding_agencies
from huhang.sql import create_tables, dialect_insert, insert_ignoring_duplicates, reading

# The status recorded for a new owner by a transfer until its first status change arrives: it grants access.
TRANSFERRED_IN = "transferred-in"

metadata = MetaData()
cases_table = Table(
    "access_cases",
    metadata,
    Column("case_id", String(36), primary_key=True),
    Column("child_id", String(36), nullable=False),
    Column("township", String(100), nullable=False),
    Column("village", String(100), nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
)
children_table = Table(
    "access_children",
    metadata,
    Column("child_id", String(36), primary_key=True),
    Column("township", String(100), nullable=False),
    Column("village", String(100), nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
)
child_cases_table = Table(
    "access_child_cases",
    metadata,
    Column("child_id", String(36), primary_key=True),
    Column("case_id", String(36), primary_key=True),
)
merges_table = Table(
    "access_child_merges",
    metadata,
    Column("merged_child_id", String(36), primary_key=True),
    Column("survivor_id", String(36), nullable=False),
    Index("ix_access_child_merges_survivor", "survivor_id"),
)
referrals_table = Table(
    "access_referrals",
    metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("agency", String(40), primary_key=True),
    Column("case_id", String(36), nullable=False),
    Column("status", String(30), nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Index("ix_access_referrals_case", "case_id"),
)
grants_table = Table(
    "access_break_glass",
    metadata,
    Column("grant_id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=True),
    Column("child_id", String(36), nullable=True),
    Column("agency", String(40), nullable=True),
    Column("subject", String(200), nullable=True),
    Column("purpose", String(40), nullable=True),
    Column("opened_at", DateTime(timezone=True), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("reviewed_at", DateTime(timezone=True), nullable=True),
    Column("justified", Boolean, nullable=True),
    Column("reviewer_agency", String(40), nullable=True),
    Index("ix_access_break_glass_case", "case_id"),
    Index("ix_access_break_glass_opened", "opened_at"),
)


def _utc(value: datetime) -> datetime:
    """SQLite gives back naive datetimes: every time here is stored in UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class CaseRef:
    case_id: UUID
    child_id: UUID


class CaseAccess:
    """The read model (a subscription handler) and its queries."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(metadata, engine)

    # --- projection ------------------------------------------------------------------------------------------------

    def handle(self, events: Sequence[CloudEvent]) -> None:
        with self.engine.begin() as conn:
            self._places(conn, events)
            for event in events:
                self._apply(conn, event)

    def _places(self, conn: Connection, events: Sequence[CloudEvent]) -> None:
        """Where each case and child is, from every event that says: a few statements for the whole batch (a
        statement per event cost the workers more than anything else they do)."""
        cases: dict[str, dict[str, Any]] = {}
        children: dict[str, dict[str, Any]] = {}
        pairs: set[tuple[str, str]] = set()
        for event in events:
            data: Any = event.data  # type: ignore[attr-defined]
            if not all(hasattr(data, name) for name in ("case_id", "child_id", "township", "village")):
                continue
            row = {"case_id": str(data.case_id), "child_id": str(data.child_id), "township": data.township,
                   "village": data.village, "time": _utc(event.time)}
            pairs.add((row["child_id"], row["case_id"]))
            for latest, key in ((cases, row["case_id"]), (children, row["child_id"])):
                if key not in latest or latest[key]["time"] <= row["time"]:
                    latest[key] = row
        if not cases:
            return
        insert_ignoring_duplicates(conn, child_cases_table, [
            {"child_id": child_id, "case_id": case_id} for child_id, case_id in sorted(pairs)
        ])
        conn.execute(_place_upsert(conn.dialect.name, cases_table, "case_id"), list(cases.values()))
        conn.execute(_place_upsert(conn.dialect.name, children_table, "child_id"), [
            {"child_id": r["child_id"], "township": r["township"], "village": r["village"], "time": r["time"]}
            for r in children.values()
        ])

    def _apply(self, conn: Connection, event: CloudEvent) -> None:
        data: Any = event.data  # type: ignore[attr-defined]
        time = _utc(event.time)
        if isinstance(event, ReferralRequested):
            insert_ignoring_duplicates(conn, referrals_table, [{
                "referral_id": str(data.referral_id), "agency": data.owner_agency.value,
                "case_id": str(data.case_id), "status": "requested", "time": time,
            }])
        elif isinstance(event, ReferralStatusChanged):
            self._referral_status(conn, str(data.referral_id), data.owner_agency.value, str(data.case_id),
                                  data.status.value, time)
        elif isinstance(event, ReferralOwnerChanged):
            insert_ignoring_duplicates(conn, referrals_table, [{
                "referral_id": str(data.referral_id), "agency": data.to_agency.value, "case_id": str(data.case_id),
                "status": TRANSFERRED_IN, "time": time,
            }])
        elif isinstance(event, ChildrenMerged):
            insert_ignoring_duplicates(conn, merges_table, [
                {"merged_child_id": str(data.merged_child_id), "survivor_id": str(data.child_id)}
            ])
        elif isinstance(event, BreakGlassAccessOpened):
            self._grant_opened(conn, data)
        elif isinstance(event, BreakGlassAccessReviewed):
            self._grant_reviewed(conn, data, time)

    @staticmethod
    def _referral_status(conn: Connection, referral_id: str, agency: str, case_id: str, status: str,
                         time: datetime) -> None:
        stmt = dialect_insert(conn, referrals_table).values(
            referral_id=referral_id, agency=agency, case_id=case_id, status=status, time=time
        )
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["referral_id", "agency"],
            set_={"status": stmt.excluded.status, "time": stmt.excluded.time},
            where=referrals_table.c.time <= stmt.excluded.time,
        ))

    @staticmethod
    def _grant_opened(conn: Connection, data: Any) -> None:
        opened = {
            "case_id": str(data.case_id), "child_id": str(data.child_id), "agency": data.agency.value,
            "subject": data.subject, "purpose": data.purpose.value, "opened_at": _utc(data.opened_at),
            "expires_at": _utc(data.expires_at),
        }
        stmt = dialect_insert(conn, grants_table).values(grant_id=str(data.grant_id), **opened)
        conn.execute(stmt.on_conflict_do_update(index_elements=["grant_id"], set_=opened))

    @staticmethod
    def _grant_reviewed(conn: Connection, data: Any, time: datetime) -> None:
        reviewed = {"reviewed_at": time, "justified": data.justified, "reviewer_agency": data.reviewer_agency.value}
        stmt = dialect_insert(conn, grants_table).values(grant_id=str(data.grant_id), **reviewed)
        conn.execute(stmt.on_conflict_do_update(index_elements=["grant_id"], set_=reviewed))

    # --- queries ---------------------------------------------------------------------------------------------------

    def case(self, case_id: UUID) -> CaseRef | None:
        with reading(self.engine) as conn:
            row = conn.execute(
                select(cases_table.c.child_id).where(cases_table.c.case_id == str(case_id))
            ).first()
        return CaseRef(case_id, UUID(row.child_id)) if row else None

    def facts_for_case(self, case_id: UUID) -> RecordFacts | None:
        """The facts about one case; ``None`` when no event of it has arrived yet."""
        with reading(self.engine) as conn:
            place = conn.execute(
                select(cases_table.c.township, cases_table.c.village).where(cases_table.c.case_id == str(case_id))
            ).first()
            if place is None:
                return None
            return RecordFacts(
                township=place.township, village=place.village,
                holding_agencies=self._holders(conn, [str(case_id)]), grants=self._grants(conn, [str(case_id)]),
            )

    def facts_for_child(self, child_id: UUID) -> RecordFacts | None:
        """The facts about a child across all of its cases (and those of files merged into it, or it into)."""
        with reading(self.engine) as conn:
            ids = self._related_children(conn, str(child_id))
            place = conn.execute(
                select(children_table.c.township, children_table.c.village)
                .where(children_table.c.child_id.in_(ids)).order_by(children_table.c.time.desc()).limit(1)
            ).first()
            if place is None:
                return None
            case_ids = list(conn.execute(
                select(child_cases_table.c.case_id).where(child_cases_table.c.child_id.in_(ids))
            ).scalars())
            return RecordFacts(
                township=place.township, village=place.village,
                holding_agencies=self._holders(conn, case_ids), grants=self._grants(conn, case_ids),
            )

    @staticmethod
    def _related_children(conn: Connection, child_id: str) -> list[str]:
        survivors = conn.execute(
            select(merges_table.c.survivor_id).where(merges_table.c.merged_child_id == child_id)
        ).scalars().all()
        roots = [child_id, *survivors]
        merged = conn.execute(
            select(merges_table.c.merged_child_id).where(merges_table.c.survivor_id.in_(roots))
        ).scalars().all()
        return sorted({*roots, *merged})

    @staticmethod
    def _holders(conn: Connection, case_ids: Sequence[str]) -> frozenset[str]:
        rows = conn.execute(
            select(referrals_table.c.agency, referrals_table.c.status).where(referrals_table.c.case_id.in_(case_ids))
        )
        return holding_agencies((r.agency, r.status) for r in rows)

    @staticmethod
    def _grants(conn: Connection, case_ids: Sequence[str]) -> tuple[Grant, ...]:
        rows = conn.execute(
            select(grants_table.c.grant_id, grants_table.c.subject, grants_table.c.expires_at, grants_table.c.justified)
            .where(grants_table.c.case_id.in_(case_ids), grants_table.c.expires_at.is_not(None))
        )
        return tuple(
            Grant(UUID(r.grant_id), r.subject, _utc(r.expires_at)) for r in rows if r.justified is not False
        )

    def grant(self, grant_id: UUID) -> dict[str, Any] | None:
        with reading(self.engine) as conn:
            row = conn.execute(select(grants_table).where(grants_table.c.grant_id == str(grant_id))).first()
        return _grant_row(row._mapping) if row else None

    def grants(self, *, unreviewed: bool, since: datetime | None, limit: int) -> list[dict[str, Any]]:
        """Break-the-glass grants, newest first (the register the lead agency reviews)."""
        query = select(grants_table).where(grants_table.c.opened_at.is_not(None))
        if unreviewed:
            query = query.where(grants_table.c.reviewed_at.is_(None))
        if since is not None:
            query = query.where(grants_table.c.opened_at >= _utc(since))
        query = query.order_by(grants_table.c.opened_at.desc(), grants_table.c.grant_id).limit(limit)
        with reading(self.engine) as conn:
            return [_grant_row(r._mapping) for r in conn.execute(query)]


def _grant_row(row: Any) -> dict[str, Any]:
    out = dict(row)
    for name in ("opened_at", "expires_at", "reviewed_at"):
        if out.get(name) is not None:
            out[name] = _utc(out[name])
    return out


@functools.cache
def _place_upsert(dialect: str, table: Table, key: str) -> Any:
    """Insert a place, or move it when the event saying so is not older than the one before (the latest place wins,
    whatever the order of arrival). Built once per dialect and table, executed with a batch of rows."""
    stmt: Any = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    return stmt.on_conflict_do_update(
        index_elements=[key],
        set_={"township": stmt.excluded.township, "village": stmt.excluded.village, "time": stmt.excluded.time},
        where=table.c.time <= stmt.excluded.time,
    )
