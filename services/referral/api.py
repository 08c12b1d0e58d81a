"""Referral's HTTP API: agency inboxes, one referral with its history, its lifecycle, transfers, assignment,
escalation and the overdue sweep."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from contracts.agencies import Agency
from contracts.commands import OpenReferrals
from contracts.lifecycle import TRANSITIONS
from contracts.vocabulary import AccessPurpose, Priority, ReferralStatus
from huhang.access.guards import (
    FORBIDDEN_DOC,
    AgencyQueue,
    CaseReader,
    PlatformJob,
    PrincipalDep,
    PurposeDep,
    acting_for,
    referral_case_check,
)
from huhang.auth.principal import Principal
from huhang.problems import PROBLEM_RESPONSES, FieldError, Unprocessable, problem_doc
from huhang.responses import json_response, model_body, model_response
from services.referral.application import Escalation, ReadReferral, ReferralApplication
from services.referral.domain import Referral
from services.referral.inbox import Inbox, InboxFilter
from services.referral.schemas import (
    CaseReferralsPublic,
    EscalationCreate,
    EscalationPublic,
    OpenedReferral,
    OpenedReferrals,
    Reassignment,
    ReferralPublic,
    ReferralsPublic,
    StatusChange,
    SweepPublic,
    SweepRequest,
    TransferAnswer,
    TransferCreate,
    decode_cursor,
    encode_cursor,
)
from services.referral.sweep import sweep_overdue


async def get_referrals(request: Request) -> ReferralApplication:
    # async: it only reads app.state, and a plain def dependency costs a thread-pool hop per request
    return request.app.state.referral


async def get_inbox(request: Request) -> Inbox:
    return request.app.state.inbox


ReferralsDep = Annotated[ReferralApplication, Depends(get_referrals)]
InboxDep = Annotated[Inbox, Depends(get_inbox)]
IfMatch = Annotated[
    str | None, Header(alias="If-Match", max_length=100, description="The ETag last read; a stale one answers 412.")
]


def referral_reader(
    referral_id: UUID, request: Request, app: ReferralsDep, principal: PrincipalDep, purpose: PurposeDep,
) -> ReadReferral:
    """The referral (with its events: its history is answered from them), for a caller who may see its case
    (need-to-know follows the case)."""
    read = app.read(referral_id)
    _check(read.referral, request, principal, purpose, write=False)
    return read


@dataclass(frozen=True)
class Acting:
    """Who acts on a referral, and the referral as read for the access check (the action goes on from it)."""

    principal: Principal
    read: ReadReferral


def referral_writer(
    referral_id: UUID, request: Request, app: ReferralsDep, principal: PrincipalDep, purpose: PurposeDep,
) -> Acting:
    """The caller, when it may change the referral's case (the owner rules are the application's)."""
    read = app.read(referral_id)
    _check(read.referral, request, principal, purpose, write=True)
    return Acting(principal, read)


def _check(referral: Referral, request: Request, principal: Principal, purpose: AccessPurpose | None, *,
           write: bool) -> None:
    state = request.app.state
    referral_case_check(referral.case_id, _holders(referral), request, principal, state.case_access,
                        state.access_log, purpose, write=write)


def _holders(referral: Referral) -> list[tuple[str, str]]:
    """The agencies this referral itself gives access to its case: its owner while the referral grants it, and an
    agency asked to take it over (it must read the case to answer)."""
    holders = [(referral.owner_agency, referral.status)]
    if referral.pending_owner:
        holders.append((referral.pending_owner, ReferralStatus.requested.value))
    return holders


ReadableReferral = Annotated[ReadReferral, Depends(referral_reader)]
ReferralActor = Annotated[Acting, Depends(referral_writer)]



COMMAND_RESPONSES = {
    **PROBLEM_RESPONSES, **problem_doc(403, "The acting agency may not do this, or the caller is not that agency"),
    **problem_doc(404, "Not found"),
    **problem_doc(409, "Not allowed in the referral's current status"), **problem_doc(412, "Stale version (If-Match)"),
}
STATES_DOC = "\n".join(
    f"- `{s.value}` → {', '.join(f'`{n.value}`' for n in sorted(nxt)) or 'final'}" for s, nxt in TRANSITIONS.items()
)

router = APIRouter(prefix="/v1", tags=["referrals"])


@router.get(
    "/agencies/{agency}/referrals",
    response_model=ReferralsPublic,
    responses={**PROBLEM_RESPONSES, **FORBIDDEN_DOC},
    summary="An agency's inbox of referrals",
)
async def agency_inbox(
    agency: Agency,
    inbox: InboxDep,
    _: AgencyQueue,
    status: Annotated[list[ReferralStatus] | None, Query(max_length=20, description="One or more statuses.")] = None,
    priority: Annotated[list[Priority] | None, Query(max_length=10)] = None,
    overdue: Annotated[bool, Query(description="Only referrals past their acceptance or completion due time.")] = False,
    township: Annotated[str | None, Query(max_length=50)] = None,
    requested_from: datetime | None = None,
    requested_to: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Newest first, with counts by status. Pass `next_cursor` back as `cursor` for the next page."""
    try:
        after = decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        raise Unprocessable("Invalid cursor.", errors=[FieldError(field="cursor", reason=str(exc))]) from None
    filters = InboxFilter(
        status=[s.value for s in status or []], priority=[p.value for p in priority or []], township=township,
        overdue_at=datetime.now(UTC) if overdue else None, requested_from=requested_from, requested_to=requested_to,
    )

    def page() -> bytes:
        rows, counts = inbox.page_and_counts(agency.value, limit=limit, cursor=after, filters=filters)
        return model_body(ReferralsPublic, {
            "agency": agency, "items": rows, "counts_by_status": counts,
            "next_cursor": encode_cursor(rows[-1]) if len(rows) == limit else None,
        })

    # async: a first page kept (huhang.recent) is answered on the event loop, without a thread-pool hop; one built
    # afresh queries the database on a worker thread.
    if after is not None or overdue:  # a later page, or one that depends on the time: answered afresh
        return json_response(await run_in_threadpool(page))
    # A first page: the same for every desk of the agency (who may read it was decided and logged before).
    key = (agency.value, limit, tuple(filters.status), tuple(filters.priority), township, requested_from, requested_to)
    kept = inbox.pages.peek(key)
    if kept is None:
        kept = await run_in_threadpool(inbox.pages.get, key, page)
    return json_response(kept)


