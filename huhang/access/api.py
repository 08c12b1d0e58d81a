"""Break-the-glass and the access log over HTTP.

- ``POST /v1/cases/{case_id}/break-glass``: a person without access to a case opens it in an emergency, stating
  why; access lasts ``HUHANG_BREAK_GLASS_DURATION_S`` (4 h) and is flagged to the lead agency for review;
- ``POST /v1/cases/{case_id}/break-glass/{grant_id}/review``: a civil-affairs supervisor finds it justified or not
  (not justified ends the access at once);
- ``GET /v1/break-glass?unreviewed=true``: the register, for the lead agency and auditors;
- ``GET /v1/access-log``: who read which case or child, when, why, with what outcome (this service's log; see
  ``huhang.access.access_log`` for the distributed form).

The break-glass routes live with the case's owner (intake: ``break_glass_router``). Every service serves its own
access log: ``install_access_log`` adds the route once per app, so the embedded app (every service in one) has it
once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contracts.agencies import Agency
from contracts.vocabulary import AccessPurpose
from huhang.access.access_log import AccessLog
from huhang.access.break_glass import BreakGlass
from huhang.access.case_access import CaseAccess
from huhang.access.guards import (
    FORBIDDEN_DOC,
    AccessLogDep,
    CaseAccessDep,
    Forbidden,
    Overseer,
    PrincipalDep,
)
from huhang.access.policy import may_break_glass, may_read, may_review_break_glass
from huhang.auth.dependency import authenticate
from huhang.problems import PROBLEM_RESPONSES, Conflict, problem_doc

MIN_REASON_LENGTH = 20


class BreakGlassCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{
            "reason": "儿童主任报告孩子今晚独自在家且受伤，需要立即查看监护人联系方式。",
            "purpose": "emergency_protection",
        }]},
    )

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=MIN_REASON_LENGTH, max_length=1000)] = (
        Field(description=f"Why the case must be opened now (at least {MIN_REASON_LENGTH} characters). Kept in the "
              "case owner's store for the review; never sent in events or logs.")
    )
    purpose: AccessPurpose = Field(description="The purpose of the access, as a code.")


class BreakGlassReview(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"justified": True, "note": "紧急情况属实。"}]},
    )

    justified: bool = Field(description="False ends the access at once.")
    note: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)] | None = None


class BreakGlassPublic(BaseModel):
    grant_id: UUID
    case_id: UUID
    child_id: UUID | None
    agency: Agency | None
    subject: str | None = Field(description="The officer's pseudonymous account id.")
    purpose: AccessPurpose | None
    opened_at: datetime | None
    expires_at: datetime | None
    reviewed_at: datetime | None = None
    justified: bool | None = None
    reviewer_agency: Agency | None = None


class BreakGlassList(BaseModel):
    items: list[BreakGlassPublic]


class AccessLogEntry(BaseModel):
    entry_id: int
    at: datetime
    subject: str
    agency: str
    action: str = Field(description="read, write or search.")
    route: str = Field(description="The method and route template, e.g. `GET /v1/cases/{case_id}`.")
    case_id: UUID | None
    child_id: UUID | None
    purpose: str | None
    outcome: str = Field(description="allowed, denied or break-glass.")


class AccessLogPublic(BaseModel):
    items: list[AccessLogEntry]
    next_cursor: int | None = Field(description="Pass as `after` for the next page.")


def get_break_glass(request: Request) -> BreakGlass:
    return request.app.state.break_glass


BreakGlassDep = Annotated[BreakGlass, Depends(get_break_glass)]

break_glass_router = APIRouter(prefix="/v1", tags=["access (need-to-know)"])


@break_glass_router.post(
    "/cases/{case_id}/break-glass",
    status_code=status.HTTP_201_CREATED,
    response_model=BreakGlassPublic,
    responses={**PROBLEM_RESPONSES, **FORBIDDEN_DOC, **problem_doc(404, "Unknown case"),
               **problem_doc(409, "The caller already has access")},
    summary="Break the glass: open a case in an emergency",
)
def open_break_glass(
    case_id: UUID, body: BreakGlassCreate, principal: PrincipalDep, glass: BreakGlassDep, access: CaseAccessDep,
    response: Response,
) -> BreakGlassPublic:
    """For a person who works cases and has no access to this one. The access is time-bounded, recorded as an
    event, flagged to the lead agency (a review referral) and listed for review."""
    if not may_break_glass(principal):
        raise Forbidden("Only officers, supervisors and child directors (people, not systems) may break the glass.")
    facts = access.facts_for_case(case_id)
    if facts is not None and may_read(principal, facts, datetime.now(UTC)).allowed:
        raise Conflict("The caller already has access to this case: nothing to break.")
    opened = glass.open(principal, case_id, body.reason, body.purpose)
    access.handle(opened.events)  # this service honours the grant at once; the others as the event reaches them
    response.headers["Location"] = f"/v1/cases/{case_id}"
    return _public(access, opened.grant.id)


@break_glass_router.post(
    "/cases/{case_id}/break-glass/{grant_id}/review",
    response_model=BreakGlassPublic,
    responses={**PROBLEM_RESPONSES, **FORBIDDEN_DOC, **problem_doc(404, "Unknown grant"),
               **problem_doc(409, "Already reviewed")},
    summary="Review a break-the-glass access (civil-affairs supervisors)",
)
def review_break_glass(
    case_id: UUID, grant_id: UUID, body: BreakGlassReview, principal: PrincipalDep, glass: BreakGlassDep,
    access: CaseAccessDep,
) -> BreakGlassPublic:
    if not may_review_break_glass(principal):
        raise Forbidden("Only a supervisor of the lead agency (civil_affairs) reviews break-the-glass access.")
    reviewed = glass.review(principal, case_id, grant_id, body.justified, body.note)
    access.handle(reviewed.events)
    return _public(access, grant_id)


@break_glass_router.get(
    "/break-glass", response_model=BreakGlassList, responses={**PROBLEM_RESPONSES, **FORBIDDEN_DOC},
    summary="The break-the-glass register (lead agency, auditors)",
)
def list_break_glass(
    _: Overseer, access: CaseAccessDep,
    unreviewed: Annotated[bool, Query(description="Only grants not reviewed yet.")] = False,
    since: Annotated[datetime | None, Query(description="Only grants opened at or after this time.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> BreakGlassList:
    """Newest first."""
    rows = access.grants(unreviewed=unreviewed, since=since, limit=limit)
    return BreakGlassList(items=[BreakGlassPublic.model_validate(r) for r in rows])


def _public(access: CaseAccess, grant_id: UUID) -> BreakGlassPublic:
    return BreakGlassPublic.model_validate(access.grant(grant_id))


access_log_router = APIRouter(prefix="/v1", tags=["access (need-to-know)"])


@access_log_router.get(
    "/access-log", response_model=AccessLogPublic, responses={**PROBLEM_RESPONSES, **FORBIDDEN_DOC},
    summary="Who read which case or child, when, why (lead agency, auditors)",
)
def read_access_log(
    _: Overseer,
    log: AccessLogDep,
    case_id: UUID | None = None,
    child_id: UUID | None = None,
    subject: Annotated[str | None, Query(max_length=200, description="A principal's subject.")] = None,
    since: datetime | None = None,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="The `next_cursor` of the previous page.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AccessLogPublic:
    """Oldest first. This service's own log: in the distributed form each service serves the reads of its own
    routes, and an auditor merges them by time. Reading the log is itself logged."""
    rows = log.entries(case_id=case_id, child_id=child_id, subject=subject, since=since, after=after, limit=limit)
    return AccessLogPublic(
        items=[AccessLogEntry.model_validate(r) for r in rows],
        next_cursor=rows[-1]["entry_id"] if len(rows) == limit else None,
    )


def install_access(api: FastAPI, case_access: CaseAccess | None, access_log: AccessLog) -> None:
    """Bind what the guards read, and add ``GET /v1/access-log`` once (each service calls it from ``bind``).

    In the embedded app every service binds the same app: the first access log bound is the one all routes use,
    and the route is added once.
    """
    if case_access is not None:
        api.state.case_access = case_access
    if getattr(api.state, "access_log", None) is None:
        api.state.access_log = access_log
    if not getattr(api.state, "access_log_route", False):
        api.include_router(access_log_router, dependencies=[Depends(authenticate)])
        api.state.access_log_route = True
