"""Integration events into the temporal read models: one function per event type, on the event's JSON.

The projection reads the event as JSON (the inbox's payload), never as a contract class, so that live handling
and a rebuild from the inbox run the very same code on the very same input, and an event type the contracts add
later can be projected from the events already kept. A fact holds from its event's recorded time (the CloudEvents
``time``): a change closes the row that held (``valid_to``) and opens the next (``valid_from``).

The guardianship facts (parent contacts, signed agreements, child directors, trainings) are the contract events
``ParentContactRecorded``, ``EntrustedCareAgreementSigned``, ``ChildDirectorAssigned``, ``ChildDirectorLeft`` and
``ChildDirectorTrained`` (contracts/events.py). An agreement ends by date (``expires_on``): guardianship has no
revocation, so ``AGREEMENT_ENDED`` has no contract event yet and is kept for one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table, and_, case, or_, select, update

from contracts.events import (
    ChildDirectorAssigned,
    ChildDirectorLeft,
    ChildDirectorTrained,
    EntrustedCareAgreementSigned,
    ParentContactRecorded,
)
from huhang.sql import dialect_insert
from services.indicators import tables as t

Event = Mapping[str, Any]
Projector = Callable[[Connection, Event, datetime], None]

CHILD_FILE_UPDATED = "cn.huhang.child.file-updated.v1"
CHILDREN_MERGED = "cn.huhang.child.merged.v1"
CHILD_DATA_ERASED = "cn.huhang.child.data-erased.v1"
VISIT_RECORDED = "cn.huhang.guardianship.visit-recorded.v1"
RISK_ASSESSED = "cn.huhang.guardianship.risk-assessed.v1"
INTERVENTION_RECORDED = "cn.huhang.guardianship.intervention-recorded.v1"
REFERRAL_REQUESTED = "cn.huhang.referral.requested.v1"
REFERRAL_STATUS_CHANGED = "cn.huhang.referral.status-changed.v1"
REFERRAL_OWNER_CHANGED = "cn.huhang.referral.owner-changed.v1"
DROPOUT_REPORTED = "cn.huhang.education.school-dropout-reported.v1"
RETURN_REPORTED = "cn.huhang.education.school-return-reported.v1"
# guardianship's facts for the indicators (contracts/events.py; the fields these projectors read)
PARENT_CONTACT_RECORDED = ParentContactRecorded.event_type  # contact_id, child_id, contacted_on
AGREEMENT_SIGNED = EntrustedCareAgreementSigned.event_type  # agreement_id, child_id, expires_on
AGREEMENT_ENDED = "cn.huhang.guardianship.entrusted-care-agreement-ended.v1"  # no contract event: see the docstring
DIRECTOR_ASSIGNED = ChildDirectorAssigned.event_type  # director_id, township, village
DIRECTOR_LEFT = ChildDirectorLeft.event_type  # director_id
DIRECTOR_TRAINED = ChildDirectorTrained.event_type  # training_id, director_id, trained_on

RISK_ORDER = {"green": 0, "yellow": 1, "red": 2}
CHINA = ZoneInfo("Asia/Shanghai")


def utc(value: datetime | str) -> datetime:
    """An aware UTC datetime from an event's time or a stored one (SQLite hands back naive UTC)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def fact_day(value: str, at: datetime) -> date:
    """The day a contact is counted on: its own day, but never after the China calendar day it was recorded (a
    contact dated in the future, which guardianship refuses, is not counted ahead of its recording), so that
    whatever was recorded by an instant is dated by then and the present's latest days equal the temporal ones."""
    return min(date.fromisoformat(value), at.astimezone(CHINA).date())


def _close(conn: Connection, table: Table, key: str, value: str, at: datetime) -> None:
    conn.execute(
        update(table).where(and_(table.c[key] == value, table.c.valid_to.is_(None))).values(valid_to=at)
    )


def _child_file(conn: Connection, e: Event, at: datetime) -> None:
    d = e["data"]
    _close(conn, t.children, "child_id", d["child_id"], at)
    conn.execute(t.children.insert().values(
        child_id=d["child_id"], township=d["township"], village=d["village"],
        categories="," + ",".join(sorted(d["categories"])) + ",", parents_away=bool(d["parents_away"]),
        frequent=bool(d["frequent_visit_reasons"]), valid_from=at, valid_to=None,
    ))


