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
from collections.abc import Callable, Sequence
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
    Select,
    String,
    Table,
    bindparam,
    cast,
    literal,
    null,
    select,
    union,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.selectable import CompoundSelect

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
            self._referrals(conn, events)
            for event in events:
                self._apply(conn, event)

    @staticmethod
    def _referrals(conn: Connection, events: Sequence[CloudEvent]) -> None:
        """Who holds each referral, a statement or two for the whole batch. Order within the batch does not matter:
        a new holder's row is only inserted when missing, and a status only replaces an older one."""
        new_holders: list[dict[str, Any]] = []
        statuses: dict[tuple[str, str], dict[str, Any]] = {}  # the latest per row: one statement may not touch a
        # row twice (PostgreSQL's ON CONFLICT DO UPDATE), and the batch is executed as one
        for event in events:
            data: Any = event.data  # type: ignore[attr-defined]
            if isinstance(event, ReferralRequested | ReferralOwnerChanged):
                requested = isinstance(event, ReferralRequested)
                new_holders.append({
                    "referral_id": str(data.referral_id),
                    "agency": (data.owner_agency if requested else data.to_agency).value,
                    "case_id": str(data.case_id), "status": "requested" if requested else TRANSFERRED_IN,
                    "time": _utc(event.time),
                })
            elif isinstance(event, ReferralStatusChanged):
                row = {"referral_id": str(data.referral_id), "agency": data.owner_agency.value,
                       "case_id": str(data.case_id), "status": data.status.value, "time": _utc(event.time)}
                key = (row["referral_id"], row["agency"])
                if key not in statuses or statuses[key]["time"] <= row["time"]:
                    statuses[key] = row
        if new_holders:
            insert_ignoring_duplicates(conn, referrals_table, new_holders)
        if statuses:
            conn.execute(_status_upsert(conn.dialect.name), list(statuses.values()))

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
        if isinstance(event, ChildrenMerged):
            insert_ignoring_duplicates(conn, merges_table, [
                {"merged_child_id": str(data.merged_child_id), "survivor_id": str(data.child_id)}
            ])
        elif isinstance(event, BreakGlassAccessOpened):
            self._grant_opened(conn, data)
        elif isinstance(event, BreakGlassAccessReviewed):
            self._grant_reviewed(conn, data, time)

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
        """The facts about one case; ``None`` when no event of it has arrived yet. One statement (it runs before
        nearly every request that names a case: three round trips were a large share of their cost)."""
        with reading(self.engine) as conn:
            rows = conn.execute(_case_facts(), {"case_id": str(case_id)}).all()
        return _facts(rows)

    def facts_for_child(self, child_id: UUID) -> RecordFacts | None:
        """The facts about a child across all of its cases (and those of files merged into it, or it into), in
        one statement."""
        with reading(self.engine) as conn:
            rows = conn.execute(_child_facts(), {"child_id": str(child_id)}).all()
        return _facts(rows)

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


# --- the facts' statements: built once, executed with the record's id bound -------------------------------------------
#
# Each answers rows of (part, a, b, at, flag): a "place" (township, village, its time), a "holder" (agency, status)
# or a "grant" (grant id, subject, expiry, justified), all in one round trip. Built with SQLAlchemy Core: the same
# statement on PostgreSQL and SQLite.


def _part(name: str, a: Any, b: Any, at: Any = None, flag: Any = None) -> list[Any]:
    return [
        literal(name, String).label("part"), a.label("a"), b.label("b"),
        (at if at is not None else cast(null(), DateTime(timezone=True))).label("at"),
        (flag if flag is not None else cast(null(), Boolean)).label("flag"),
    ]


def _holders_and_grants(of_cases: Callable[[Any], Any]) -> list[Select[Any]]:
    """The holders and the grants of the cases ``of_cases`` selects (given a table's ``case_id`` column)."""
    r, g = referrals_table.c, grants_table.c
    return [
        select(*_part("holder", r.agency, r.status)).where(of_cases(r.case_id)),
        select(*_part("grant", g.grant_id, g.subject, g.expires_at, g.justified))
        .where(of_cases(g.case_id), g.expires_at.is_not(None)),
    ]


@functools.cache
def _case_facts() -> CompoundSelect[Any]:
    case_id = bindparam("case_id", type_=String)
    c = cases_table.c
    return union_all(
        select(*_part("place", c.township, c.village, c.time)).where(c.case_id == case_id),
        *_holders_and_grants(lambda column: column == case_id),
    )


@functools.cache
def _child_facts() -> CompoundSelect[Any]:
    """The child's related files (the survivors it was merged into, and every file merged into those or into it),
    their places, and the holders and grants of all their cases."""
    child_id = bindparam("child_id", type_=String)
    m = merges_table.c
    roots = union(
        select(child_id.label("child_id")),
        select(m.survivor_id.label("child_id")).where(m.merged_child_id == child_id),
    ).cte("roots")
    related = union(
        select(roots.c.child_id),
        select(m.merged_child_id.label("child_id")).where(m.survivor_id.in_(select(roots.c.child_id))),
    ).cte("related")
    cases = select(child_cases_table.c.case_id).where(child_cases_table.c.child_id.in_(select(related.c.child_id)))
    ch = children_table.c
    return union_all(
        select(*_part("place", ch.township, ch.village, ch.time)).where(ch.child_id.in_(select(related.c.child_id))),
        *_holders_and_grants(lambda column: column.in_(cases)),
    )


def _facts(rows: Sequence[Any]) -> RecordFacts | None:
    places = [r for r in rows if r.part == "place"]
    if not places:
        return None
    place = max(places, key=lambda r: _utc(r.at))  # the latest place of the child's files
    return RecordFacts(
        township=place.a, village=place.b,
        holding_agencies=holding_agencies((r.a, r.b) for r in rows if r.part == "holder"),
        grants=tuple(Grant(UUID(r.a), r.b, _utc(r.at)) for r in rows if r.part == "grant" and r.flag is not False),
    )


@functools.cache
def _status_upsert(dialect: str) -> Any:
    """A referral's status for its agency, unless a later one is recorded already (whatever the order of arrival)."""
    stmt: Any = (postgresql if dialect == "postgresql" else sqlite).insert(referrals_table)
    return stmt.on_conflict_do_update(
        index_elements=["referral_id", "agency"],
        set_={"status": stmt.excluded.status, "time": stmt.excluded.time},
        where=referrals_table.c.time <= stmt.excluded.time,
    )
