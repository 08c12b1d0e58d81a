"""Guardianship's HTTP API: assess a family's guardianship capacity, record court orders, read a child's file."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response, status

from huhang.access.guards import FORBIDDEN_DOC, CaseWriter, ChildReader, acting_for
from huhang.idempotency import IdempotencyKeyOptional, IdempotentRoute
from huhang.problems import PROBLEM_RESPONSES, problem_doc
from services.guardianship.application import GuardianshipApplication
from services.guardianship.schemas import (
    AssessmentCreate,
    AssessmentEntry,
    AssessmentPublic,
    CourtOrderCreate,
    CourtOrderEntry,
    CourtOrderPublic,
    GuardianshipPublic,
)


async def get_guardianship(request: Request) -> GuardianshipApplication:
    # async: it only reads app.state, and a plain def dependency costs a thread-pool hop per request
    return request.app.state.guardianship


GuardianshipDep = Annotated[GuardianshipApplication, Depends(get_guardianship)]



router = APIRouter(prefix="/v1", tags=["guardianship"], route_class=IdempotentRoute)  # court orders take a key


@router.post(
    "/cases/{case_id}/guardianship-assessments",
    status_code=status.HTTP_201_CREATED,
    response_model=AssessmentPublic,
    responses={**PROBLEM_RESPONSES, **problem_doc(404, "Unknown case"), **FORBIDDEN_DOC},
    summary="Assess the family's guardianship capacity (家庭监护能力评估)",
)
def assess_guardianship(
    case_id: UUID, body: AssessmentCreate, app: GuardianshipDep, response: Response, access: CaseWriter
) -> AssessmentPublic:
    """Scores the factors into a risk level and colour (赋色管理) and publishes `GuardianshipRiskAssessed`;
    a medium or high risk calls for more frequent home visits."""
    acting_for(access.principal, body.assessor_agency, "assessor_agency")
    assessed = app.assess(body.child_id, case_id, body.factors, body.assessor_agency)
    response.headers["Location"] = f"/v1/children/{assessed.child_id}/guardianship"
    return AssessmentPublic(
        assessment_id=assessed.assessment_id, case_id=assessed.case_id, child_id=assessed.child_id,
        risk_level=assessed.risk_level, colour=assessed.colour, previous_risk_level=assessed.previous_risk_level,
        reasons=list(assessed.reasons),
    )


@router.post(
    "/cases/{case_id}/court-orders",
    status_code=status.HTTP_201_CREATED,
    response_model=CourtOrderPublic,
    responses={**PROBLEM_RESPONSES, **problem_doc(403, "Not the court"), **problem_doc(404, "Unknown case"),
               **problem_doc(409, "Order already recorded")},
    summary="Record a court order (保护令, 撤销监护人资格, 家庭教育指导令)",
)
def record_court_order(
    case_id: UUID, body: CourtOrderCreate, app: GuardianshipDep, response: Response, access: CaseWriter,
    _: IdempotencyKeyOptional,
) -> CourtOrderPublic:
    """Only the court records its orders; publishes `CourtProtectionOrderIssued`. The court's docket system sends
    an `Idempotency-Key` to retry safely (the same answer again; see the inbound facts)."""
    acting_for(access.principal, body.agency, "agency")
    order_id = app.record_court_order(
        body.child_id, case_id, body.order_kind, body.court_case_number, body.issued_on, body.expires_on,
        body.agency,
    )
    response.headers["Location"] = f"/v1/children/{body.child_id}/guardianship"
    return CourtOrderPublic(
        order_id=order_id, case_id=case_id, child_id=body.child_id, order_kind=body.order_kind,
        court_case_number=body.court_case_number, issued_on=body.issued_on, expires_on=body.expires_on,
    )


@router.get(
    "/children/{child_id}/guardianship",
    response_model=GuardianshipPublic,
    responses={**problem_doc(404, "No guardianship file"), 422: PROBLEM_RESPONSES[422], **FORBIDDEN_DOC},
    summary="A child's guardianship risk, colour and history",
)
def get_guardianship_file(child_id: UUID, app: GuardianshipDep, _: ChildReader) -> GuardianshipPublic:
    file = app.get_file(child_id)
    return GuardianshipPublic(
        child_id=file["child_id"], risk_level=file["risk_level"], colour=file["colour"],
        assessments=[AssessmentEntry.model_validate(a) for a in file["assessments"]],
        court_orders=[CourtOrderEntry.model_validate(o) for o in file["court_orders"]],
    )