def _merged(conn: Connection, e: Event, at: datetime) -> None:
    _close(conn, t.children, "child_id", e["data"]["merged_child_id"], at)


def _erased(conn: Connection, e: Event, at: datetime) -> None:
    _close(conn, t.children, "child_id", e["data"]["child_id"], at)


def _visit(conn: Connection, e: Event, at: datetime) -> None:
    d = e["data"]
    _insert_once(conn, t.contacts, "contact_id", {
        "contact_id": d["visit_id"], "child_id": d["child_id"], "kind": d["kind"],
        "on_date": fact_day(d["visited_on"], at), "recorded_at": at,
    })


def _parent_contact(conn: Connection, e: Event, at: datetime) -> None:
    d = e["data"]
    _insert_once(conn, t.contacts, "contact_id", {
        "contact_id": d["contact_id"], "child_id": d["child_id"], "kind": "parent",
        "on_date": fact_day(d["contacted_on"], at), "recorded_at": at,
    })


def _risk(conn: Connection, e: Event, at: datetime) -> None:
    d = e["data"]
    held = conn.execute(select(t.risks.c.colour).where(
        and_(t.risks.c.child_id == d["child_id"], t.risks.c.valid_to.is_(None))
    )).scalar()
    _close(conn, t.risks, "child_id", d["child_id"], at)
    conn.execute(t.risks.insert().values(
        child_id=d["child_id"], colour=d["colour"], previous=held, township=d["township"], village=d["village"],
        valid_from=at, valid_to=None,
    ))


def _intervention(conn: Connection, e: Event, at: datetime) -> None:
    d = e["data"]
    _insert_once(conn, t.interventions, "intervention_id", {
        "intervention_id": d["intervention_id"], "child_id": d["child_id"], "kind": d["kind"],
        "agency": d["agency"], "township": d["township"], "village": d["village"], "recorded_at": at,
    })


def _referral_requested(conn: Connection, e: Event, at: datetime) -> None:
    d = e["data"]
    if conn.execute(select(t.referrals.c.referral_id).where(t.referrals.c.referral_id == d["referral_id"])).first():
        return
    conn.execute(t.referrals.insert().values(
        referral_id=d["referral_id"], referral_type=d["referral_type"], priority=d["priority"],
        township=d["township"], village=d["village"], requested_at=at, due_at=utc(d["due_at"]),
        complete_by=utc(d["complete_by"]) if d.get("complete_by") else None, status="requested",
        owner_agency=d["owner_agency"],
    ))
    conn.execute(t.referral_states.insert().values(
        referral_id=d["referral_id"], status="requested", owner_agency=d["owner_agency"], valid_from=at
    ))


def _open_state(conn: Connection, referral_id: str) -> Any:
    return conn.execute(select(t.referral_states).where(and_(
        t.referral_states.c.referral_id == referral_id, t.referral_states.c.valid_to.is_(None)
    ))).first()


def _referral_status(conn: Connection, e: Event, at: datetime) -> None:
    d = e["data"]
    if _open_state(conn, d["referral_id"]) is None:
        return  # the request has not been seen (another county's, or from before this service existed)
    _close(conn, t.referral_states, "referral_id", d["referral_id"], at)
    conn.execute(t.referral_states.insert().values(
        referral_id=d["referral_id"], status=d["status"], owner_agency=d["owner_agency"], valid_from=at
    ))
    present = update(t.referrals).where(t.referrals.c.referral_id == d["referral_id"])
    stamp = {"accepted": "accepted_at", "completed": "completed_at"}.get(d["status"])
    values: dict[str, Any] = {"status": d["status"], "owner_agency": d["owner_agency"]}
    if stamp is not None:
        values[stamp] = case((t.referrals.c[stamp].is_(None), at), else_=t.referrals.c[stamp])
    conn.execute(present.values(values))


