"""HTTP schemas of the guardianship ladder (InterventionCreate / InterventionPublic / LadderPublic)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from contracts.agencies import Agency
from contracts.vocabulary import InterventionDocumentKind, InterventionKind
from services.guardianship.interventions import Applicant
from services.guardianship.schemas import CHINA_STANDARD_TIME


def china_today() -> date:
    """Today where the steps are taken (China Standard Time, eight hours ahead of UTC)."""
    return datetime.now(CHINA_STANDARD_TIME).date()


def _not_in_future(value: date) -> date:
    if value > china_today():
        raise ValueError("must not be in the future")
    return value


NotInFuture = Annotated[date, AfterValidator(_not_in_future)]
Reference = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class DocumentIn(BaseModel):
    """A document the step refers to: its kind, its number or URI and its date; never its contents."""

    model_config = ConfigDict(extra="forbid")

    kind: InterventionDocumentKind
    reference: Reference = Field(description="The document's number (文号) or a URI where the issuer keeps it.")
    issued_on: NotInFuture


ADMONITION_EXAMPLE: dict[str, Any] = {
    "child_id": "5b0f3a52-9c1e-4d7a-8f26-3e4b1c9d7a10",
    "kind": "admonition",
    "agency": "village",
    "occurred_on": "2026-11-20",
    "documents": [{"kind": "admonition_record", "reference": "溪西村劝诫〔2026〕3号", "issued_on": "2026-11-20"}],
}
PROTECTION_ORDER_EXAMPLE: dict[str, Any] = {
    "intervention_id": "0d6c2b8e-47a1-4f3e-9b5d-6a2c8e1f4b70",
    "child_id": "5b0f3a52-9c1e-4d7a-8f26-3e4b1c9d7a10",
    "kind": "protection_order_issued",
    "agency": "court",
    "occurred_on": "2026-11-24",
    "documents": [{"kind": "protection_order", "reference": "(2026)浙0382民保令7号", "issued_on": "2026-11-24"}],
    "expires_on": "2027-05-23",
}


class InterventionCreate(BaseModel):
    """One step of the guardianship ladder, taken by the agency whose step it is."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [ADMONITION_EXAMPLE, PROTECTION_ORDER_EXAMPLE]}
    )

    intervention_id: UUID | None = Field(
        default=None,
        description="Your id for this step: a retry with the same id and body records nothing twice "
        "(or send an Idempotency-Key header).",
    )
    child_id: UUID = Field(description="The child of the case.")
    kind: InterventionKind
    agency: Agency = Field(description="The agency taking the step; each step has its own (403 otherwise).")
    occurred_on: NotInFuture = Field(description="The day the step was taken.")
    applicant: Applicant = Field(
        default=Applicant.agency,
        description="For an application to the court: `near_relative` when the agency records a near "
        "relative's application it helped with.",
    )
    documents: list[DocumentIn] = Field(
        min_length=1, max_length=20,
        description="The documents of the step (劝诫记录, 训诫书, 裁定书, 判决书, ...). A court's ruling is "
        "required for protection_order_issued (protection_order) and guardianship_revoked (court_judgment): "
        "its reference is the court's case number.",
    )
    expires_on: date | None = Field(default=None, description="When a protection order lapses, if it does.")


class InterventionPublic(BaseModel):
    intervention_id: UUID
    case_id: UUID
    child_id: UUID
    kind: InterventionKind
    agency: Agency
    occurred_on: date


class DocumentPublic(BaseModel):
    kind: InterventionDocumentKind
    reference: str
    issued_on: date


class LadderStepPublic(BaseModel):
    intervention_id: UUID
    case_id: UUID
    kind: InterventionKind
    agency: Agency
    occurred_on: date
    recorded_at: datetime
    applicant: Applicant
    documents: list[DocumentPublic]
    expires_on: date | None


class NextStepPublic(BaseModel):
    kind: InterventionKind
    agencies: list[Agency] = Field(description="Who may take it.")
    after: list[InterventionKind] = Field(description="The prior step(s) that make it possible, if any.")


class LadderPublic(BaseModel):
    child_id: UUID
    ended: bool = Field(description="Long-term state guardianship was taken over: no step follows.")
    steps: list[LadderStepPublic] = Field(description="The steps taken, in the order recorded.")
    next_steps: list[NextStepPublic] = Field(description="The steps that may be taken now, in ladder order.")