@router.get(
    "/cases/{case_id}/referrals", response_model=CaseReferralsPublic, responses=FORBIDDEN_DOC,
    summary="All referrals of a case",
)
def case_referrals(case_id: UUID, inbox: InboxDep, _: CaseReader) -> Response:
    """Every referral of the case, across departments, oldest first."""
    return model_response(CaseReferralsPublic, {"case_id": case_id, "items": inbox.for_case(case_id)})


def _public(read: ReadReferral) -> Response:
    """The referral with its history as ``ReferralPublic``, validated and serialised once, with its ``ETag``."""
    referral = read.referral
    return model_response(ReferralPublic, {
        "referral_id": referral.id, "case_id": referral.case_id, "child_id": referral.child_id,
        "owner_agency": referral.owner_agency, "requester_agency": referral.requester_agency,
        "referral_type": referral.referral_type, "priority": referral.priority, "status": referral.status,
        "due_at": referral.due_at, "complete_by": referral.complete_by, "assignee": referral.assignee,
        "pending_owner": referral.pending_owner, "escalation_level": referral.escalation_level,
        "fallback_agencies": referral.fallback_agencies, "plan_tasks": referral.plan_tasks,
        "rule_ids": referral.rule_ids, "rules_version": referral.rules_version, "version": referral.version,
        "history": read.history(),
    }, headers={"ETag": f'"{referral.version}"'})


@router.get(
    "/referrals/{referral_id}", response_model=ReferralPublic,
    responses={**problem_doc(404, "Not found"), **FORBIDDEN_DOC}, summary="One referral with its full history",
)
async def get_referral(read: ReadableReferral) -> Response:
    # async: the referral was read (and the access decided) by the dependency; answering it does no I/O, and a
    # plain def would cost a second thread-pool hop per request
    return _public(read)


def _expected(if_match: str | None) -> int | None:
    if not if_match or if_match.strip() == "*":
        return None
    try:
        return int(if_match.strip().removeprefix("W/").strip('"'))
    except ValueError:
        raise Unprocessable(
            "If-Match must be an ETag this API returned.", errors=[FieldError(field="If-Match", reason="not an ETag")]
        ) from None


