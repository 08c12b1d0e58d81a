"""Intake's HTTP API: file reports, read cases and case timelines, keep children's files (register, facts,
history, duplicates and merges)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import JSONResponse

from huhang.access.guards import (
    FORBIDDEN_DOC,
    AccessLogDep,
    CaseAccessDep,
    CaseReader,
    ChildReader,
    ChildWriter,
    Creator,
    PlatformJob,
    PrincipalDep,
    PurposeDep,
    acting_for,
    area_search,
    child_access_check,
)
from huhang.headers import IdempotencyKey
from huhang.problems import PROBLEM_RESPONSES, Problem
from services.intake.application import (
    ChildFacts,
    FiledReport,
    FileReport,
    IntakeApplication,
    RegisterChild,
    ReportAboutChild,
)
from services.intake.matching import Match
from services.intake.schemas import (
    CasePublic,
    ChildHistoryPublic,
    ChildLinks,
    ChildPublic,
    ChildRegister,
    ChildReportCreate,
    DuplicateDecision,
    DuplicateListPublic,
    DuplicateOut,
    DuplicatePairPublic,
    FactsRecordedPublic,
    FactsUpdate,
    HistoryEntry,
    MergePublic,
    RederivePublic,
    RederiveRequest,
    RegistrationPublic,
    ReportCreate,
    ReportLinks,
    ReportPublic,
    TimelineEntry,
    TimelinePublic,
)
from services.intake.timeline import CaseTimeline


async def get_intake(request: Request) -> IntakeApplication:
    # async: it only reads app.state, and a plain def dependency costs a thread-pool hop per request
    return request.app.state.intake


async def get_timeline(request: Request) -> CaseTimeline:
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
    responses={**PROBLEM_RESPONSES, **FORBIDDEN_DOC},
    summary="File a mandatory report (强制报告)",
)
def file_report(
    body: ReportCreate,
    intake: IntakeDep,
    response: Response,
    access: Creator,
    idempotency_key: IdempotencyKey = None,
) -> ReportPublic:
    """Registers the child if new (one child, one file), opens or updates the child's case and publishes
    `ReportFiled`; the routing rules then open referrals at the responsible agencies within seconds."""
    acting_for(access.principal, body.reporter.agency, "reporter.agency")
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
    return _report_answer(filed, response)


def _report_answer(filed: FiledReport, response: Response) -> ReportPublic:
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


@router.get(
    "/cases/{case_id}", response_model=CasePublic, responses={**NOT_FOUND, **FORBIDDEN_DOC},
    summary="A case and its reports",
)
def get_case(case_id: UUID, intake: IntakeDep, access: CaseReader) -> JSONResponse:
    """Parts the caller's agency does not see (contracts/disclosure.yaml) are left out and listed in `redacted`."""
    return access.answer("case", CasePublic.model_validate(intake.get_case(case_id)))


@router.get(
    "/cases/{case_id}/timeline",
    response_model=TimelinePublic,
    responses=FORBIDDEN_DOC,
    summary="Every event of a case, from every service, in order",
)
def get_timeline_of_case(case_id: UUID, timeline: TimelineDep, access: CaseReader) -> JSONResponse:
    """Who did what and when, across intake, routing, referrals and guardianship."""
    return access.answer("timeline", TimelinePublic(
        case_id=case_id, events=[TimelineEntry.model_validate(row) for row in timeline.for_case(case_id)]
    ))


@router.get(
    "/children/{child_id}", response_model=ChildPublic, responses={**NOT_FOUND, **FORBIDDEN_DOC},
    summary="A child's file",
)
def get_child(child_id: UUID, intake: IntakeDep, access: ChildReader) -> JSONResponse:
    """The whole file (一人一档): identity, facts with the source and time of each part, categories derived from the
    facts with their reasons, what reporters observed, cases, probable duplicates pending, merge links. Parts the
    caller's agency does not see are left out and listed in `redacted`; identity-card numbers are masked except
    for the agencies that need them (contracts/disclosure.yaml)."""
    return access.answer("child", ChildPublic.model_validate(intake.get_child_file(child_id)))


children = APIRouter(prefix="/v1", tags=["children's files (一人一档)"])
CHILD_PROBLEMS: dict[int | str, dict[str, Any]] = {**PROBLEM_RESPONSES, **NOT_FOUND}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "Conflict", "content": {"application/problem+json": {}}}
}


