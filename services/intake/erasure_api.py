"""Erasing a child's personal data: ``POST /v1/children/{child_id}/erasure`` (crypto-shredding, huhang/personal.py)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from contracts.agencies import Agency
from contracts.vocabulary import ErasureReason
from huhang.access.guards import FORBIDDEN_DOC, Forbidden, PrincipalDep, acting_for
from huhang.auth.principal import Role
from huhang.problems import PROBLEM_RESPONSES, problem_doc
from services.intake.application import IntakeApplication

router = APIRouter(prefix="/v1", tags=["children's files (一人一档)"])

# Who may erase: an administrator (at the end of the retention period, or on a court's order), or the platform's
# own retention job.
ERASING_ROLES = (Role.administrator, Role.system)


def get_intake(request: Request) -> IntakeApplication:
    return request.app.state.intake


IntakeDep = Annotated[IntakeApplication, Depends(get_intake)]


class ErasureRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "retention_expired", "erased_by": "civil_affairs"}]},
    )

    reason: ErasureReason
    erased_by: Agency = Field(description="The agency on whose authority the data is erased (the caller's own).")


class ErasureAnswer(BaseModel):
    child_id: UUID
    erased_now: bool = Field(description="False when the child's data had been erased already (a retry).")


@router.post(
    "/children/{child_id}/erasure",
    summary="Erase a child's personal data (crypto-shredding)",
    description=(
        "Destroys the child's keys in every service: the personal data in the child's stored events can no longer "
        "be read by anyone, while every event stays in place (the hash chain and its signed checkpoints still "
        "verify) and the non-personal trail (ids, codes, agencies, times: the case timeline) remains. Derived "
        "copies (the duplicate index, working lists) are purged. Reading the child's file afterwards answers "
        "410 Gone. Irreversible; idempotent. Administrators only."
    ),
    responses={**PROBLEM_RESPONSES, **FORBIDDEN_DOC, **problem_doc(404, "No such child"),
               **problem_doc(410, "Erased before, by another route (the retry of an erasure answers 200)")},
)
def erase_child(child_id: UUID, body: ErasureRequest, principal: PrincipalDep, intake: IntakeDep) -> ErasureAnswer:
    if not principal.has(*ERASING_ROLES):
        raise Forbidden("Only an administrator may erase a child's personal data.")
    acting_for(principal, body.erased_by, "erased_by")
    erased_now = intake.erase_child(child_id, reason=body.reason.value, by=body.erased_by.value)
    return ErasureAnswer(child_id=child_id, erased_now=erased_now)
