"""``GET /v1/cases/{case_id}/history?as_of=``: a case file exactly as it stood at a moment, across services, and
the events that made it so ("who did what, when, and why")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from huhang.access.guards import FORBIDDEN_DOC, CaseReader
from huhang.problems import FieldError, NotFound, Unprocessable, problem_doc
from services.intake.history import case_file
from services.intake.history_store import CaseHistory, CaseHistoryStore

router = APIRouter(prefix="/v1", tags=["reports and cases"])


async def get_history(request: Request) -> CaseHistoryStore:
    # async: it only reads app.state, and a plain def dependency costs a thread-pool hop per request
    store: CaseHistoryStore = request.app.state.timeline.history
    return store


HistoryDep = Annotated[CaseHistoryStore, Depends(get_history)]


class HistoryEventPublic(BaseModel):
    event_id: UUID
    type: str
    time: datetime
    service: str = Field(description="The service that produced the event (intake, referral, guardianship...).")
    actor_agency: str
    actor: str | None = Field(description="Who acted, from the event's own data (``by``, ``merged_by``...); "
                              "null when the event does not say beyond the agency.")
    reason: str | None = Field(description="The reason code the event carries, if any.")
    rule_id: str | None = Field(description="The routing rule that opened a referral, if any.")
    rule_version: str | None = Field(description="The routing rules version in force, if any.")
    correlation_id: UUID
    causation_id: UUID | None


class ReferralStatePublic(BaseModel):
    model_config = {"extra": "allow"}

    referral_id: UUID
    owner_agency: str | None
    requester_agency: str | None
    referral_type: str | None
    priority: str | None
    status: str | None
    reason_code: str | None
    outcome: str | None
    escalation_level: int
    rule_id: str | None
    rules_version: str | None
    opened_at: datetime | None
    updated_at: datetime | None


class CaseFilePublic(BaseModel):
    model_config = {"extra": "allow"}

    case_id: UUID
    opened_at: datetime
    updated_at: datetime
    event_count: int
    child_id: UUID | None
    merged_child_ids: list[UUID]
    township: str | None
    village: str | None
    child_categories: list[str]
    concern_category: str | None = Field(description="The latest report's concern.")
    urgency: str | None = Field(description="The latest report's urgency.")
    reports: list[dict[str, Any]]
    child_file: dict[str, Any] | None
    referrals: list[ReferralStatePublic]
    referrals_by_agency: dict[str, dict[str, int]] = Field(description="Referral counts by owner agency and status.")
    risk: dict[str, Any] | None = Field(description="The latest guardianship risk assessment (level, colour).")
    assessments: list[dict[str, Any]]
    court_orders: list[dict[str, Any]]
    interventions: list[dict[str, Any]]
    visits: list[dict[str, Any]]
    next_due: dict[str, Any] | None
    care_alerts: list[dict[str, Any]]
    requests: list[dict[str, Any]]
    other_events: int = Field(description="Events of types this reader does not fold (listed in ``events``).")


class CaseHistoryPublic(BaseModel):
    case_id: UUID
    as_of: datetime
    case: CaseFilePublic
    events: list[HistoryEventPublic]


def parse_as_of(text: str | None) -> datetime:
    """An RFC 3339 time (with its offset); now when absent. ``Unprocessable`` naming ``as_of`` otherwise."""
    if text is None:
        return datetime.now(UTC)
    reason = None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        reason = "not an RFC 3339 time (e.g. 2026-11-29T08:30:00+08:00)"
        if " " in text.strip():
            reason += "; a '+' in a URL must be sent as %2B"
    else:
        if value.tzinfo is None:
            reason = "an RFC 3339 time needs its offset from UTC (Z or +08:00)"
    if reason is not None:
        raise Unprocessable("The request is not valid.", errors=[FieldError(field="as_of", reason=reason)])
    return value.astimezone(UTC)


def history_public(history: CaseHistory) -> CaseHistoryPublic:
    return CaseHistoryPublic.model_validate({
        "case_id": history.case_id, "as_of": history.as_of, "case": case_file(history.case),
        "events": history.events,
    })


@router.get(
    "/cases/{case_id}/history",
    response_model=CaseHistoryPublic,
    responses={**problem_doc(404, "No event of the case at or before as_of"), **problem_doc(422, "Malformed as_of"),
               **FORBIDDEN_DOC},
    summary="A case file as it stood at a moment, and the events that made it so",
)
def get_case_history(
    case_id: UUID,
    history: HistoryDep,
    access: CaseReader,
    as_of: Annotated[
        str | None,
        Query(description="RFC 3339 time, e.g. 2026-11-29T08:30:00+08:00 (send '+' as %2B); default: now.",
              max_length=64, examples=["2026-11-29T08:30:00Z"]),
    ] = None,
) -> JSONResponse:
    """The case across services (reports, the child's file, referrals per agency and their status, risk colour,
    court orders, interventions, visits) folded from its events up to ``as_of`` inclusive, with each event's agency,
    actor, reason code, rules version and correlation id. The same ``as_of`` always gives the same answer."""
    moment = parse_as_of(as_of)
    found = history.history(str(case_id), moment)
    if found is None:
        raise NotFound(f"case {case_id} has no event at or before {moment.isoformat()}")
    return access.answer("case_history", history_public(found))  # redacted as the case is