def _referral_owner(conn: Connection, e: Event, at: datetime) -> None:
    d = e["data"]
    state = _open_state(conn, d["referral_id"])
    if state is None:
        return
    _close(conn, t.referral_states, "referral_id", d["referral_id"], at)
    conn.execute(t.referral_states.insert().values(
        referral_id=d["referral_id"], status=state.status, owner_agency=d["to_agency"], valid_from=at
    ))
    conn.execute(update(t.referrals).where(t.referrals.c.referral_id == d["referral_id"]).values(
        owner_agency=d["to_agency"]))


def _dropout(conn: Connection, e: Event, at: datetime) -> None:
    d = e["data"]
    open_row = conn.execute(select(t.dropouts.c.id).where(and_(
        t.dropouts.c.child_id == d["child_id"], t.dropouts.c.valid_to.is_(None)
    ))).first()
    if open_row is None:
        conn.execute(t.dropouts.insert().values(
            child_id=d["child_id"], township=d["township"], village=d["village"], valid_from=at
        ))


def _returned(conn: Connection, e: Event, at: datetime) -> None:
    _close(conn, t.dropouts, "child_id", e["data"]["child_id"], at)


def _agreement_signed(conn: Connection, e: Event, at: datetime) -> None:
    d = e["data"]
    _close(conn, t.agreements, "agreement_id", d["agreement_id"], at)
    conn.execute(t.agreements.insert().values(
        agreement_id=d["agreement_id"], child_id=d["child_id"], expires_on=_day(d.get("expires_on")),
        valid_from=at,
    ))


def _agreement_ended(conn: Connection, e: Event, at: datetime) -> None:
    _close(conn, t.agreements, "agreement_id", e["data"]["agreement_id"], at)


def _director_assigned(conn: Connection, e: Event, at: datetime) -> None:
    d = e["data"]
    _close(conn, t.directors, "director_id", d["director_id"], at)
    conn.execute(t.directors.insert().values(
        director_id=d["director_id"], township=d["township"], village=d["village"], valid_from=at
    ))


def _director_left(conn: Connection, e: Event, at: datetime) -> None:
    _close(conn, t.directors, "director_id", e["data"]["director_id"], at)


def _director_trained(conn: Connection, e: Event, at: datetime) -> None:
    d = e["data"]
    _insert_once(conn, t.trainings, "training_id", {
        "training_id": d["training_id"], "director_id": d["director_id"], "trained_on": _day(d["trained_on"]),
        "recorded_at": at,
    })


# -- the present (``ind_child_present``): one row per child, the temporal rules' outcome now ---------------------

def _present(conn: Connection, child_id: str, values: Mapping[str, Any], set_: Mapping[str, Any],
             where: Any = None) -> None:
    """Insert the child's present row with ``values`` or, when there is one, change it by ``set_``."""
    stmt = dialect_insert(conn, t.child_present).values({"child_id": child_id, "registered": False, **values})
    conn.execute(stmt.on_conflict_do_update(index_elements=[t.child_present.c.child_id], set_=dict(set_),
                                            where=where))


def _later_of(column: str, day: date) -> Any:
    held = t.child_present.c[column]
    return case((or_(held.is_(None), held < day), day), else_=held)


def present_child(d: Mapping[str, Any]) -> dict[str, Any]:
    """A child file's present columns (the live projection's and the rebuild's)."""
    return {"registered": True, "township": d["township"], "village": d["village"],
            "categories": "," + ",".join(sorted(d["categories"])) + ",", "parents_away": bool(d["parents_away"]),
            "frequent": bool(d["frequent_visit_reasons"])}


LATEST_OF_KIND: Mapping[str, tuple[str, ...]] = {
    "contact": ("last_contact",), "home_visit": ("last_contact", "last_home_visit"), "parent": ("last_parent",),
}
"""A contact's kind (``ind_contact.kind``) -> the present row's latest days it may move."""


def present_contact(kind: str, d: Mapping[str, Any], at: datetime) -> dict[str, date]:
    """A contact's present columns: the latest days it may move (``last_*``)."""
    if kind == PARENT_CONTACT_RECORDED:
        return dict.fromkeys(LATEST_OF_KIND["parent"], fact_day(d["contacted_on"], at))
    return dict.fromkeys(LATEST_OF_KIND.get(d["kind"], ()), fact_day(d["visited_on"], at))


