"""The guardianship ladder over HTTP: record a step on a case, read a child's ladder with the next steps."""

from __future__ import annotations

import hashlib
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Request, Response, status

from huhang.access.guards import FORBIDDEN_DOC, CaseWriter, ChildReader, acting_for
from huhang.problems import PROBLEM_RESPONSES, problem_doc
from services.guardianship.interventions import DocumentRef, Interventions, RecordIntervention
from services.guardianship.ladder_schemas import (
    DocumentPublic,
    InterventionCreate,
    InterventionPublic,
    LadderPublic,
    LadderStepPublic,
    NextStepPublic,
    china_today,
)


def get_interventions(request: Request) -> Interventions:
    return request.app.state.interventions


InterventionsDep = Annotated[Interventions, Depends(get_interventions)]



router = APIRouter(prefix="/v1", tags=["interventions"])


@router.post(
    "/cases/{case_id}/interventions",
    status_code=status.HTTP_201_CREATED,
    response_model=InterventionPublic,
    responses={
        **PROBLEM_RESPONSES, **problem_doc(403, "Not this agency's step"), **problem_doc(404, "Unknown case"),
        **problem_doc(409, "A prior step is missing, or the ladder has ended"), **FORBIDDEN_DOC,
    },
    summary="Record a step of the guardianship ladder (劝诫, 训诫, 保护令, 撤销监护, 临时/长期监护)",
)
def record_intervention(
    case_id: UUID,
    body: InterventionCreate,
    interventions: InterventionsDep,
    response: Response,
    access: CaseWriter,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key", min_length=1, max_length=200,
            description="Send the same key when retrying: the first answer is returned and nothing is recorded "
            "twice. An `intervention_id` in the body does the same.",
        ),
    ] = None,
) -> InterventionPublic:
    """Publishes `InterventionRecorded` (routed to the next agency on the ladder); the court's protection order and
    revocation of guardianship also publish `CourtProtectionOrderIssued`. The case must be known to guardianship
    (a reported case, or the child's standing care case)."""
    acting_for(access.principal, body.agency, "agency")
    recorded = interventions.record(
        RecordIntervention(
            case_id=case_id, child_id=body.child_id, kind=body.kind, agency=body.agency,
            occurred_on=body.occurred_on, applicant=body.applicant, expires_on=body.expires_on,
            documents=tuple(DocumentRef(d.kind, d.reference, d.issued_on) for d in body.documents),
            intervention_id=body.intervention_id, idempotency_key=idempotency_key,
            fingerprint=hashlib.sha256(body.model_dump_json().encode()).hexdigest(),
        )
    )
    response.headers["Location"] = f"/v1/children/{recorded.child_id}/interventions"
    if recorded.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return InterventionPublic(
        intervention_id=recorded.intervention_id, case_id=recorded.case_id, child_id=recorded.child_id,
        kind=recorded.kind, agency=recorded.agency, occurred_on=recorded.occurred_on,
    )


@router.get(
    "/children/{child_id}/interventions",
    response_model=LadderPublic,
    responses={422: PROBLEM_RESPONSES[422], **FORBIDDEN_DOC},
    summary="A child's guardianship ladder so far, and the steps that may come next",
)
def get_ladder(child_id: UUID, interventions: InterventionsDep, _: ChildReader) -> LadderPublic:
    ladder = interventions.ladder(child_id, china_today())
    return LadderPublic(
        child_id=ladder.child_id,
        ended=ladder.ended,
        steps=[
            LadderStepPublic(
                intervention_id=s.intervention_id, case_id=s.case_id, kind=s.kind, agency=s.agency,
                occurred_on=s.occurred_on, recorded_at=s.recorded_at, applicant=s.applicant,
                documents=[DocumentPublic(kind=d.kind, reference=d.reference, issued_on=d.issued_on)
                           for d in s.documents],
                expires_on=s.expires_on,
            )
            for s in ladder.steps
        ],
        next_steps=[
            NextStepPublic(kind=n.kind, agencies=list(n.agencies), after=list(n.after)) for n in ladder.next_steps
        ],
    )
