"""Intake's HTTP API: file reports, read cases, children and case timelines."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Request, Response, status

from huhang.problems import PROBLEM_RESPONSES, Problem
from services.intake.application import ChildFacts, FileReport, IntakeApplication
from services.intake.schemas import (
    CasePublic,
    ChildPublic,
    ReportCreate,
    ReportLinks,
    ReportPublic,
    TimelineEntry,
    TimelinePublic,
)
from services.intake.timeline import CaseTimeline


def get_intake(request: Request) -> IntakeApplication:
    return request.app.state.intake


def get_timeline(request: Request) -> CaseTimeline:
    return request.app.state.timeline


IntakeDep = Annotated[IntakeApplication, Depends(get_intake)]
TimelineDep = Annotated[CaseTimeline, Depends(get_timeline)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "Not found", "content": {"application/problem+json": {}}}
}

router = APIRouter(prefix="/v1", tags=["reports and cases"])


@router.post(
    "/reports",
    status_code=status.HTTP_201_CREATED,
    response_model=ReportPublic,
    responses=PROBLEM_RESPONSES,
    summary="File a mandatory report (强制报告)",
)
def file_report(
    body: ReportCreate,
    intake: IntakeDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key", min_length=1, max_length=200,
            description="Send the same key when retrying: the first answer is returned and nothing is filed twice.",
        ),
    ] = None,
) -> ReportPublic:
    """Registers the child if new (one child, one file), opens or updates the child's case and publishes
    `ReportFiled`; the routing rules then open referrals at the responsible agencies within seconds."""
    child = body.child
    filed = intake.file_report(
        FileReport(
            reporter_agency=body.reporter.agency.value,
            reporter_role=body.reporter.role.value,
            reporter_reference=body.reporter.reference,
            child=ChildFacts(
                name=child.name, sex=child.sex.value, birth_date=child.birth_date,
                id_card_number=child.id_card_number.upper() if child.id_card_number else None,
                township=child.township, village=child.village,
                categories=tuple(c.value for c in child.categories),
            ),
            concern_category=body.concern_category.value,
            urgency=body.urgency.value,
            observations=body.observations,
            observed_on=body.observed_on,
            fingerprint=hashlib.sha256(body.model_dump_json().encode()).hexdigest(),
            idempotency_key=idempotency_key,
        )
    )
    response.headers["Location"] = f"/v1/cases/{filed.case_id}"
    if filed.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return ReportPublic(
        report_id=filed.report_id,
        case_id=filed.case_id,
        child_id=filed.child_id,
        links=ReportLinks(
            case=f"/v1/cases/{filed.case_id}",
            timeline=f"/v1/cases/{filed.case_id}/timeline",
            referrals=f"/v1/cases/{filed.case_id}/referrals",
            child=f"/v1/children/{filed.child_id}",
        ),
    )


@router.get("/cases/{case_id}", response_model=CasePublic, responses=NOT_FOUND, summary="A case and its reports")
def get_case(case_id: UUID, intake: IntakeDep) -> CasePublic:
    return CasePublic.model_validate(intake.get_case(case_id))


@router.get(
    "/cases/{case_id}/timeline",
    response_model=TimelinePublic,
    summary="Every event of a case, from every service, in order",
)
def get_timeline_of_case(case_id: UUID, timeline: TimelineDep) -> TimelinePublic:
    """Who did what and when, across intake, routing, referrals and guardianship."""
    return TimelinePublic(
        case_id=case_id, events=[TimelineEntry.model_validate(row) for row in timeline.for_case(case_id)]
    )


@router.get("/children/{child_id}", response_model=ChildPublic, responses=NOT_FOUND, summary="A child's file")
def get_child(child_id: UUID, intake: IntakeDep) -> ChildPublic:
    child = intake.get_child(child_id)
    return ChildPublic(
        child_id=child.id, name=child.name, sex=child.sex, birth_date=child.birth_date,
        township=child.township, village=child.village, categories=child.categories, case_ids=child.case_ids,
    )
