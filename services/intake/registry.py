"""The child registry: the registration command and answer, and the registry's own read models.

``RegisterChild`` / ``Registration`` are what ``IntakeApplication.register_children`` takes and gives (the API,
the survey import and the demo all register through it). The read models here are intake's working lists, kept
beside its events in the read-model engine (SQLite or PostgreSQL), ids and codes only:

- ``ChildRegistry``: per child, the date its categories change by time alone (parents reaching three months
  away) and whether it was merged, so that a scheduled job re-derives only the children due;
- ``DuplicateList``: the probable duplicates flagged for a person to confirm or dismiss, and their outcome.

Both are written right after the events that they reflect are saved, from the aggregates' state (idempotent),
so registering a child again repairs its rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Index,
    MetaData,
    String,
    Table,
    and_,
    delete,
    or_,
    select,
    update,
)

from huhang.sql import create_tables, insert_ignoring_duplicates, reading
from services.intake.domain import Child
from services.intake.facts import EMPTY_FACTS, SECTIONS, ChildFileFacts, facts_fingerprint
from services.intake.match_index import among, upsert_rows

if TYPE_CHECKING:
    from services.intake.application import ChildFacts
    from services.intake.matching import Match

REGISTRATION_SOURCE = "registration"


@dataclass(frozen=True)
class RegisterChild:
    """Register a child, or bring the file of a child already registered up to date."""

    identity: ChildFacts  # name, sex, birth date, ID number, township, village; its categories are the registrar's
    facts: ChildFileFacts
    registered_by: str  # agency code
    source: str  # "registration" | "survey:<import id>:<row>" | "report:<report id>"


@dataclass(frozen=True)
class Registration:
    child_id: UUID
    created: bool  # a new file
    changed: bool  # facts or categories changed (False on an identical re-import)
    categories: tuple[str, ...]  # the file's derived categories
    duplicates: tuple[Match, ...]  # probable duplicates flagged for a person to confirm or dismiss


metadata = MetaData()

registry_table = Table(
    "child_registry",
    metadata,
    Column("child_id", String(36), primary_key=True),
    Column("township", String(50), nullable=False),
    Column("village", String(50), nullable=False),
    Column("rederive_on", Date, nullable=True),
    Column("merged", Boolean, nullable=False, default=False),
    Column("categories", JSON, nullable=False),
    Column("facts_fingerprint", String(64), nullable=True),
    Index("ix_child_registry_rederive_on", "rederive_on"),
)

duplicates_table = Table(
    "child_duplicates",
    metadata,
    Column("pair", String(73), primary_key=True),  # the two ids, sorted, joined by ":"
    Column("child_id", String(36), nullable=False),  # the child the duplicate was flagged on
    Column("other_child_id", String(36), nullable=False),
    Column("score", Float, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("status", String(20), nullable=False),  # pending | dismissed | confirmed
    Column("township", String(50), nullable=False),
    Column("village", String(50), nullable=False),
    Column("flagged_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("resolved_by", String(40), nullable=True),
    Index("ix_child_duplicates_status_flagged", "status", "flagged_at"),
)

DUPLICATE_STATUSES = ("pending", "dismissed", "confirmed")
_CHUNK = 1000  # rows per statement


def pair_key(a: UUID, b: UUID) -> str:
    first, second = sorted((str(a), str(b)))
    return f"{first}:{second}"


@dataclass(frozen=True)
class RegistryRow:
    child_id: UUID
    township: str
    village: str
    rederive_on: date | None
    merged: bool
    categories: tuple[str, ...]
    facts_fingerprint: str | None  # of the facts the file holds; None before any were recorded

    @classmethod
    def of(cls, child: Child, fingerprint: str | None = None) -> RegistryRow:
        """``fingerprint``: of the file's facts, when the caller has it already (else computed here)."""
        if fingerprint is None and child.facts:
            fingerprint = facts_fingerprint(child.facts)
        return cls(
            child.id, child.township, child.village, child.rederive_on, child.merged_into is not None,
            tuple(child.categories), fingerprint,
        )

    def unchanged_by(self, fingerprint: str, as_of: date) -> bool:
        """Whether registering facts with this fingerprint (``facts_fingerprint``) on this date would change nothing
        (as far as this row knows)."""
        return (
            not self.merged
            and (self.rederive_on is None or as_of < self.rederive_on)
            and self.facts_fingerprint == fingerprint
        )