@router.post(
    "/referrals/{referral_id}/status", response_model=ReferralPublic, responses=COMMAND_RESPONSES,
    summary="Move a referral through its lifecycle",
    description="Only the owner agency acts, except cancelling (the requester). A rejected or failed referral goes "
    "back to the router, which sends it to the next responsible agency.\n\nStates:\n" + STATES_DOC,
)
def change_status(
    referral_id: UUID, body: StatusChange, app: ReferralsDep, actor: ReferralActor,
    if_match: IfMatch = None,
) -> Response:
    acting_for(actor.principal, body.agency, "agency")
    app.change_status(
        referral_id, body.status, body.agency.value, body.note, _expected(if_match),
        reason_code=body.reason_code, outcome=body.outcome, loaded=actor.read,
    )
    return _public(actor.read)


@router.post(
    "/referrals/{referral_id}/transfer", response_model=ReferralPublic, responses=COMMAND_RESPONSES,
    summary="Propose a transfer of ownership to another agency",
)
def propose_transfer(
    referral_id: UUID, body: TransferCreate, app: ReferralsDep, actor: ReferralActor,
    if_match: IfMatch = None,
) -> Response:
    """By the owner or a supervising agency; the new owner must accept (`/transfer/answer`)."""
    acting_for(actor.principal, body.agency, "agency")
    app.propose_transfer(
        referral_id, body.to_agency.value, body.agency.value, body.note, _expected(if_match), loaded=actor.read
    )
    return _public(actor.read)


@router.post(
    "/referrals/{referral_id}/transfer/answer", response_model=ReferralPublic, responses=COMMAND_RESPONSES,
    summary="Accept or decline a proposed transfer",
)
def answer_transfer(
    referral_id: UUID, body: TransferAnswer, app: ReferralsDep, principal: PrincipalDep,
    if_match: IfMatch = None,
) -> Response:
    """By the agency the transfer is proposed to (which has no access to the case before it accepts)."""
    acting_for(principal, body.agency, "agency")
    read = app.read(referral_id)
    app.answer_transfer(referral_id, body.agency.value, body.accept, body.note, _expected(if_match), loaded=read)
    return _public(read)


@router.post(
    "/referrals/{referral_id}/assignee", response_model=ReferralPublic, responses=COMMAND_RESPONSES,
    summary="Assign the referral to a named officer of the owner agency",
)
def reassign(
    referral_id: UUID, body: Reassignment, app: ReferralsDep, actor: ReferralActor,
    if_match: IfMatch = None,
) -> Response:
    acting_for(actor.principal, body.agency, "agency")
    app.reassign(referral_id, body.officer_id, body.agency.value, _expected(if_match), loaded=actor.read)
    return _public(actor.read)


def _escalation(e: Escalation) -> EscalationPublic:
    return EscalationPublic(
        referral_id=e.referral_id, level=e.level, kind=e.kind, supervision_referral_id=e.supervision_referral_id
    )


@router.post(
    "/referrals/{referral_id}/escalations", response_model=EscalationPublic, status_code=201,
    responses=COMMAND_RESPONSES, summary="Escalate a referral (supervising agencies)",
)
def escalate(referral_id: UUID, body: EscalationCreate, app: ReferralsDep, actor: ReferralActor) -> EscalationPublic:
    acting_for(actor.principal, body.agency, "agency")
    return _escalation(app.escalate_by_supervisor(referral_id, body.agency.value, datetime.now(UTC)))


@router.post(
    "/referral-sweeps", response_model=SweepPublic, responses=PROBLEM_RESPONSES,
    summary="Escalate every overdue referral (run by the scheduled sweep flow)",
)
def sweep(body: SweepRequest, app: ReferralsDep, inbox: InboxDep, _: PlatformJob) -> SweepPublic:
    """Idempotent: a referral is escalated to a level once; running the sweep again escalates nothing twice."""
    result = sweep_overdue(app, inbox, body.now or datetime.now(UTC), body.limit)
    return SweepPublic(
        swept_at=result.swept_at, candidates=result.candidates, escalations=[_escalation(e) for e in result.escalations]
    )


@router.post(
    "/referrals", response_model=OpenedReferrals, responses=PROBLEM_RESPONSES,
    summary="Open referrals (used by the routing workflow)",
)
def open_referrals(body: OpenReferrals, app: ReferralsDep, _: PlatformJob) -> OpenedReferrals:
    """Idempotent: a referral id already opened is reported with `created: false` and nothing changes."""
    opened = app.open_referrals(body.referrals)
    return OpenedReferrals(referrals=[OpenedReferral(referral_id=o.referral_id, created=o.created) for o in opened])
