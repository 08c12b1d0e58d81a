"""What the scheduled care checks read: per child, the last contact, home visit and parent contact, the latest
guardianship risk, the entrusted-care agreements, and the last notice of each kind raised.

A projection of guardianship's own domain events (care files and risk assessments), brought up to date from the
event store's notification log by ``catch_up`` before every check: the rows and the position move in one
transaction, and every write is monotonic (a date only moves later, the risk only to a later assessment, the
position only forward), so a repeated or concurrent catch-up converges to the same tables.

The ``raised_*`` columns remember, per child, the due period of the last notice of each kind the checks raised: a
check builds a notice only when its due period differs, so that a routine check of 100,000 children touches only
what changed. They are a shortcut, not the guarantee: a notice's id derives from child, kind and due period, and
the event store refuses a second notice with the same id.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    Engine,
    MetaData,
    String,
    Table,
    case,
    func,
    select,
)

from huhang.sql import create_tables, dialect_insert, insert_ignoring_duplicates, reading
from huhang.streams import Positions, WakeableApplication, positions_table
from services.guardianship.care import AgreementTerms, CareFile
from services.guardianship.children import known_children_table
from services.guardianship.domain import GuardianshipFile

POSITION_NAME = "guardianship.care_status"

metadata = MetaData()
care_status_table = Table(
    "care_status",
    metadata,
    Column("child_id", String(36), primary_key=True),
    Column("last_contact_on", Date, nullable=True),
    Column("last_home_visit_on", Date, nullable=True),
    Column("last_parent_contact_on", Date, nullable=True),
    Column("risk_level", String(10), nullable=True),
    Column("risk_position", BigInteger, nullable=True),  # the notification id of the assessment
    Column("raised_contact_due_on", Date, nullable=True),
    Column("raised_home_visit_due_on", Date, nullable=True),
    Column("raised_parent_contact", String(40), nullable=True),  # counting start / weeks missed
    Column("raised_entrusted_care", String(80), nullable=True),  # problem / what it is about
)
RAISED = ("raised_contact_due_on", "raised_home_visit_due_on", "raised_parent_contact", "raised_entrusted_care")
care_agreements_table = Table(
    "care_agreements",
    metadata,
    Column("agreement_id", String(36), primary_key=True),
    Column("child_id", String(36), nullable=False, index=True),
    Column("start_on", Date, nullable=False),
    Column("end_on", Date, nullable=True),
    Column("signed", Boolean, nullable=False),
)

_VISIT = get_topic(CareFile.VisitRecorded)  # type: ignore[attr-defined]
_PARENT_CONTACT = get_topic(CareFile.ParentContactRecorded)  # type: ignore[attr-defined]
_AGREEMENT = get_topic(CareFile.AgreementRecorded)  # type: ignore[attr-defined]
_SIGNED = get_topic(CareFile.AgreementSigned)  # type: ignore[attr-defined]
_RISK = get_topic(GuardianshipFile.RiskAssessed)  # type: ignore[attr-defined]
TOPICS = (_VISIT, _PARENT_CONTACT, _AGREEMENT, _SIGNED, _RISK)


@dataclass(frozen=True, slots=True)
class ChildCare:
    """One covered child as the checks see it: what the file says and what care was recorded."""

    child_id: UUID
    township: str
    village: str
    parents_away: bool
    parents_away_since: date | None
    frequent_visit_reasons: tuple[str, ...]
    registered_on: date | None
    last_contact_on: date | None
    last_home_visit_on: date | None
    last_parent_contact_on: date | None
    risk_level: str | None
    raised: dict[str, Any]  # RAISED column -> the due period of the last notice of that kind


_insert = dialect_insert


def _later(column: Any, new: Any) -> Any:
    """SQL for the later of the stored and the new date (either may be null): dates never move back."""
    return case((new.is_(None), column), (column.is_(None), new), (column < new, new), else_=column)


class CareStatus:
    def __init__(
        self, engine: Engine, app: WakeableApplication, batch_size: int = 1000, page_size: int = 5000
    ) -> None:
        self.engine = engine
        self.app = app
        self.batch_size = batch_size
        self.page_size = page_size
        create_tables(metadata, engine)
        create_tables(positions_table.metadata, engine, [positions_table])

    # --- the projection ---------------------------------------------------------------------------------------

    def catch_up(self) -> int:
        """Apply what the log holds beyond the recorded position; returns the number of events applied."""
        applied = 0
        while True:
            with self.engine.begin() as conn:
                position = self._position(conn)
                notifications = self.app.recorder.select_notifications(
                    start=position, limit=self.batch_size, topics=TOPICS, inclusive_of_start=False
                )
                if not notifications:
                    return applied
                self._apply(conn, notifications)
                self._advance(conn, notifications[-1].id)
            applied += len(notifications)

    @staticmethod
    def _position(conn: Connection) -> int:
        return Positions.read_in(conn, POSITION_NAME)

    @staticmethod
    def _advance(conn: Connection, position: int) -> None:
        Positions.advance_in(conn, POSITION_NAME, position)

    def _apply(self, conn: Connection, notifications: Sequence[Any]) -> None:
        dates: dict[str, dict[str, Any]] = {}  # per child, the latest of each date in this batch
        risks: dict[str, dict[str, Any]] = {}  # per child, the last assessment in this batch
        agreements: list[dict[str, Any]] = []
        signed: list[str] = []
        for n in notifications:
            e: Any = self.app.mapper.to_domain_event(n)
            if n.topic == _VISIT:
                _merge_dates(dates, e.child_id, last_contact_on=e.visited_on,
                             last_home_visit_on=e.visited_on if e.kind == "home_visit" else None)
            elif n.topic == _PARENT_CONTACT:
                _merge_dates(dates, e.child_id, last_parent_contact_on=e.contacted_on)
            elif n.topic == _AGREEMENT:
                agreements.append({
                    "agreement_id": str(e.agreement_id), "child_id": str(e.child_id), "start_on": e.start_on,
                    "end_on": e.end_on, "signed": e.signed,
                })
            elif n.topic == _SIGNED:
                signed.append(str(e.agreement_id))
            elif n.topic == _RISK:
                risks[str(e.child_id)] = _status_row(e.child_id, risk_level=e.risk_level, risk_position=n.id)
        if dates:
            conn.execute(_dates_statement(conn), list(dates.values()))
        if risks:
            conn.execute(_risk_statement(conn), list(risks.values()))
        insert_ignoring_duplicates(conn, care_agreements_table, agreements)
        if signed:
            t = care_agreements_table
            conn.execute(t.update().where(t.c.agreement_id.in_(signed)).values(signed=True))

    # --- what the checks read ---------------------------------------------------------------------------------

    def covered_children(self, page_size: int | None = None) -> Iterator[list[ChildCare]]:
        """Every covered child not merged away, with its care dates and risk: one streamed query (only the columns
        the checks need; 100,000 children in seconds), handed out a page at a time so that memory stays bounded
        and the caller may write between pages."""
        size = page_size or self.page_size
        k, s = known_children_table, care_status_table
        query = (
            select(k.c.child_id, k.c.township, k.c.village, k.c.parents_away, k.c.parents_away_since,
                   k.c.frequent_visit_reasons, k.c.registered_on, s.c.last_contact_on, s.c.last_home_visit_on,
                   s.c.last_parent_contact_on, s.c.risk_level, *(s.c[name] for name in RAISED))
            .select_from(k.outerjoin(s, s.c.child_id == k.c.child_id))
            .where(k.c.covered.is_(True), k.c.merged_into.is_(None))
            .order_by(k.c.child_id)
        )
        with self.engine.connect() as conn:  # streamed by a server-side cursor: that takes a transaction
            result = conn.execution_options(yield_per=size).execute(query)
            for rows in result.partitions():
                yield [
                    ChildCare(
                        UUID(child_id), township, village, bool(away), away_since, tuple(reasons), registered_on,
                        last_contact, last_home, last_parent, risk, dict(zip(RAISED, raised, strict=True)),
                    )
                    for (child_id, township, village, away, away_since, reasons, registered_on, last_contact,
                         last_home, last_parent, risk, *raised) in rows
                ]

    def agreements_of_children_with_parents_away(self) -> dict[UUID, list[AgreementTerms]]:
        a, k = care_agreements_table, known_children_table
        query = (
            select(a)
            .select_from(a.join(k, k.c.child_id == a.c.child_id))
            .where(k.c.parents_away.is_(True), k.c.merged_into.is_(None))
        )
        found: dict[UUID, list[AgreementTerms]] = {}
        with reading(self.engine) as conn:
            for row in conn.execute(query):
                found.setdefault(UUID(row.child_id), []).append(
                    AgreementTerms(row.agreement_id, row.start_on, row.end_on, bool(row.signed))
                )
        return found

    def mark_raised(self, raised: dict[UUID, dict[str, Any]]) -> None:
        """Remember, per child, the due period of the notices just raised (``RAISED`` column -> key)."""
        if not raised:
            return
        rows = [_status_row(child_id, **{k: v.get(k) for k in RAISED}) for child_id, v in raised.items()]
        with self.engine.begin() as conn:
            conn.execute(_raised_statement(conn), rows)


def _dates_statement(conn: Connection) -> Any:
    t = care_status_table
    stmt = _insert(conn, t)
    return stmt.on_conflict_do_update(index_elements=["child_id"], set_={
        name: _later(t.c[name], stmt.excluded[name])
        for name in ("last_contact_on", "last_home_visit_on", "last_parent_contact_on")
    })


def _risk_statement(conn: Connection) -> Any:
    t = care_status_table
    stmt = _insert(conn, t)
    return stmt.on_conflict_do_update(
        index_elements=["child_id"],
        set_={"risk_level": stmt.excluded.risk_level, "risk_position": stmt.excluded.risk_position},
        where=(t.c.risk_position.is_(None)) | (t.c.risk_position < stmt.excluded.risk_position),
    )


def _raised_statement(conn: Connection) -> Any:
    t = care_status_table
    stmt = _insert(conn, t)
    return stmt.on_conflict_do_update(index_elements=["child_id"], set_={
        name: func.coalesce(stmt.excluded[name], t.c[name]) for name in RAISED
    })


def _status_row(child_id: UUID, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "child_id": str(child_id), "last_contact_on": None, "last_home_visit_on": None,
        "last_parent_contact_on": None, "risk_level": None, "risk_position": None,
        **{name: None for name in RAISED},
    }
    row.update(values)
    return row


def _merge_dates(rows: dict[str, dict[str, Any]], child_id: UUID, **dates: date | None) -> None:
    row = rows.setdefault(str(child_id), _status_row(child_id))
    for name, value in dates.items():
        if value is not None and (row[name] is None or value > row[name]):
            row[name] = value