class ChildRegistry:
    """Which children's categories change by time alone, and when."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(metadata, engine, [registry_table])

    def forget(self, child_ids: Sequence[UUID]) -> None:
        """Drop the children's rows (an erasure)."""
        with self.engine.begin() as conn:
            conn.execute(delete(registry_table).where(registry_table.c.child_id.in_([str(c) for c in child_ids])))

    def upsert(self, rows: Sequence[RegistryRow]) -> None:
        """One statement for all rows, passed as one parameter: a batch of 500 in a few milliseconds."""
        if not rows:
            return
        params = [
            {"child_id": str(r.child_id), "township": r.township, "village": r.village,
             "rederive_on": r.rederive_on, "merged": r.merged, "categories": list(r.categories),
             "facts_fingerprint": r.facts_fingerprint}
            for r in {r.child_id: r for r in rows}.values()
        ]
        with self.engine.begin() as conn:
            for start in range(0, len(params), _CHUNK):
                upsert_rows(conn, registry_table, params[start:start + _CHUNK], key="child_id")

    def rows(self, child_ids: set[UUID]) -> dict[UUID, RegistryRow]:
        """The rows of these children that have one (one query per thousand children)."""
        found: dict[UUID, RegistryRow] = {}
        ordered = sorted(str(i) for i in child_ids)
        t = registry_table
        with reading(self.engine) as conn:
            for start in range(0, len(ordered), _CHUNK):
                query = select(t).where(among(conn, t.c.child_id, ordered[start:start + _CHUNK]))
                for row in conn.execute(query):
                    child_id = UUID(row.child_id)
                    found[child_id] = RegistryRow(
                        child_id, row.township, row.village, row.rederive_on, bool(row.merged),
                        tuple(row.categories or ()), row.facts_fingerprint,
                    )
        return found

    def due(self, as_of: date, limit: int = 10_000) -> list[UUID]:
        """Children whose categories may have changed by ``as_of`` with no new facts."""
        query = (
            select(registry_table.c.child_id)
            .where(and_(registry_table.c.rederive_on <= as_of, registry_table.c.merged.is_(False)))
            .order_by(registry_table.c.rederive_on, registry_table.c.child_id)
            .limit(limit)
        )
        with reading(self.engine) as conn:
            return [UUID(v) for v in conn.execute(query).scalars()]


@dataclass(frozen=True)
class FlaggedPair:
    child_id: UUID
    other_child_id: UUID
    score: float
    reasons: tuple[str, ...]
    township: str
    village: str
    flagged_at: datetime


class DuplicateList:
    """The probable duplicates for a person to review, and what became of them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(metadata, engine, [duplicates_table])

    def forget(self, child_ids: Sequence[UUID]) -> None:
        """Drop every pair the children are in (an erasure)."""
        ids = [str(c) for c in child_ids]
        t = duplicates_table
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(or_(t.c.child_id.in_(ids), t.c.other_child_id.in_(ids))))

    def flagged(self, pairs: Sequence[FlaggedPair]) -> None:
        rows = [
            {
                "pair": pair_key(p.child_id, p.other_child_id), "child_id": str(p.child_id),
                "other_child_id": str(p.other_child_id), "score": p.score, "reasons": list(p.reasons),
                "status": "pending", "township": p.township, "village": p.village, "flagged_at": p.flagged_at,
                "resolved_at": None, "resolved_by": None,
            }
            for p in pairs
        ]
        if rows:
            with self.engine.begin() as conn:
                insert_ignoring_duplicates(conn, duplicates_table, rows)

    def statuses(self, keys: set[str]) -> dict[str, str]:
        """The status of each of these pairs that was ever flagged, by pair key."""
        out: dict[str, str] = {}
        ordered = sorted(keys)
        with reading(self.engine) as conn:
            for start in range(0, len(ordered), _CHUNK):
                chunk = ordered[start:start + _CHUNK]
                query = select(duplicates_table.c.pair, duplicates_table.c.status).where(
                    among(conn, duplicates_table.c.pair, chunk)
                )
                out.update({row.pair: row.status for row in conn.execute(query)})
        return out

    def resolved(self, a: UUID, b: UUID, status: str, by: str, at: datetime | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(duplicates_table)
                .where(duplicates_table.c.pair == pair_key(a, b))
                .values(status=status, resolved_by=by, resolved_at=at or datetime.now(UTC))
            )

    def list(
        self, status: str | None = "pending", township: str | None = None, child_id: UUID | None = None,
        after: str | None = None, limit: int = 50,
    ) -> list[dict[str, Any]]:
        t = duplicates_table
        query = select(t)
        if status is not None:
            query = query.where(t.c.status == status)
        if township is not None:
            query = query.where(t.c.township == township)
        if child_id is not None:
            query = query.where(or_(t.c.child_id == str(child_id), t.c.other_child_id == str(child_id)))
        if after is not None:
            query = query.where(t.c.pair > after)
        query = query.order_by(t.c.pair).limit(limit)
        with reading(self.engine) as conn:
            return [dict(row._mapping) for row in conn.execute(query).all()]


# --- the file and its history, as read from the child's events ------------------------------------------------------


def _event_name(domain_event: Any) -> str:
    return type(domain_event).__name__


def _changed_sections(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [s for s in SECTIONS if before.get(s, EMPTY_FACTS[s]) != after.get(s, EMPTY_FACTS[s])]


def history_entries(events: Iterable[Any]) -> list[dict[str, Any]]:
    """Every change of a child's file, in order: what changed, on whose behalf, from which source, when."""
    entries: list[dict[str, Any]] = []
    facts: dict[str, Any] = {}
    for e in events:
        name = _event_name(e)
        agency: str | None = None
        source: str | None = None
        details: dict[str, Any]
        if name == "Registered":
            agency, details = e.registered_by, {
                "name": e.name, "sex": e.sex, "birth_date": e.birth_date, "id_card_number": e.id_card_number,
                "township": e.township, "village": e.village, "reported_categories": list(e.categories),
            }
        elif name == "CaseOpened":
            details = {"case_id": e.case_id}
        elif name == "CategoriesReported":
            agency, details = e.reported_by, {"reported_categories": list(e.categories)}
        elif name == "FactsRecorded":
            agency, source = e.recorded_by, e.source
            details = {"changed_sections": _changed_sections(facts, e.facts), "facts": e.facts}
            facts = e.facts
        elif name == "CategoriesDerived":
            agency, details = e.derived_by, {
                "categories": list(e.categories), "added": list(e.added), "removed": list(e.removed),
                "reasons": list(e.reasons), "as_of": e.as_of,
            }
        elif name == "DuplicateFlagged":
            details = {"other_child_id": e.other_child_id, "score": e.score, "exact": e.exact,
                       "reasons": list(e.reasons)}
        elif name == "DuplicateDismissed":
            agency, details = e.by, {"other_child_id": e.other_child_id, "note": e.note}
        elif name == "MergedInto":
            agency, details = e.by, {"survivor_id": e.survivor_id, "note": e.note}
        elif name == "Absorbed":
            agency, details = e.by, {"merged_child_id": e.merged_child_id, "case_ids": list(e.case_ids),
                                     "note": e.note}
        else:
            details = {}
        entries.append({
            "version": e.originator_version, "time": e.timestamp, "change": _CHANGE_NAMES.get(name, name),
            "agency": agency, "source": source, "details": details,
        })
    return entries