def _links(child_id: UUID) -> ChildLinks:
    return ChildLinks(
        child=f"/v1/children/{child_id}", history=f"/v1/children/{child_id}/history",
        facts=f"/v1/children/{child_id}/facts",
    )


def _duplicates(matches: Sequence[Match]) -> list[DuplicateOut]:
    return [DuplicateOut(child_id=m.child_id, score=m.score, exact=m.exact, reasons=list(m.reasons)) for m in matches]


@children.post(
    "/children",
    status_code=status.HTTP_201_CREATED,
    response_model=RegistrationPublic,
    responses={**PROBLEM_RESPONSES, 200: {"model": RegistrationPublic, "description": "Already registered"}},
    summary="Register a child (one child, one file)",
)
def register_child(body: ChildRegister, intake: IntakeDep, response: Response, access: Creator) -> RegistrationPublic:
    """Registers the child once: the same ID number (or, without one, the same name, birth date, sex and place)
    is the same file (200). Categories are derived from the facts. Probable duplicates are flagged for a person
    to confirm or dismiss, never merged."""
    acting_for(access.principal, body.registered_by, "registered_by")
    child = body.child
    registration = intake.register_child(
        RegisterChild(
            identity=ChildFacts(
                name=child.name, sex=child.sex.value, birth_date=child.birth_date,
                id_card_number=child.id_card_number.upper() if child.id_card_number else None,
                township=child.township, village=child.village, categories=(),
            ),
            facts=body.facts,
            registered_by=body.registered_by.value,
            source=body.source,
        )
    )
    response.headers["Location"] = f"/v1/children/{registration.child_id}"
    if not registration.created:
        response.status_code = status.HTTP_200_OK
    return RegistrationPublic(
        child_id=registration.child_id, created=registration.created, changed=registration.changed,
        categories=list(registration.categories), duplicates=_duplicates(registration.duplicates),
        links=_links(registration.child_id),
    )


@children.put(
    "/children/{child_id}/facts",
    response_model=FactsRecordedPublic,
    responses={**CHILD_PROBLEMS, **CONFLICT},
    summary="Record the facts of a child's file (categories are re-derived)",
)
def record_facts(child_id: UUID, body: FactsUpdate, intake: IntakeDep, access: ChildWriter) -> FactsRecordedPublic:
    """The facts as they now stand replace the recorded ones, with their source; the categories are derived again
    and the change recorded with what was added and removed and why. Nothing is recorded when nothing changed."""
    acting_for(access.principal, body.recorded_by, "recorded_by")
    recorded = intake.record_facts(child_id, body.facts, recorded_by=body.recorded_by.value, source=body.source)
    return FactsRecordedPublic(
        child_id=recorded.child_id, changed=recorded.changed, categories=list(recorded.categories),
        duplicates=_duplicates(recorded.duplicates),
    )


@children.get(
    "/children/{child_id}/history",
    response_model=ChildHistoryPublic,
    responses={**NOT_FOUND, **FORBIDDEN_DOC},
    summary="Every change of a child's file, with its source and time",
)
def get_child_history(child_id: UUID, intake: IntakeDep, access: ChildReader) -> JSONResponse:
    """Redacted as the child's file is."""
    return access.answer("child_history", ChildHistoryPublic(
        child_id=child_id,
        entries=[HistoryEntry.model_validate(e) for e in intake.get_child_history(child_id)],
    ))


