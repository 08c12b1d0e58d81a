"""Intake's inbound routes: agency systems post their facts about a child, each with an ``Idempotency-Key``.

A retry with the same key and body answers the stored answer (nothing recorded twice); see ``huhang.idempotency``
for the whole contract (422 for a reused key, 409 while the first request is in flight, 400 without a key).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from contracts.agencies import Agency
from contracts.events import EmergencyTreatmentCause, JobAssistanceKind
from huhang.access.guards import FORBIDDEN_DOC, Access, fact_reporter
from huhang.idempotency import IdempotencyKeyRequired, IdempotentRoute
from huhang.problems import PROBLEM_RESPONSES, problem_doc
from services.intake.inbound import REPORTING_AGENCY, FactKind, InboundFacts, Recorded

Code = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9A-Za-z-]{1,40}$")]
CASE_ID_DESCRIPTION = "A protection case of the child the fact belongs to; the child's standing care case if left out."


def _not_in_future(value: date) -> date:
    if value > datetime.now(UTC).date():
        raise ValueError("must not be in the future")
    return value


class FactBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case_id: UUID | None = Field(default=None, description=CASE_ID_DESCRIPTION)

    def details(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"case_id"})


class SchoolDropoutCreate(FactBody):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"school_code": "3303820001", "last_attended_on": "2026-11-20"}]})
    school_code: Code = Field(description="The school's code in the education registry (学校标识码).")
    last_attended_on: date

    _past = field_validator("last_attended_on")(_not_in_future)


class SchoolReturnCreate(FactBody):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"school_code": "3303820001", "returned_on": "2026-11-27"}]})
    school_code: Code = Field(description="The school the child returned to.")
    returned_on: date

    _past = field_validator("returned_on")(_not_in_future)


class JobAssistanceCreate(FactBody):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"parent_relation": "mother", "assistance_kind": "local_job_placement", "given_on": "2026-11-27"}]})
    parent_relation: Literal["father", "mother"]
    assistance_kind: JobAssistanceKind
    given_on: date

    _past = field_validator("given_on")(_not_in_future)


class EmergencyTreatmentCreate(FactBody):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"hospital_code": "330382H001", "treated_on": "2026-11-27", "cause": "injury", "admitted": False}]})
    hospital_code: Code = Field(description="The hospital's code (医疗机构代码).")
    treated_on: date
    cause: EmergencyTreatmentCause = Field(description="As a code; the diagnosis stays with the hospital.")
    admitted: bool = False

    _past = field_validator("treated_on")(_not_in_future)


class FactPublic(BaseModel):
    fact_id: UUID
    kind: FactKind
    child_id: UUID = Field(description="The child's file (the surviving one if the id given was merged).")
    case_id: UUID
    event_id: UUID = Field(description="The integration event published (routing opens referrals from it).")
    event_type: str


def get_inbound(request: Request) -> InboundFacts:
    return InboundFacts(request.app.state.intake)


InboundDep = Annotated[InboundFacts, Depends(get_inbound)]
SchoolSystem = Annotated[Access, Depends(fact_reporter(Agency.education))]
HrssSystem = Annotated[Access, Depends(fact_reporter(Agency.hrss))]
HospitalSystem = Annotated[Access, Depends(fact_reporter(Agency.health))]

router = APIRouter(prefix="/v1", tags=["inbound facts"], route_class=IdempotentRoute)
RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES, **FORBIDDEN_DOC, **problem_doc(404, "Unknown child"),
    **problem_doc(409, "A request with this Idempotency-Key is in flight"),
    **problem_doc(422, "Invalid body, or the Idempotency-Key was used for another request"),
}


def _answer(inbound: InboundFacts, kind: FactKind, child_id: UUID, body: FactBody, response: Response) -> FactPublic:
    recorded: Recorded = inbound.record(kind, child_id, body.case_id, REPORTING_AGENCY[kind], body.details())
    event = recorded.events[0]
    response.headers["Location"] = f"/v1/cases/{recorded.case_id}/timeline"
    return FactPublic(
        fact_id=recorded.fact_id, kind=kind, child_id=recorded.child_id, case_id=recorded.case_id,
        event_id=event.id, event_type=event.type,  # type: ignore[attr-defined]
    )


@router.post("/children/{child_id}/school-dropouts", status_code=status.HTTP_201_CREATED, response_model=FactPublic,
             responses=RESPONSES, summary="A school system reports a dropout (辍学)")
def report_school_dropout(child_id: UUID, body: SchoolDropoutCreate, inbound: InboundDep, response: Response,
                          _: SchoolSystem, __: IdempotencyKeyRequired) -> FactPublic:
    """Publishes `SchoolDropoutReported`: education, police and civil affairs get referrals (控辍保学)."""
    return _answer(inbound, FactKind.school_dropout, child_id, body, response)


@router.post("/children/{child_id}/school-returns", status_code=status.HTTP_201_CREATED, response_model=FactPublic,
             responses=RESPONSES, summary="A school system reports a return to school (复学)")
def report_school_return(child_id: UUID, body: SchoolReturnCreate, inbound: InboundDep, response: Response,
                         _: SchoolSystem, __: IdempotencyKeyRequired) -> FactPublic:
    """Publishes `SchoolReturnReported`."""
    return _answer(inbound, FactKind.school_return, child_id, body, response)


@router.post("/children/{child_id}/job-assistance", status_code=status.HTTP_201_CREATED, response_model=FactPublic,
             responses=RESPONSES, summary="HRSS reports job assistance given to a parent (就业帮扶)")
def report_job_assistance(child_id: UUID, body: JobAssistanceCreate, inbound: InboundDep, response: Response,
                          _: HrssSystem, __: IdempotencyKeyRequired) -> FactPublic:
    """Publishes `JobAssistanceGiven`."""
    return _answer(inbound, FactKind.job_assistance_given, child_id, body, response)


@router.post("/children/{child_id}/emergency-treatments", status_code=status.HTTP_201_CREATED,
             response_model=FactPublic, responses=RESPONSES,
             summary="A hospital reports an emergency treatment (急诊救治)")
def report_emergency_treatment(child_id: UUID, body: EmergencyTreatmentCreate, inbound: InboundDep,
                               response: Response, _: HospitalSystem, __: IdempotencyKeyRequired) -> FactPublic:
    """Publishes `EmergencyTreatmentReported`: suspected abuse reaches police and civil affairs, self-harm health
    and education."""
    return _answer(inbound, FactKind.emergency_treatment, child_id, body, response)