_CHANGE_NAMES = {
    "Registered": "registered", "CaseOpened": "case_opened", "CategoriesReported": "categories_reported",
    "FactsRecorded": "facts_recorded", "CategoriesDerived": "categories_derived",
    "DuplicateFlagged": "duplicate_flagged", "DuplicateDismissed": "duplicate_dismissed",
    "MergedInto": "merged_into", "Absorbed": "absorbed",
}


def facts_provenance(events: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """For each part of the facts, the source, agency and time of the change that made it what it is."""
    provenance: dict[str, dict[str, Any]] = {}
    facts: dict[str, Any] = {}
    for e in events:
        if _event_name(e) != "FactsRecorded":
            continue
        for section in _changed_sections(facts, e.facts) if facts else SECTIONS:
            provenance[section] = {"source": e.source, "recorded_by": e.recorded_by, "recorded_at": e.timestamp}
        facts = e.facts
    return provenance


def child_file_view(child: Child, events: Sequence[Any], pending: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The whole file as the API shows it."""
    derived_at = next((e.timestamp for e in reversed(events) if _event_name(e) == "CategoriesDerived"), None)
    duplicates: dict[UUID, dict[str, Any]] = {}
    for other, entry in child.pending_duplicates().items():
        duplicates[other] = {"child_id": other, "score": entry.get("score"), "exact": bool(entry.get("exact")),
                             "reasons": list(entry.get("reasons") or ()), "flagged_on": child.id}
    for row in pending:
        flagged_on, first, second = UUID(row["child_id"]), UUID(row["child_id"]), UUID(row["other_child_id"])
        other = second if first == child.id else first
        duplicates.setdefault(other, {"child_id": other, "score": row["score"], "exact": False,
                                      "reasons": list(row["reasons"]), "flagged_on": flagged_on})
    summary = child.care_summary or {}
    return {
        "child_id": child.id, "name": child.name, "sex": child.sex, "birth_date": child.birth_date,
        "id_card_number": child.id_card_number, "township": child.township, "village": child.village,
        "registered_at": child.created_on, "registered_by": child.registered_by,
        "facts": child.facts or EMPTY_FACTS, "facts_provenance": facts_provenance(events),
        "categories": list(child.categories), "category_reasons": list(child.category_reasons),
        "categories_as_of": child.categories_as_of, "categories_derived_at": derived_at,
        "reported_categories": list(child.reported_categories),
        "parents_away": bool(summary.get("parents_away", False)),
        "parents_away_since": summary.get("parents_away_since"),
        "frequent_visit_reasons": list(summary.get("frequent_visit_reasons", ())),
        "has_entrusted_caregiver": bool(summary.get("has_entrusted_caregiver", False)),
        "case_ids": list(child.case_ids), "open_case_id": child.open_case_id,
        "duplicates_pending": list(duplicates.values()),
        "merged_into": child.merged_into, "absorbed": list(child.absorbed),
    }