@children.get(
    "/duplicates", response_model=DuplicateListPublic, responses=FORBIDDEN_DOC, summary="Probable duplicates to review"
)
def list_duplicates(
    intake: IntakeDep,
    request: Request,
    principal: PrincipalDep,
    log: AccessLogDep,
    purpose: PurposeDep,
    status_: Annotated[
        Literal["pending", "dismissed", "confirmed"] | None, Query(alias="status", description="Default: pending.")
    ] = "pending",
    township: Annotated[str | None, Query(max_length=50)] = None,
    after: Annotated[str | None, Query(max_length=80, description="The `next_cursor` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DuplicateListPublic:
    """A search over children: the lead agency, auditors, and the township or village of the area (whose
    search is held to its own township)."""
    township = area_search(request, principal, log, purpose, township)
    rows = intake.pending_duplicates(township=township, status=status_, after=after, limit=limit)
    items = [
        DuplicatePairPublic.model_validate({
            **row,
            "links": {
                "child": f"/v1/children/{row['child_id']}", "other_child": f"/v1/children/{row['other_child_id']}",
                "confirm": f"/v1/children/{row['child_id']}/duplicates/{row['other_child_id']}/confirm",
                "dismiss": f"/v1/children/{row['child_id']}/duplicates/{row['other_child_id']}/dismiss",
            },
        })
        for row in rows
    ]
    return DuplicateListPublic(items=items, next_cursor=items[-1].pair if len(items) == limit else None)


@children.post(
    "/children/{child_id}/duplicates/{other_id}/confirm",
    response_model=MergePublic,
    responses={**CHILD_PROBLEMS, **CONFLICT},
    summary="Confirm a duplicate: merge the other file into this one",
)
def confirm_duplicate(
    child_id: UUID, other_id: UUID, body: DuplicateDecision, intake: IntakeDep, access: ChildWriter,
    request: Request, case_access: CaseAccessDep, log: AccessLogDep,
) -> MergePublic:
    """`other_id` is merged into `child_id`: both histories are kept, the merge is an event, and the surviving file
    takes over the other's cases. 409 when either file was already merged."""
    child_access_check(other_id, request, access.principal, case_access, log, access.purpose, write=True)
    acting_for(access.principal, body.by, "by")
    merge = intake.confirm_duplicate(child_id, other_id, by=body.by.value, note=body.note)
    return MergePublic(
        child_id=merge.survivor_id, merged_child_id=merge.merged_child_id, case_ids=list(merge.case_ids),
        categories=list(merge.categories),
    )


@children.post(
    "/children/{child_id}/duplicates/{other_id}/dismiss",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**CHILD_PROBLEMS, **CONFLICT},
    summary="Dismiss a probable duplicate: two different children",
)
def dismiss_duplicate(
    child_id: UUID, other_id: UUID, body: DuplicateDecision, intake: IntakeDep, access: ChildWriter,
    request: Request, case_access: CaseAccessDep, log: AccessLogDep,
) -> Response:
    child_access_check(other_id, request, access.principal, case_access, log, access.purpose, write=True)
    acting_for(access.principal, body.by, "by")
    intake.dismiss_duplicate(child_id, other_id, by=body.by.value, note=body.note)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@children.post(
    "/children/{child_id}/reports",
    status_code=status.HTTP_201_CREATED,
    response_model=ReportPublic,
    responses=CHILD_PROBLEMS,
    summary="File a report about a registered child, by id",
)
def file_report_about_child(
    child_id: UUID,
    body: ChildReportCreate,
    intake: IntakeDep,
    response: Response,
    access: ChildWriter,
    idempotency_key: IdempotencyKey = None,
) -> ReportPublic:
    """As `POST /v1/reports`, for a child already registered (e.g. a finding of the child director's visit)."""
    acting_for(access.principal, body.reporter.agency, "reporter.agency")
    fingerprint = hashlib.sha256(f"{child_id}\x1f{body.model_dump_json()}".encode()).hexdigest()
    filed = intake.file_report_about_child(
        child_id,
        ReportAboutChild(
            reporter_agency=body.reporter.agency.value, reporter_role=body.reporter.role.value,
            reporter_reference=body.reporter.reference, concern_category=body.concern_category.value,
            urgency=body.urgency.value, observations=body.observations, observed_on=body.observed_on,
            fingerprint=fingerprint, idempotency_key=idempotency_key,
        ),
    )
    return _report_answer(filed, response)


@children.post(
    "/children/rederivations",
    response_model=RederivePublic,
    responses=PROBLEM_RESPONSES,
    summary="Re-derive the categories that change with time (daily job)",
)
def rederive(body: RederiveRequest, intake: IntakeDep, _: PlatformJob) -> RederivePublic:
    """Children whose parents reached three months away since the last derivation become left-behind: each change
    is recorded and published like any other. Running it twice changes nothing twice."""
    as_of = body.as_of or datetime.now(UTC).date()
    return RederivePublic(as_of=as_of, changed=intake.rederive_categories(as_of))
