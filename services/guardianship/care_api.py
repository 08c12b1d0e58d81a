"""Guardianship care's HTTP API: entrusted-care agreements, parent contacts, visits, a child's care, the checks."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel, Field

from contracts.cases import care_case_id
from contracts.vocabulary import RiskColour, RiskLevel
from huhang.access.guards import (
    FORBIDDEN_DOC,
    AccessLogDep,
    ChildReader,
    ChildWriter,
    Forbidden,
    PlatformJob,
    PrincipalDep,
    PurposeDep,
    acting_for,
    area_search,
)
from huhang.access.policy import is_area_bound
from huhang.headers import IdempotencyKey
from huhang.problems import PROBLEM_RESPONSES, FieldError, Unprocessable, problem_doc
from services.guardianship.care_application import (
    CareApplication,
    RecordAgreement,
    RecordParentContact,
    RecordVisit,
    VisitReport,
)
from services.guardianship.care_schemas import (
    AgreementCreate,
    AgreementPublic,
    AgreementSignature,
    CareCheckCreate,
    CareCheckPublic,
    CarePublic,
    FiledReportPublic,
    ParentContactCreate,
    ParentContactPublic,
    VisitCreate,
    VisitPublic,
)
from services.guardianship.children import china_date
from services.guardianship.risk import COLOURS


async def get_care(request: Request) -> CareApplication:
    # async: it only reads app.state, and a plain def dependency costs a thread-pool hop per request
    return request.app.state.care


CareDep = Annotated[CareApplication, Depends(get_care)]



CHILD_PROBLEMS = {
    **PROBLEM_RESPONSES, **problem_doc(403, "Not an agency that records care"),
    **problem_doc(404, "Unknown child"), **problem_doc(409, "The child's file was merged into another"),
}

router = APIRouter(prefix="/v1", tags=["guardianship care"])


def _fingerprint(body: BaseModel) -> str:
    return hashlib.sha256(body.model_dump_json().encode()).hexdigest()


def _replayed(response: Response, replayed: bool) -> None:
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"


@router.post(
    "/children/{child_id}/entrusted-care-agreements",
    status_code=status.HTTP_201_CREATED,
    response_model=AgreementPublic,
    responses=CHILD_PROBLEMS,
    summary="Record an entrusted-care agreement (委托照护协议)",
)
def record_agreement(
    child_id: UUID, body: AgreementCreate, care: CareDep, response: Response, access: ChildWriter,
    idempotency_key: IdempotencyKey = None,
) -> AgreementPublic:
    """Required while the child's parents are away: without a signed agreement in force, the scheduled check
    flags the child to the village (`EntrustedCareFlagged`: missing, unsigned or expired)."""
    acting_for(access.principal, body.recorded_by, "recorded_by")
    recorded = care.record_agreement(child_id, RecordAgreement(
        caregiver_name=body.caregiver_name, relation=body.relation.value, start_on=body.start_on,
        end_on=body.end_on, signed=body.signed, signed_on=body.signed_on, recorded_by=body.recorded_by.value,
        fingerprint=_fingerprint(body), idempotency_key=idempotency_key,
    ))
    response.headers["Location"] = f"/v1/children/{child_id}/care"
    _replayed(response, recorded.replayed)
    return _agreement(care, child_id, recorded.id)


@router.post(
    "/children/{child_id}/entrusted-care-agreements/{agreement_id}/signature",
    response_model=AgreementPublic,
    responses=CHILD_PROBLEMS,
    summary="Record that an entrusted-care agreement was signed",
)
def sign_agreement(
    child_id: UUID, agreement_id: UUID, body: AgreementSignature, care: CareDep, access: ChildWriter
) -> AgreementPublic:
    """Signing again on the same day changes nothing; another signing day answers 409."""
    acting_for(access.principal, body.agency, "agency")
    care.sign_agreement(child_id, agreement_id, body.signed_on, body.agency.value)
    return _agreement(care, child_id, agreement_id)


def _agreement(care: CareApplication, child_id: UUID, agreement_id: UUID) -> AgreementPublic:
    return AgreementPublic.model_validate(care.agreement(child_id, agreement_id))


@router.post(
    "/children/{child_id}/parent-contacts",
    status_code=status.HTTP_201_CREATED,
    response_model=ParentContactPublic,
    responses=CHILD_PROBLEMS,
    summary="Record a contact between a parent working away and the child",
)
def record_parent_contact(
    child_id: UUID, body: ParentContactCreate, care: CareDep, response: Response, access: ChildWriter,
    idempotency_key: IdempotencyKey = None,
) -> ParentContactPublic:
    """Parents away must contact the child at least weekly: more than 7 days without a recorded contact raises
    `ParentContactMissed` to the village, and a second missed week in a row goes to the township and civil
    affairs."""
    acting_for(access.principal, body.recorded_by, "recorded_by")
    recorded = care.record_parent_contact(child_id, RecordParentContact(
        contacted_on=body.contacted_on, channel=body.channel.value, parent=body.parent.value,
        recorded_by=body.recorded_by.value, fingerprint=_fingerprint(body), idempotency_key=idempotency_key,
    ))
    response.headers["Location"] = f"/v1/children/{child_id}/care"
    _replayed(response, recorded.replayed)
    return ParentContactPublic(
        contact_id=recorded.id, child_id=child_id, contacted_on=body.contacted_on, channel=body.channel,
        parent=body.parent,
    )


@router.post(
    "/children/{child_id}/visits",
    status_code=status.HTTP_201_CREATED,
    response_model=VisitPublic,
    responses={**CHILD_PROBLEMS, **problem_doc(503, "Intake could not file the report; nothing recorded")},
    summary="Record a contact or home visit by the child director, optionally filing a report",
)
def record_visit(
    child_id: UUID, body: VisitCreate, care: CareDep, response: Response, access: ChildWriter,
    idempotency_key: IdempotencyKey = None,
) -> VisitPublic:
    """Publishes `VisitRecorded` with the next due contact and home visit; a caregiver found unable or neglectful
    also raises `EntrustedCareFlagged`. With `report`, a mandatory report is filed with intake first (its case id
    is in the answer); if intake refuses it, nothing is recorded."""
    acting_for(access.principal, body.agency, "agency")
    report = body.report
    visit = care.record_visit(child_id, RecordVisit(
        kind=body.kind.value, visited_on=body.visited_on, agency=body.agency.value, director_id=body.director_id,
        findings=tuple(f.value for f in body.findings), notes=body.notes, fingerprint=_fingerprint(body),
        report=VisitReport(
            concern_category=report.concern_category.value, urgency=report.urgency.value,
            observations=report.observations, reporter_role=report.reporter_role.value,
            reporter_reference=report.reference,
        ) if report is not None else None,
        idempotency_key=idempotency_key,
    ))
    response.headers["Location"] = f"/v1/children/{child_id}/care"
    _replayed(response, visit.replayed)
    return VisitPublic(
        visit_id=visit.visit_id, child_id=child_id, case_id=care_case_id(child_id), kind=visit.kind,
        visited_on=visit.visited_on, findings=list(visit.findings),
        next_contact_due_on=visit.next_due.contact_due_on, next_home_visit_due_on=visit.next_due.home_visit_due_on,
        report=FiledReportPublic(report_id=visit.report_id, case_id=visit.report_case_id)
        if visit.report_id is not None and visit.report_case_id is not None else None,
    )


@router.get(
    "/children/{child_id}/care",
    response_model=CarePublic,
    responses={**problem_doc(404, "Unknown child"), **problem_doc(409, "Merged into another file"),
               422: PROBLEM_RESPONSES[422], **FORBIDDEN_DOC},
    summary="A child's care: entrusted care, parent contact, visits, what is due and overdue",
)
def get_care_of_child(
    child_id: UUID, care: CareDep, access: ChildReader,
    as_of: Annotated[date | None, Query(description="The day to judge on (default: today, China time).")] = None,
) -> Any:
    """The entrusted caregiver's name is shown only to agencies that see the family (contracts/disclosure.yaml);
    what is left out is listed in `redacted`."""
    found = CarePublic.model_validate(care.care_of(child_id, as_of or china_date(datetime.now(UTC))))
    return access.answer("care", found)


@router.post(
    "/care-checks",
    response_model=CareCheckPublic,
    responses=PROBLEM_RESPONSES,
    summary="Run the care checks now (overdue visits, missed parent contact, entrusted care)",
)
def run_care_checks(body: CareCheckCreate, care: CareDep, _: PlatformJob) -> CareCheckPublic:
    """What the scheduled `check-care-obligations` flow calls; idempotent: a second run raises nothing twice."""
    result = care.check(china_date(body.now or datetime.now(UTC)))
    return CareCheckPublic(
        checked_on=result.checked_on, children_checked=result.children_checked,
        visit_overdue=result.visit_overdue, parent_contact_missed=result.parent_contact_missed,
        entrusted_care_flagged=result.entrusted_care_flagged,
    )


# --- the child director's worklist (the web console's first page: one round trip) ---------------------------------


class WorklistItem(BaseModel):
    child_id: UUID
    case_id: UUID
    colour: RiskColour | None = Field(description="The guardianship risk colour (赋色); null before an assessment.")
    covered: bool
    frequent_visits: bool
    parents_away: bool
    next_contact_due_on: date
    next_home_visit_due_on: date
    contact_overdue_days: int
    home_visit_overdue_days: int
    parent_contact_missed: bool
    entrusted_care: str


class WorklistPublic(BaseModel):
    township: str
    village: str
    as_of: date
    items: list[WorklistItem] = Field(description="Most overdue first, then the earliest due.")


def _worklist_area(
    request: Request, principal: PrincipalDep, log: AccessLogDep, purpose: PurposeDep,
    township: Annotated[str | None, Query(min_length=1, max_length=50, description="Default: the caller's.")] = None,
    village: Annotated[str | None, Query(min_length=1, max_length=50, description="Default: the caller's.")] = None,
) -> tuple[str, str]:
    """A search over the children of one village (logged): those who see everything name it; a township its own
    villages; a village principal or child director only its own village."""
    township = area_search(request, principal, log, purpose, township)
    if is_area_bound(principal) and principal.village is not None:
        if village is not None and village != principal.village:
            raise Forbidden(f"{principal.agency.value} sees only its own village's children.",
                            errors=[FieldError(field="village", reason="not the caller's village")])
        village = principal.village
    missing = [name for name, value in (("township", township), ("village", village)) if value is None]
    if township is None or village is None:
        raise Unprocessable("Name the village.", errors=[FieldError(field=f, reason="required") for f in missing])
    return township, village


@router.get(
    "/care/worklist",
    response_model=WorklistPublic,
    responses={422: PROBLEM_RESPONSES[422], **FORBIDDEN_DOC},
    summary="A village's children with their colour and next due contact and home visit, overdue first",
)
def worklist(
    care: CareDep, area: Annotated[tuple[str, str], Depends(_worklist_area)],
    as_of: Annotated[date | None, Query(description="The day to judge on (default: today, China time).")] = None,
) -> WorklistPublic:
    """The child director's list (儿童主任的工作清单): every child of the village guardianship knows (`covered`:
    left behind or in difficulty by the derived categories). Ids and codes only: the
    child's name is in the child's file (`GET /v1/children/{id}`)."""
    township, village = area
    today = as_of or china_date(datetime.now(UTC))
    items = []
    for child in care.known_children.in_village(township, village):
        found = care.care_of(child.child_id, today)
        level = care.risk_level(child.child_id)
        contact = found["parent_contact"]
        items.append(WorklistItem(
            child_id=child.child_id, case_id=found["case_id"], colour=COLOURS[RiskLevel(level)] if level else None,
            covered=found["covered"], frequent_visits=found["frequent_visits"], parents_away=found["parents_away"],
            next_contact_due_on=found["next_contact_due_on"], next_home_visit_due_on=found["next_home_visit_due_on"],
            contact_overdue_days=found["contact_overdue_days"],
            home_visit_overdue_days=found["home_visit_overdue_days"],
            parent_contact_missed=bool(contact and contact["missed"]), entrusted_care=found["entrusted_care"],
        ))
    items.sort(key=lambda i: (
        -max(i.contact_overdue_days, i.home_visit_overdue_days),
        min(i.next_contact_due_on, i.next_home_visit_due_on), str(i.child_id),
    ))
    return WorklistPublic(township=township, village=village, as_of=today, items=items)
