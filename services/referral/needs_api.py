"""Needs, matches and the organisation's side over HTTP (issue 10).

- Needs are recorded on a case by whoever may change the case (a child director after a visit, an agency).
- The lead agency ranks the eligible services, proposes a match and approves it; whoever works the case records
  the guardian's consent. Both gates open a referral to the organisation.
- An organisation reads its offers (de-identified until both gates hold), accepts and records the help given.
- Figures for the lead agency and auditors: needs by category and township, services under or over used.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contracts.agencies import LEAD_AGENCY, Agency
from contracts.vocabulary import ChildCategory, NeedCategory, Outcome, RejectionReason
from huhang.access.guards import FORBIDDEN_DOC, CaseReader, CaseWriter, Forbidden, Overseer, PrincipalDep, ReliefLead
from huhang.auth.principal import Principal, Role
from huhang.problems import PROBLEM_RESPONSES, NotFound, problem_doc
from services.referral.matching import Ranked
from services.referral.needs import MatchOutcome, Need, WithdrawalReason, age_band, age_on
from services.referral.needs_application import ReliefDesk
from services.referral.resources_api import DeskDep

Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Detail = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
RESPONSES = {**PROBLEM_RESPONSES, **FORBIDDEN_DOC, **problem_doc(404, "Not found"),
             **problem_doc(409, "Not allowed in the match's current status")}


class NeedCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "child_id": "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e", "category": "tuition_supplies", "township": "虹桥镇",
        "village": "溪西村", "birth_date": "2015-09-01", "child_categories": ["left_behind"], "found_by": "village",
        "finding_key": "visit-2026-11-29-01", "details": {"contact": "祖母，电话见随访记录", "school": "溪西小学"},
    }]})
    child_id: UUID
    category: NeedCategory
    township: Code
    village: Code
    birth_date: date = Field(description="For age on the day; sealed, never shown to an organisation.")
    child_categories: list[ChildCategory] = Field(default_factory=list)
    found_by: Agency
    finding_key: Code = Field(description="The finding's own id (a visit, an assessment): a retry records nothing.")
    details: dict[Code, Detail] = Field(
        default_factory=dict, max_length=10,
        description="What an organisation needs to deliver (whom to ask for, where): shown only after approval and "
        "consent.",
    )


class NeedPublic(BaseModel):
    need_id: UUID
    case_id: UUID
    category: NeedCategory
    township: str
    village: str
    age_band: str
    status: str
    match: dict[str, Any] | None


class RankedService(BaseModel):
    service_id: UUID
    organisation_id: UUID
    score: float
    distance_km: float
    remaining_capacity: int | None
    response_hours: float | None


class MatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"service_id": "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e"}]})
    service_id: UUID
    on: date | None = Field(default=None, description="The day eligibility is judged on (default: today).")


class MatchCreated(BaseModel):
    match_id: UUID
    need: NeedPublic


class Consent(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"consent_on": "2026-11-29", "given_by": "grandparent", "agency": "village"}]})
    consent_on: date
    given_by: Code = Field(description="The guardian's relationship to the child (a code: mother, grandparent...).")
    agency: Agency


class OutcomeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"outcome": "service_delivered", "delivered_on": "2026-12-05", "amount_yuan": "800.00"}]})
    outcome: Outcome
    delivered_on: date
    amount_yuan: Decimal | None = Field(default=None, ge=0, max_digits=12, decimal_places=2)
    service_given: Detail | None = None


class Withdrawal(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason_code": "consent_refused"}]})

    reason_code: WithdrawalReason


class Decline(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason_code": "out_of_area"}]})

    reason_code: RejectionReason


router = APIRouter(prefix="/v1", tags=["relief matching"])


def _today() -> date:
    return datetime.now(UTC).date()


def _need_of_case(desk: ReliefDesk, case_id: UUID, need_id: UUID) -> Need:
    need = desk.need(need_id)
    if need.case_id != case_id:
        raise NotFound(f"No need with id {need_id} on this case.")
    return need


def _public(need: Need) -> NeedPublic:
    return NeedPublic(
        need_id=need.id, case_id=need.case_id, category=need.category_code, township=need.township,
        village=need.village, age_band=age_band(age_on(need.birth_date, _today())), status=need.status,
        match=dict(need.match) if need.match else None,
    )


@router.post("/cases/{case_id}/needs", response_model=NeedPublic, status_code=201,
             responses={**RESPONSES, 200: {"model": NeedPublic, "description": "Already recorded: the need as it is"}},
             summary="Record a need found on a case")
def record_need(case_id: UUID, body: NeedCreate, desk: DeskDep, access: CaseWriter, response: Response) -> NeedPublic:
    if not access.principal.has(Role.system) and body.found_by is not access.principal.agency:
        raise Forbidden(f"{access.principal.agency.value} may not record a need as {body.found_by.value}.")
    need, created = desk.record_need(
        case_id=case_id, child_id=body.child_id, category=body.category, township=body.township,
        village=body.village, birth_date=body.birth_date, child_categories=body.child_categories,
        found_by=body.found_by, details=dict(body.details), key=body.finding_key,
    )
    response.status_code = 201 if created else 200
    return _public(need)


@router.get("/cases/{case_id}/needs", response_model=list[NeedPublic], responses=RESPONSES,
            summary="The needs of a case")
def case_needs(case_id: UUID, desk: DeskDep, _: CaseReader) -> list[NeedPublic]:
    return [_public(n) for n in desk.needs_of_case(case_id)]


@router.get("/cases/{case_id}/needs/{need_id}/matches", response_model=list[RankedService], responses=RESPONSES,
            summary="The services eligible for a need, best fit first")
def ranked_services(
    case_id: UUID, need_id: UUID, desk: DeskDep, _: CaseReader,
    on: Annotated[date | None, Query(description="The day eligibility is judged on (default: today).")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[RankedService]:
    return [_ranked(r) for r in desk.matches(_need_of_case(desk, case_id, need_id), on or _today(), limit=limit)]


def _ranked(r: Ranked) -> RankedService:
    return RankedService(service_id=r.row.service_id, organisation_id=r.row.organisation_id, score=r.score,
                         distance_km=r.distance_km, remaining_capacity=r.remaining, response_hours=r.response_hours)


@router.post("/cases/{case_id}/needs/{need_id}/matches", response_model=MatchCreated, responses=RESPONSES,
             status_code=201, summary="Match a need to an eligible service (the lead agency)")
def propose_match(case_id: UUID, need_id: UUID, body: MatchCreate, desk: DeskDep, _: ReliefLead,
                  __: CaseWriter) -> MatchCreated:
    need = _need_of_case(desk, case_id, need_id)
    match_id = desk.propose(need, body.service_id, body.on or _today(), LEAD_AGENCY)
    return MatchCreated(match_id=match_id, need=_public(need))


@router.post("/cases/{case_id}/needs/{need_id}/matches/{match_id}/approval", response_model=NeedPublic,
             responses=RESPONSES, summary="The lead agency approves a match (gate 1 of 2)")
def approve_match(case_id: UUID, need_id: UUID, match_id: UUID, desk: DeskDep, _: ReliefLead,
                  __: CaseWriter) -> NeedPublic:
    need = _need_of_case(desk, case_id, need_id)
    return _public(desk.approve(need, match_id, LEAD_AGENCY, datetime.now(UTC)))


@router.post("/cases/{case_id}/needs/{need_id}/matches/{match_id}/consent", response_model=NeedPublic,
             responses=RESPONSES, summary="Record the guardian's consent to a match (gate 2 of 2)")
def record_consent(case_id: UUID, need_id: UUID, match_id: UUID, body: Consent, desk: DeskDep,
                   access: CaseWriter) -> NeedPublic:
    if not access.principal.has(Role.system) and body.agency is not access.principal.agency:
        raise Forbidden(f"{access.principal.agency.value} may not act as {body.agency.value}.")
    need = _need_of_case(desk, case_id, need_id)
    return _public(desk.consent(need, match_id, body.agency, body.consent_on, body.given_by, datetime.now(UTC)))


@router.post("/cases/{case_id}/needs/{need_id}/matches/{match_id}/withdrawal", response_model=NeedPublic,
             responses=RESPONSES, summary="The lead agency withdraws a match (its referral, if any, is cancelled)")
def withdraw_match(case_id: UUID, need_id: UUID, match_id: UUID, body: Withdrawal, desk: DeskDep,
                   principal: ReliefLead, __: CaseWriter) -> NeedPublic:
    need = _need_of_case(desk, case_id, need_id)
    return _public(desk.withdraw(need, match_id, principal, body.reason_code.value, by_organisation=False))


# --- the organisation's side ------------------------------------------------------------------------------------


def organisation_reader(organisation_id: UUID, desk: DeskDep, principal: PrincipalDep) -> Principal:
    """The organisation's members, the lead agency (which approves its matches) and the platform."""
    if not (desk.may_edit(principal, organisation_id)):
        raise Forbidden("Only the organisation's members and the lead agency read its offers.")
    return principal