def _present_event(conn: Connection, e: Event, at: datetime) -> None:
    kind, d = e["type"], e["data"]
    c = t.child_present.c
    if kind == CHILD_FILE_UPDATED:
        values = present_child(d)
        _present(conn, d["child_id"], values, values)
    elif kind in (CHILDREN_MERGED, CHILD_DATA_ERASED):
        child = d["merged_child_id"] if kind == CHILDREN_MERGED else d["child_id"]
        _present(conn, child, {}, {"registered": False})
    elif kind in (VISIT_RECORDED, PARENT_CONTACT_RECORDED):
        days = present_contact(kind, d, at)
        _present(conn, d["child_id"], days, {name: _later_of(name, day) for name, day in days.items()})
    elif kind == DROPOUT_REPORTED:  # a spell opens unless one is open
        values = {"school_out": True, "school_township": d["township"], "school_village": d["village"]}
        _present(conn, d["child_id"], values, values, where=or_(c.school_out.is_(None), c.school_out.is_(False)))
    elif kind == RETURN_REPORTED:
        conn.execute(update(t.child_present).where(and_(c.child_id == d["child_id"], c.school_out.is_(True)))
                     .values(school_out=False))


def _insert_once(conn: Connection, table: Table, key: str, row: Mapping[str, Any]) -> None:
    """Insert a fact keyed by its own id; a repeat (the same id again) keeps the first row, in one statement."""
    conn.execute(dialect_insert(conn, table).values(dict(row)).on_conflict_do_nothing(index_elements=[table.c[key]]))


PROJECTORS: Mapping[str, tuple[str, Projector]] = {
    CHILD_FILE_UPDATED: ("children", _child_file),
    CHILDREN_MERGED: ("children", _merged),
    CHILD_DATA_ERASED: ("children", _erased),
    VISIT_RECORDED: ("contacts", _visit),
    PARENT_CONTACT_RECORDED: ("contacts", _parent_contact),
    RISK_ASSESSED: ("risks", _risk),
    INTERVENTION_RECORDED: ("interventions", _intervention),
    REFERRAL_REQUESTED: ("referrals", _referral_requested),
    REFERRAL_STATUS_CHANGED: ("referrals", _referral_status),
    REFERRAL_OWNER_CHANGED: ("referrals", _referral_owner),
    DROPOUT_REPORTED: ("dropouts", _dropout),
    RETURN_REPORTED: ("dropouts", _returned),
    AGREEMENT_SIGNED: ("agreements", _agreement_signed),
    AGREEMENT_ENDED: ("agreements", _agreement_ended),
    DIRECTOR_ASSIGNED: ("directors", _director_assigned),
    DIRECTOR_LEFT: ("directors", _director_left),
    DIRECTOR_TRAINED: ("directors", _director_trained),
}
"""Event type -> (the read model it feeds, its projector). Types not listed are kept in the inbox only."""

PRESENT_TYPES = frozenset({
    CHILD_FILE_UPDATED, CHILDREN_MERGED, CHILD_DATA_ERASED, VISIT_RECORDED, PARENT_CONTACT_RECORDED,
    DROPOUT_REPORTED, RETURN_REPORTED,
})
"""The event types the ``present`` read model (``ind_child_present``) follows, beside the models above."""

WANTED_TYPES = frozenset(PROJECTORS) | PRESENT_TYPES


def project(conn: Connection, event: Event, models: frozenset[str] | None = None) -> None:
    """Apply one event (as JSON) to the read models (all, or only ``models``, for a rebuild of some)."""
    kind = event["type"]
    if kind not in WANTED_TYPES:
        return
    at = utc(event["time"])
    entry = PROJECTORS.get(kind)
    if entry is not None and (models is None or entry[0] in models):
        entry[1](conn, event, at)
    if kind in PRESENT_TYPES and (models is None or "present" in models):
        _present_event(conn, event, at)
