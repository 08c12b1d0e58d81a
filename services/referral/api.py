"""Referral's HTTP API: agency inboxes, one referral with its history, status changes, opening referrals."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from contracts.agencies import Agency
from contracts.commands import OpenReferrals
from contracts.vocabulary import ReferralStatus
from huhang.problems import PROBLEM_RESPONSES, FieldError, Problem, Unprocessable
from services.referral.application import ReferralApplication
from services.referral.domain import Referral
from services.referral.inbox import Inbox
from services.referral.schemas import (
    CaseReferralsPublic,
    HistoryEntry,
    OpenedReferral,
    OpenedReferrals,
    ReferralPublic,
    ReferralsPublic,
    ReferralSummary,
    StatusChange,
    decode_cursor,
    encode_cursor,
)


def get_referrals(request: Request) -> ReferralApplication:
    return request.app.state.referral


def get_inbox(request: Request) -> Inbox:
    return request.app.state.inbox


ReferralsDep = Annotated[ReferralApplication, Depends(get_referrals)]
InboxDep = Annotated[Inbox, Depends(get_inbox)]


def _problem(status: int, description: str) -> dict[int | str, dict[str, object]]:
    return {status: {"model": Problem, "description": description, "content": {"application/problem+json": {}}}}


router = APIRouter(prefix="/v1", tags=["referrals"])


@router.get(
    "/agencies/{agency}/referrals",
    response_model=ReferralsPublic,
    responses=PROBLEM_RESPONSES,
    summary="An agency's inbox of referrals",
)
def agency_inbox(
    agency: Agency,
    inbox: InboxDep,
    status: ReferralStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> ReferralsPublic:
    """Newest first, with counts by status. Pass `next_cursor` back as `cursor` for the next page."""
    try:
        after = decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        raise Unprocessable("Invalid cursor.", errors=[FieldError(field="cursor", reason=str(exc))]) from None
    rows = inbox.for_agency(agency.value, status=status.value if status else None, limit=limit, cursor=after)
    return ReferralsPublic(
        agency=agency,
        items=[ReferralSummary.model_validate(r) for r in rows],
        counts_by_status=inbox.counts_by_status(agency.value),
        next_cursor=encode_cursor(rows[-1]) if len(rows) == limit else None,
    )


@router.get("/cases/{case_id}/referrals", response_model=CaseReferralsPublic, summary="All referrals of a case")
def case_referrals(case_id: UUID, inbox: InboxDep) -> CaseReferralsPublic:
    return CaseReferralsPublic(
        case_id=case_id, items=[ReferralSummary.model_validate(r) for r in inbox.for_case(case_id)]
    )


def _public(app: ReferralApplication, referral: Referral) -> ReferralPublic:
    return ReferralPublic(
        referral_id=referral.id, case_id=referral.case_id, child_id=referral.child_id,
        owner_agency=referral.owner_agency, requester_agency=referral.requester_agency,
        referral_type=referral.referral_type, priority=referral.priority, status=referral.status,
        due_at=referral.due_at, plan_tasks=referral.plan_tasks, rule_ids=referral.rule_ids,
        rules_version=referral.rules_version, version=referral.version,
        history=[HistoryEntry.model_validate(h) for h in app.history(referral.id)],
    )


@router.get(
    "/referrals/{referral_id}", response_model=ReferralPublic, responses=_problem(404, "Not found"),
    summary="One referral with its full history",
)
def get_referral(referral_id: UUID, app: ReferralsDep, response: Response) -> ReferralPublic:
    referral = app.get(referral_id)
    response.headers["ETag"] = f'"{referral.version}"'
    return _public(app, referral)


@router.post(
    "/referrals/{referral_id}/status",
    response_model=ReferralPublic,
    responses={**PROBLEM_RESPONSES, **_problem(403, "Not the owner (or requester)"),
               **_problem(404, "Not found"), **_problem(409, "Illegal transition"),
               **_problem(412, "Stale version (If-Match)")},
    summary="Move a referral through its lifecycle",
)
def change_status(
    referral_id: UUID,
    body: StatusChange,
    app: ReferralsDep,
    response: Response,
    if_match: Annotated[str | None, Header(alias="If-Match", description="The ETag last read.")] = None,
) -> ReferralPublic:
    """`requested` → `received` → `accepted`/`rejected` → `in-progress` ⇄ `on-hold` → `completed`/`failed`;
    `cancelled` by the requester. Only the owner agency acts, except cancelling."""
    expected = _parse_etag(if_match) if if_match and if_match.strip() != "*" else None
    referral = app.change_status(referral_id, body.status, body.agency.value, body.reason, expected)
    response.headers["ETag"] = f'"{referral.version}"'
    return _public(app, referral)


def _parse_etag(value: str) -> int:
    try:
        return int(value.strip().removeprefix("W/").strip('"'))
    except ValueError:
        raise Unprocessable(
            "If-Match must be an ETag this API returned.", errors=[FieldError(field="If-Match", reason="not an ETag")]
        ) from None


@router.post(
    "/referrals",
    response_model=OpenedReferrals,
    responses=PROBLEM_RESPONSES,
    summary="Open referrals (used by the routing workflow)",
)
def open_referrals(body: OpenReferrals, app: ReferralsDep) -> OpenedReferrals:
    """Idempotent: a referral id already opened is reported with `created: false` and nothing changes."""
    opened = app.open_referrals(body.referrals)
    return OpenedReferrals(referrals=[OpenedReferral(referral_id=o.referral_id, created=o.created) for o in opened])