def organisation_member(organisation_id: UUID, desk: DeskDep, principal: PrincipalDep) -> Principal:
    """Acting on an offer: the organisation's own members (and the platform's workers) only."""
    if not (principal.has(Role.system) or desk.is_member(principal, organisation_id)):
        raise Forbidden("Only the organisation's own members act on its offers.")
    return principal


OrganisationReader = Annotated[Principal, Depends(organisation_reader)]
OrganisationMember = Annotated[Principal, Depends(organisation_member)]


def _offer_need(desk: ReliefDesk, organisation_id: UUID, match_id: UUID) -> Need:
    need = desk.need_of_match(match_id)
    if not need.match or need.match["organisation_id"] != organisation_id:
        raise NotFound(f"No offer {match_id} to this organisation.")
    return need


@router.get("/organisations/{organisation_id}/offers", responses=RESPONSES,
            summary="The organisation's matched needs (de-identified until approved and consented)")
def offers(organisation_id: UUID, desk: DeskDep, _: OrganisationReader) -> list[dict[str, Any]]:
    return desk.offers(organisation_id, _today())


@router.post("/organisations/{organisation_id}/offers/{match_id}/acceptance", responses=RESPONSES,
             summary="The organisation takes on a referred match")
def accept_offer(organisation_id: UUID, match_id: UUID, desk: DeskDep, principal: OrganisationMember
                 ) -> dict[str, Any]:
    need = desk.accept(_offer_need(desk, organisation_id, match_id), match_id, principal)
    return need.view_for_organisation(organisation_id, _today())


@router.post("/organisations/{organisation_id}/offers/{match_id}/decline", responses=RESPONSES,
             summary="The organisation declines a match (before accepting it); the need is matched again")
def decline_offer(organisation_id: UUID, match_id: UUID, body: Decline, desk: DeskDep,
                  principal: OrganisationMember) -> dict[str, Any]:
    need = _offer_need(desk, organisation_id, match_id)
    desk.withdraw(need, match_id, principal, body.reason_code.value, by_organisation=True)
    return {"match_id": match_id, "status": "withdrawn"}


@router.post("/organisations/{organisation_id}/offers/{match_id}/outcome", responses=RESPONSES,
             summary="The help given: amount or service, and date (closes the referral)")
def record_outcome(organisation_id: UUID, match_id: UUID, body: OutcomeCreate, desk: DeskDep,
                   principal: OrganisationMember) -> dict[str, Any]:
    need = _offer_need(desk, organisation_id, match_id)
    outcome = MatchOutcome(body.outcome, body.delivered_on, body.amount_yuan, body.service_given)
    return desk.record_outcome(need, match_id, outcome, principal).view_for_organisation(organisation_id, _today())


@router.get("/relief/figures", responses=RESPONSES, summary="Needs open, matched, met; services under or over used")
def figures(desk: DeskDep, _: Overseer) -> dict[str, Any]:
    return desk.figures()
